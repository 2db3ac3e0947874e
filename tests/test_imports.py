"""The import graph: `import gptstore` and `gptstore --help` stay light (no torch, transformers,
pydantic), every module imports on its own in a fresh interpreter, and no module imports itself
back through others.

The layers themselves are import-linter contracts in pyproject.toml (``[tool.importlinter]``),
checked by ``lint-imports``, which ``make test`` runs before pytest.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: the core and the first-party plugins (each its own distribution, installed in the dev venv)
PACKAGES = ("gptstore", "gptstore_peft", "gptstore_guard")

HEAVY = ("torch", "transformers", "huggingface_hub", "starlette", "uvicorn", "cryptography", "peft", "openai",
         "prometheus_client")


@pytest.mark.parametrize("code", [
    "import gptstore",
    "import gptstore; gptstore.__all__; gptstore.Manifest; gptstore.Library; gptstore.package; gptstore.verify",
    "import gptstore; gptstore.pull; gptstore.push; gptstore.search; gptstore.sign; gptstore.finetune; "
    "gptstore.evaluate",
    "import sys; sys.argv = ['gptstore', '--help']\nfrom gptstore.cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass",
])
def test_light_imports(code):
    script = "import sys\n" + code + f"\nprint('RESULT', ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1].replace("RESULT", "").strip()
    assert last == "", f"heavy modules imported: {last}"


def test_top_level_help_does_not_even_import_pydantic():
    """Every CLI start registers the built-in and installed plugins: their modules must be tiny."""
    script = ("import sys; sys.argv=['gptstore', '--help']\nfrom gptstore.cli.main import main\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              "print('RESULT', ','.join(m for m in ('pydantic', 'filelock', *" + repr(HEAVY) + ") if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip().splitlines()[-1] == "RESULT", result.stdout.splitlines()[-1]


def test_top_level_help_imports_no_command_module():
    """The root help lists the built-in commands from a generated table (gptstore.cli._summaries),
    so none of their modules is imported to print it."""
    from gptstore.cli.main import COMMANDS

    modules = sorted({target.partition(":")[0] for target in COMMANDS.values()})
    script = ("import sys; sys.argv=['gptstore', '--help']\nfrom gptstore.cli.main import main\n"
              "try:\n    main()\nexcept SystemExit:\n    pass\n"
              f"print('RESULT', ','.join(m for m in {modules!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "RESULT", result.stdout.splitlines()[-1]


def test_every_command_help_is_light():
    from gptstore.cli.main import COMMANDS

    for name in COMMANDS:
        script = (f"import sys; sys.argv=['gptstore', {name!r}, '--help']\n"
                  "from gptstore.cli.main import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
                  f"print('RESULT', ','.join(m for m in {HEAVY!r} if m in sys.modules))")
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip().splitlines()[-1] == "RESULT", f"{name} --help imports heavy modules"


def test_public_api_names_resolve():
    import gptstore

    for name in gptstore.__all__:
        if name == "__version__":
            continue
        try:
            getattr(gptstore, name)
        except ModuleNotFoundError as exc:  # a module another part of the code base provides later
            pytest.fail(f"gptstore.{name}: {exc}")
    assert set(gptstore.__all__) <= set(dir(gptstore))


def modules_of(package: str) -> list[str]:
    """Every module of ``package``, read from its files (importing nothing)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None and spec.origin, f"{package} is not installed (make install)"
    root = Path(spec.origin).parent
    names = []
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        names.append(".".join(parts))
    return names


ALL_MODULES = [module for package in PACKAGES for module in modules_of(package)]


@pytest.mark.parametrize("module", ALL_MODULES)
def test_module_imports_on_its_own(module):
    """As huggingface_hub's utils/check_imports.py: a module that only imports when another one was
    imported first (an import cycle, or a name that only exists after a side effect) fails here."""
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, f"`import {module}` in a fresh interpreter:\n{result.stderr[-2000:]}"


def test_no_module_imports_itself_back():
    """No import cycle, at any level: neither between two modules nor between two sub-packages of
    one package (grimp, import-linter's graph, sees function-level imports too; imports under
    ``if TYPE_CHECKING:`` never run and are left out, as in the contracts)."""
    try:
        import grimp
    except ImportError:  # pragma: no cover - the dev extra installs it
        pytest.fail("grimp is missing: `make install` installs the dev extra (import-linter)")

    graph = grimp.build_graph(*PACKAGES, cache_dir=None, exclude_type_checking_imports=True)
    levels = [{module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}]
    for package in sorted(m for m in graph.modules if graph.find_children(m)):
        children = sorted(graph.find_children(package))
        levels.append({child: {other for other in children if other != child and graph.direct_import_exists(
            importer=child, imported=other, as_packages=True)} for child in children})
    cycles = []
    for edges in levels:
        for component in strongly_connected(edges):
            if len(component) > 1 and describe(graph, component) not in cycles:
                cycles.append(describe(graph, component))
    assert not cycles, ("import cycles (with the imports between their members, file:line):\n"
                        + "\n".join(cycles))


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a small directed graph."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            components.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return components


def describe(graph, component: list[str]) -> str:
    """One line per import between the members of a cycle: importer:line -> imported."""
    lines = [f"cycle between {', '.join(component)}:"]
    for importer in component:
        for other in component:
            if other == importer:
                continue
            for source in sorted({importer, *graph.find_descendants(importer)}):
                for target in sorted(graph.find_modules_directly_imported_by(source)):
                    if target == other or target.startswith(other + "."):
                        for detail in graph.get_import_details(importer=source, imported=target):
                            lines.append(f"  {source}:{detail['line_number']} -> {target}"
                                         f"  ({detail['line_contents']})")
    shown = 30
    if len(lines) > shown + 1:
        more = len(lines) - shown - 1
        lines[shown + 1:] = [f"  … and {more} more imports between them (lint-imports names the fewest to cut)"]
    return "\n".join(lines)
