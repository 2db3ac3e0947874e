"""What a peft adapter's base model must be: a full model (``transformers`` format).

gptstore itself resolves an adapter's base by the digest its manifest pins and verifies it
(:meth:`gptstore.library.Library.base_of`, :func:`gptstore.verify`); the engine and the adapter
only check that the base is a model they can put an adapter on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gptstore.errors import PackageError

if TYPE_CHECKING:
    from gptstore.library import LocalModel

#: the package format a base must have (the engine loads it with the transformers engine)
BASE_FORMAT = "transformers"


def check_base_format(base: LocalModel, what: str) -> None:
    if base.manifest.format.adapter != BASE_FORMAT:
        raise PackageError(f"base {base.manifest.repo_id}:{base.manifest.version} of {what} is a "
                           f"{base.manifest.format.adapter!r} package; a peft adapter's base must be a full "
                           f"model ({BASE_FORMAT!r} format)", hint="package the adapter over the full base model")

