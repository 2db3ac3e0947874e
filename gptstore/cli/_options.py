"""The options several commands share, defined once so that a flag means the same everywhere.

A flag that two commands both take (``--json``, ``--store``, ``--token``, ``--allow-unsafe``,
``--device``) has one spelling, one parameter name, one type and one default help here; a command
module imports it instead of declaring it again (they used to be declared in four modules and had
drifted apart). ``tests/test_cli_options.py`` checks that every command taking one of these flags
takes it as defined here.

Each is a :class:`SharedOption`:

- ``@json_option`` applies it as is;
- ``@json_option.replace(help="Print the completion … as JSON.")`` applies it with some settings
  changed for one command (a more precise help, ``required=True``, a prompt). The flag and the
  parameter name cannot be changed: they are the vocabulary.

Only click is imported here, so ``gptstore CMD --help`` stays light.
"""

from __future__ import annotations

from typing import Any, Callable, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class SharedOption:
    """A click option declared once and applied by several commands."""

    def __init__(self, *decls: str, **attrs: Any) -> None:
        self.decls = decls
        self.attrs = attrs

    def __call__(self, command: F) -> F:
        return click.option(*self.decls, **self.attrs)(command)

    def replace(self, **changes: Any) -> SharedOption:
        """The same flag and parameter name with some settings changed, e.g. ``help`` or ``required``."""
        return SharedOption(*self.decls, **{**self.attrs, **changes})

    @property
    def flag(self) -> str:
        """The long flag, e.g. ``--json``."""
        return next(d for d in self.decls if d.startswith("--"))

    @property
    def dest(self) -> str:
        """The parameter name the command receives, e.g. ``as_json``."""
        return click.Option(self.decls).name or ""


# Options without a value leave ``default`` unset (None all the same): with click 8.5 an explicit
# ``default=None`` satisfies ``required=True``, which would make ``.replace(required=True)`` a no-op.
json_option = SharedOption("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

store_option = SharedOption(
    "--store", "store_url", metavar="URL",
    help="Store URL: hf://, http(s)://host:port or a library path "
         "(default: GPTSTORE_STORE, else hf://; see `gptstore config`).")

token_option = SharedOption(
    "--token",
    help="Access token for the store named by --store / GPTSTORE_STORE (default: GPTSTORE_TOKEN, "
         "then `gptstore login`, then HF_TOKEN for hf://).")

allow_unsafe_option = SharedOption(
    "--allow-unsafe", is_flag=True,
    help="Accept pickle-based weights (.bin .pt .pth .pkl .ckpt). Only for sources you trust.")

device_option = SharedOption(
    "--device", default="auto", show_default=True, help="auto (cuda > mps > cpu), cpu, mps, cuda or cuda:N.")

#: every shared option, for the vocabulary test
SHARED: tuple[SharedOption, ...] = (json_option, store_option, token_option, allow_unsafe_option, device_option)
