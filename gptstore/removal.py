"""``gptstore rm`` with its protections: a base that an installed adapter pins is kept unless
forced, and removing one tag says which other tags still hold the model.

:meth:`gptstore.library.Library.remove` does the removal under the library lock; the checks here
run inside that lock (its ``check`` callback), so no pull or publish can slip in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConflictError
from .library import Library, RefEntry
from .refs import Reference, parse_reference


@dataclass
class Removal:
    """What :func:`remove` did."""

    removed: list[RefEntry] = field(default_factory=list)
    #: for each removed tag whose model stays: (removed "ns/name:tag", the tags still naming it)
    kept_by: list[tuple[str, list[str]]] = field(default_factory=list)
    #: adapters left without their base (``force``)
    orphaned: list[str] = field(default_factory=list)


def remove(reference: str | Reference, *, force: bool = False, library: Library | None = None) -> Removal:
    """Remove a tag, a digest or a model from the library (see :meth:`Library.remove`).

    Refused (ConflictError naming the adapters) when a manifest it would delete is the base an
    installed adapter pins, unless ``force``. The result says which other tags still hold a model
    whose tag was removed (``kept_by``).
    """
    library = library or Library()
    ref = parse_reference(reference) if isinstance(reference, str) else reference
    shown = reference if isinstance(reference, str) else str(reference)
    result = Removal()

    def check(doomed: list[RefEntry], refs: list[RefEntry]) -> None:
        gone = {(e.repo_id, e.tag) for e in doomed}
        staying = [e for e in refs if (e.repo_id, e.tag) not in gone]
        leaving = {e.digest for e in doomed} - {e.digest for e in staying}
        adapters = _adapters_over(library, staying, leaving)
        if adapters and not force:
            names = ", ".join(adapters)
            raise ConflictError(f"{shown} is the base of the installed adapter{'s' if len(adapters) > 1 else ''} "
                                f"{names}; removing it would break {'them' if len(adapters) > 1 else 'it'}",
                                hint=f"remove {names} first, or pass --force")
        result.orphaned = adapters
        for entry in doomed:
            others = [e.tag for e in staying if e.repo_id == entry.repo_id and e.digest == entry.digest]
            if others:
                result.kept_by.append((f"{entry.repo_id}:{entry.tag}", sorted(others)))

    result.removed = library.remove(ref, check=check)
    return result


def _adapters_over(library: Library, refs: list[RefEntry], digests: set[str]) -> list[str]:
    """The staying refs whose manifest is an adapter over one of ``digests``."""
    if not digests:
        return []
    found: dict[str, str] = {}  # adapter digest -> one name for it (a version tag rather than latest)
    seen: dict[str, str | None] = {}
    for entry in refs:
        if entry.digest not in seen:
            try:
                base = library.manifest(entry.digest).format.base
            except Exception:  # a damaged manifest elsewhere does not block removing this one
                base = None
            seen[entry.digest] = base.digest if base is not None else None
        if seen[entry.digest] in digests and (entry.digest not in found or found[entry.digest].endswith(":latest")):
            found[entry.digest] = f"{entry.repo_id}:{entry.tag}"
    return sorted(found.values())
