"""Every error gptstore raises on purpose.

Each error says what went wrong *and what to do next*; the CLI prints ``str(error)`` on one line
and exits with ``error.exit_code``. Errors carry structured fields (reference, path, expected and
actual digests) and also inherit the matching built-in, so generic ``except`` clauses keep working.

    GPTStoreError
     ├── UsageError (ValueError)                 bad arguments; exit code 2
     │    ├── InvalidReference                   malformed ``namespace/name[:tag][@sha256:…]``
     │    └── InvalidParams                      contradictory or out-of-range generation params
     ├── ManifestError (ValueError)              a gptstore.json that does not validate
     ├── PackageError (ValueError)               a package directory an adapter refuses
     │    └── UnsafeContentError                 pickle weights, custom code
     ├── NotFoundError (LookupError)
     │    ├── ModelNotFound                      no such model/tag/digest in a store
     │    └── UnknownComponent                   no adapter/engine/store/verifier of that name
     ├── IntegrityError                          bytes on disk differ from the manifest
     │    ├── FileMissing (FileNotFoundError)
     │    ├── UnlistedFile
     │    └── DigestMismatch                     size or sha256 differs
     ├── ConflictError                           e.g. a tag that already names other content
     ├── ClaimMismatch                           a measured perplexity contradicts the manifest's claim
     ├── FinetuneInterrupted                     Ctrl-C stopped a fine-tuning run; exit code 130
     ├── TrustError                              signature missing, untrusted or invalid
     │    └── MalformedSignature                 a gptstore.sig that is not a gptstore DSSE envelope
     ├── StoreError (OSError)                    a remote store failed or refused
     │    ├── ReportRefused                      a store refused a usage report for good
     │    └── AuthError (PermissionError)        not authorised / token lacks scope
     ├── PluginError                             a plugin failed; names the plugin
     ├── PluginInstallError                      pip failed, or what was named is not an installed plugin
     ├── DemoFailed                              a step of ``gptstore demo`` did not show what it should
     └── MissingDependency (ImportError)         an optional extra is not installed
"""

from __future__ import annotations

from pathlib import Path


class GPTStoreError(Exception):
    """Base of every gptstore error. ``str(e)`` is one line a user can act on."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(message)

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}; {self.hint}"
        return self.message


class UsageError(GPTStoreError, ValueError):
    """The arguments are wrong; nothing was attempted."""

    exit_code = 2


class InvalidReference(UsageError):
    """A model reference that does not parse."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        shown = text if len(text) <= 100 else text[:97] + "..."  # an error stays one short line
        super().__init__(
            f"invalid reference {shown!r}: {reason}",
            hint="expected namespace/name[:tag][@sha256:<64 hex>], e.g. acme/poet:1.2.0",
        )


class InvalidParams(UsageError):
    """Generation parameters that contradict each other or are out of range."""


class ManifestError(GPTStoreError, ValueError):
    """A manifest that does not validate; ``field`` and ``value`` name the first problem."""

    def __init__(self, message: str, *, path: Path | str | None = None, field: str | None = None,
                 value: object = None, hint: str | None = None) -> None:
        self.path = path
        self.field = field
        self.value = value
        super().__init__(message, hint=hint)


class PackageError(GPTStoreError, ValueError):
    """A package directory that an adapter cannot accept."""

    def __init__(self, message: str, *, path: Path | str | None = None, hint: str | None = None) -> None:
        self.path = path
        super().__init__(message, hint=hint)


class UnsafeContentError(PackageError):
    """Content that can execute code when loaded (pickle weights, custom code)."""


class NotFoundError(GPTStoreError, LookupError):
    """Something named does not exist."""


class ModelNotFound(NotFoundError):
    def __init__(self, reference: str, *, where: str = "the local library", hint: str | None = None) -> None:
        self.reference = reference
        super().__init__(
            f"model {reference} not found in {where}",
            hint=hint or "run `gptstore list` to see what is there, or `gptstore pull` it",
        )


class UnknownComponent(NotFoundError):
    """An adapter, engine, store scheme or verifier that no plugin registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = known
        listed = ", ".join(sorted(known)) or "none"
        super().__init__(
            f"unknown {kind} {name!r} (known: {listed})",
            hint="install the plugin that provides it, or check `gptstore plugins`",
        )


class IntegrityError(GPTStoreError):
    """Bytes on disk do not match what the manifest pins."""

    def __init__(self, message: str, *, path: str | None = None, reference: str | None = None,
                 expected: str | None = None, actual: str | None = None, hint: str | None = None) -> None:
        self.path = path
        self.reference = reference
        self.expected = expected
        self.actual = actual
        super().__init__(message, hint=hint)


class FileMissing(IntegrityError, FileNotFoundError):
    pass


class UnlistedFile(IntegrityError):
    pass


class DigestMismatch(IntegrityError):
    pass


class ConflictError(GPTStoreError):
    """The operation would overwrite something that differs."""


class ClaimMismatch(GPTStoreError):
    """A model's measured perplexity differs from its manifest's claim by more than the tolerance
    (``gptstore eval --check``)."""


class FinetuneInterrupted(GPTStoreError):
    """Ctrl-C stopped a fine-tuning run; its checkpoints are kept, so the same command resumes it."""

    exit_code = 130


class TrustError(GPTStoreError):
    """Authenticity could not be established under the trust policy."""


class MalformedSignature(TrustError):
    """A gptstore.sig that is not a gptstore DSSE envelope (:mod:`gptstore.signing` parses it)."""


class StoreError(GPTStoreError, OSError):
    """A store (remote or local) failed or refused the request."""


class ReportRefused(StoreError):
    """A store refused a usage report for good (a definitive 4xx); ``report_id`` names it, so
    ``gptstore usage report --drop-pending ID`` can let later reports through."""

    def __init__(self, message: str, *, hint: str, report_id: str) -> None:
        super().__init__(message, hint=hint)
        self.report_id = report_id


class AuthError(StoreError, PermissionError):
    """Not authorised, or the token lacks the needed scope."""


class PluginError(GPTStoreError):
    """A plugin raised; ``plugin`` names it."""

    def __init__(self, plugin: str, hook: str, error: BaseException) -> None:
        self.plugin = plugin
        self.hook = hook
        self.error = error
        super().__init__(
            f"plugin {plugin!r} failed in {hook}: {type(error).__name__}: {error}",
            hint="update or uninstall it, or skip plugins with GPTSTORE_LOAD_PLUGINS=''",
        )


class PluginInstallError(GPTStoreError):
    """pip failed, or the distribution named is not an installed plugin
    (:mod:`gptstore.plugin_install`)."""


class DemoFailed(GPTStoreError):
    """A step of the demo did not show what it should, e.g. the fine-tune did not learn
    (:mod:`gptstore.demo`)."""


class MissingDependency(GPTStoreError, ImportError):
    def __init__(self, what: str, extra: str) -> None:
        super().__init__(f"{what} is not installed", hint=f"pip install 'gptstore[{extra}]'")
