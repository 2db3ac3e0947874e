"""gptstore's own storefront API: ratings and reviews of a model.

``GET/PUT/DELETE /api/gptstore/models/{namespace}/{name}/reviews`` (shapes in docs/server.md,
"Catalogue API"). A review is as visible as its model: a private model's reviews are a 404
``RepoNotFound`` to anyone who may not see the model. Writing needs a *write* token; the caller
writes, replaces or deletes their own review only, and members of the model's namespace may not
review it.
"""

from __future__ import annotations

from pydantic import Field, StrictInt, field_validator
from starlette.responses import JSONResponse, Response

from ..strictjson import CONTROL
from .context import Call
from .http import Body, HubError, bad_request, forbidden, next_link, unauthorized
from .reviews import MAX_PAGE, MAX_TEXT, Reviews


class ReviewBody(Body):
    stars: StrictInt = Field(ge=1, le=5)
    text: str = Field("", max_length=MAX_TEXT)

    @field_validator("text")
    @classmethod
    def _printable(cls, value: str) -> str:
        if CONTROL.search(value):
            raise ValueError("must not contain control characters")
        return value.strip()


def _page(call: Call) -> tuple[int, int]:
    params = call.request.query_params
    try:
        limit = int(params.get("limit", str(MAX_PAGE)))
        offset = int(params.get("cursor", "0"))
    except ValueError:
        raise bad_request("limit and cursor must be integers") from None
    if not 1 <= limit <= MAX_PAGE or not 0 <= offset <= 2**31:
        raise bad_request(f"limit must be 1 to {MAX_PAGE} and cursor at least 0")
    return limit, offset


def list_reviews(call: Call) -> Response:
    """``{"model", "rating": {"average", "count"}, "reviews": [...]}``, newest first, paged by ``Link``."""
    repo = call.repo()
    limit, offset = _page(call)
    reviews = Reviews(call.state.db)
    page = reviews.list(repo.id, offset=offset, limit=limit + 1)
    headers = (next_link(call.request, call.base_url, call.route_path, offset + limit)
               if len(page) > limit else None)
    return JSONResponse({"model": repo.repo_id, "rating": reviews.summary(repo.id),
                         "reviews": [review.to_dict() for review in page[:limit]]}, headers=headers)


def _reviewer(call: Call) -> tuple[int, str]:
    repo = call.repo()  # 404 first: a private model's reviews do not exist for others
    principal = call.principal
    if principal is None:
        raise unauthorized("authentication required: pass a write token (Authorization: Bearer …)")
    if principal.scope != "write":
        raise forbidden(f"the token {principal.token_name!r} is read-only; reviews need a token with --scope write")
    if principal.member_of(repo.namespace):
        raise forbidden(f"{principal.user} publishes {repo.repo_id} (as a member of {repo.namespace}) and may "
                        "not review it")
    return repo.id, principal.user


def put_review(call: Call) -> Response:
    """Write the caller's review (replacing theirs): 201 when new, else 200; the review as JSON."""
    body = call.model(ReviewBody, what="review")
    repo, user = _reviewer(call)
    review, created = Reviews(call.state.db).put(repo, user, body.stars, body.text)
    return JSONResponse(review.to_dict(), status_code=201 if created else 200)


def delete_review(call: Call) -> Response:
    repo, user = _reviewer(call)
    if not Reviews(call.state.db).delete(repo, user):
        raise HubError(404, f"{user} has no review of {call.repo_id}", code="EntryNotFound")
    return JSONResponse({"deleted": True})
