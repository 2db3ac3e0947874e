"""The outcome of one verification check, shared by every layer that makes one.

Integrity (:mod:`gptstore.integrity`), safety (:mod:`gptstore.safety`), authenticity
(:mod:`gptstore.trust`) and plugins' verifiers all answer with a :class:`CheckResult`, and
:mod:`gptstore.verification` collects them into a report. It lives at the bottom of the import
graph (standard library only) so that none of those layers has to import another to return one.

A check never logs: a result with ``warning=True`` carries its one line in :attr:`CheckResult.note`,
and the operation that ran the check (``gptstore.load``, ``gptstore.pull``, ``gptstore verify``)
decides where that line goes, once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class CheckResult:
    """The outcome of one verification layer, as ``gptstore verify`` prints it.

    ``ok`` is whether the model may be used; ``warning`` marks an ``ok`` result the user should
    hear about (an unsigned model under the ``warn`` policy, pickle files allowed by
    ``--allow-unsafe``); ``note`` is then the whole line to show, what is wrong and how to fix it.
    """

    name: str
    ok: bool
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    warning: bool = False
    note: str = ""

    @property
    def warning_line(self) -> str | None:
        """The one line a caller shows for this result, or ``None`` when there is nothing to say."""
        if not (self.ok and self.warning):
            return None
        return self.note or f"{self.name} warning: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


__all__ = ["CheckResult"]
