"""OpenAI-shaped errors: ``{"error": {"message", "type", "param", "code"}}`` with the status the
official clients map to their exception classes (404 → ``NotFoundError``, 400 →
``BadRequestError``, 401 → ``AuthenticationError``, 503 → ``InternalServerError`` after retries)."""

from __future__ import annotations

import re
from typing import Any

from ..errors import GPTStoreError, InvalidParams, ModelNotFound, NotFoundError, UsageError

#: GenerationParams' names → the API's
_API_NAMES = {"max_new_tokens": "max_tokens"}


class APIError(Exception):
    """An error answer; ``body()`` is what the client gets."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def model_not_found(model: str, hint: str = "") -> APIError:
    return APIError(404, f"the model {model!r} does not exist in this server's library"
                    + (f"; {hint}" if hint else "; see GET /v1/models"), param="model", code="model_not_found")


def overloaded(what: str) -> APIError:
    return APIError(503, f"the server is overloaded: {what}; retry later", type="server_error", code="overloaded")


def from_exception(exc: BaseException, model: str) -> APIError:
    """The answer for an exception raised while serving a request for ``model``."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ModelNotFound):
        return model_not_found(model, exc.hint or "")
    if isinstance(exc, InvalidParams):
        found = re.match(r"invalid generation params: (\w+)", exc.message)
        param = _API_NAMES.get(found.group(1), found.group(1)) if found else None
        return APIError(400, str(exc), param=param, code="invalid_parameter")
    if isinstance(exc, UsageError):
        return APIError(400, str(exc))
    if isinstance(exc, NotFoundError):
        return APIError(404, str(exc), code="not_found")
    if isinstance(exc, GPTStoreError):
        name = type(exc).__name__
        # a plugin's refusal (the guard's PromptRefused) is the request's fault; other failures are ours
        status = 400 if "Refused" in name else 500
        return APIError(status, str(exc), type="invalid_request_error" if status == 400 else "server_error",
                        code="refused" if status == 400 else name)
    return APIError(500, f"internal error: {type(exc).__name__}", type="server_error")
