"""Install and uninstall plugins with pip, in the environment gptstore itself runs in.

    >>> from gptstore import plugin_install
    >>> result = plugin_install.install("./gptstore-guard", editable=True)     # doctest: +SKIP
    >>> [(d.name, d.version, d.plugins) for d in result.dists], result.problems  # doctest: +SKIP
    ([('gptstore-guard', '0.1.0', ['guard'])], [])

A thin wrapper over ``python -m pip`` run with ``sys.executable``, so a plugin lands next to
gptstore whichever way gptstore was installed (venv, pipx, user site). pip resolves, builds and
installs; this module then checks that what was installed is a plugin (a distribution with an
entry point in group ``gptstore``) and loads it in a fresh process, the way the next
``gptstore`` command will, so a plugin that fails to import is reported at once.

What pip installed comes from its installation report, written to its stdout (``--quiet --report
-``, so stdout holds nothing else) and read at most :data:`MAX_REPORT_BYTES` (the report carries
every installed distribution's metadata, descriptions included).
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Sequence

from .errors import PluginInstallError, UsageError
from .plugins import DEFAULT_PLUGINS, ENTRY_POINT_GROUP

#: how a fresh process lists plugins (``gptstore plugins --json``)
LIST_PLUGINS = [sys.executable, "-c", "from gptstore.cli.main import main; main()", "plugins", "--json"]
#: most bytes of pip's installation report (its stdout) that are read
MAX_REPORT_BYTES = 16 << 20
#: most bytes of pip's other output kept (the error lines come first)
MAX_OUTPUT_BYTES = 1 << 20


@dataclass
class Dist:
    """An installed distribution and the plugins (entry points in group ``gptstore``) it has."""

    name: str
    version: str
    plugins: list[str]
    editable: bool = False
    location: str | None = None


@dataclass
class InstallResult:
    dists: list[Dist]
    #: True when pip changed nothing (it was installed already)
    already: bool = False
    #: the plugins of ``dists`` as ``gptstore plugins --json`` shows them, loaded in a fresh process
    plugins: list[dict[str, Any]] = field(default_factory=list)
    #: what is wrong although pip succeeded: not a plugin, a plugin that fails to load, a conflict
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def normalize(name: str) -> str:
    """PEP 503 name: ``Hello_Plug`` and ``hello.plug`` are ``hello-plug``."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class PipRun:
    """A finished pip: its exit code and its output, each read at most to a limit."""

    returncode: int
    stdout: str = ""
    stderr: str = ""
    #: stdout was longer than its limit; ``stdout`` holds only its beginning
    stdout_truncated: bool = False


def _read_capped(stream: IO[bytes], limit: int, into: dict[str, Any]) -> None:
    """Read ``stream`` to its end (so the writer never blocks), keeping its first ``limit`` bytes."""
    kept = bytearray()
    over = False
    while chunk := stream.read(1 << 16):
        room = limit - len(kept)
        if len(chunk) > room:
            over = True
        kept += chunk[:max(room, 0)]
    into["data"], into["over"] = kept.decode("utf-8", "replace"), over


def pip(*args: str, verbose: bool = False, report: bool = False) -> PipRun:
    """Run ``python -m pip ARGS`` in gptstore's environment.

    Its stdout and stderr are captured (size-capped), except that ``verbose`` lets them through to
    the terminal. With ``report``, stdout is pip's JSON installation report (``--report -``), so
    it is captured even when ``verbose``, up to :data:`MAX_REPORT_BYTES`.
    """
    if importlib.util.find_spec("pip") is None:
        raise PluginInstallError(f"pip is not available in gptstore's environment ({sys.executable})",
                                 hint="add it with `python -m ensurepip`, or install plugins with the tool "
                                      "that installed gptstore")
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", PYTHONIOENCODING="utf-8")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):  # the report must stay plain JSON
        env.pop(name, None)
    pipe_out, pipe_err = report or not verbose, not verbose
    process = subprocess.Popen([sys.executable, "-m", "pip", *args], env=env,
                               stdout=subprocess.PIPE if pipe_out else None,
                               stderr=subprocess.PIPE if pipe_err else None)
    out: dict[str, Any] = {}
    err: dict[str, Any] = {}
    streams = ((process.stdout, MAX_REPORT_BYTES if report else MAX_OUTPUT_BYTES, out),
               (process.stderr, MAX_OUTPUT_BYTES, err))
    readers = [threading.Thread(target=_read_capped, args=(stream, limit, into), daemon=True)
               for stream, limit, into in streams if stream is not None]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join()
    returncode = process.wait()
    return PipRun(returncode, out.get("data", ""), err.get("data", ""), bool(out.get("over")))


def _install_report(run: PipRun) -> dict[str, Any] | None:
    """pip's installation report (its stdout), or None when it is too large or not a JSON object."""
    if run.stdout_truncated:
        return None
    try:
        report = json.loads(run.stdout)
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _requested(report: dict[str, Any]) -> list[str]:
    """The names of the distributions pip installed because they were asked for."""
    items = report.get("install")
    names = []
    for item in items if isinstance(items, list) else []:
        meta = item.get("metadata") if isinstance(item, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str) and item.get("requested") is True:
            names.append(name)
    return names


def _named_in(spec: str) -> str | None:
    """The distribution a spec names without installing it: a requirement's name
    (``gptstore-guard>=0.1``), or a wheel's (``gptstore_guard-0.1.0-py3-none-any.whl``)."""
    if spec.endswith(".whl"):
        return Path(spec).name.split("-", 1)[0] or None
    if _looks_like_path(spec) or "://" in spec:
        return None
    name = re.match(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?", spec)
    return name.group() if name else None


def _pip_error(result: PipRun) -> str:
    """The line of pip's output that says what went wrong."""
    lines = [line.strip() for line in (result.stderr or "").splitlines() if line.strip()]
    for line in lines:
        if line.startswith("ERROR:"):
            return line[len("ERROR:"):].strip().rstrip(".")
    return lines[-1].rstrip(".") if lines else f"pip exited with code {result.returncode}"


def _pip_complaint(stderr: str) -> str | None:
    """From pip's first ``ERROR:`` line on, as one line (pip can succeed and still complain)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    start = next((i for i, line in enumerate(lines) if line.startswith("ERROR:")), None)
    if start is None:
        return None
    return "; ".join([lines[start][len("ERROR:"):].strip(), *lines[start + 1:]])


def _looks_like_path(spec: str) -> bool:
    return "://" not in spec and (os.sep in spec or spec.startswith((".", "~")))


def install_args(spec: str, *, editable: bool = False, upgrade: bool = False,
                 pip_args: Sequence[str] = ()) -> list[str]:
    """The arguments for ``pip install``: a path is made absolute; ``editable`` needs a path (or
    a VCS URL)."""
    target = spec
    if _looks_like_path(spec):
        path = Path(spec).expanduser()
        if not path.exists():
            raise UsageError(f"{spec}: no such file or directory",
                             hint="give a plugin directory, a wheel or a name on the package index")
        target = str(path.resolve())
    elif editable and "://" not in spec:
        raise UsageError("--editable needs a plugin directory",
                         hint=f"give its path, e.g. gptstore plugins install -e ./{spec}")
    return [*(["--upgrade"] if upgrade else []), *pip_args, *(["--editable"] if editable else []), target]


def installed(name: str) -> Dist | None:
    """The installed distribution ``name`` (any spelling), or None."""
    importlib.invalidate_caches()
    try:
        return _dist(metadata.distribution(name))
    except metadata.PackageNotFoundError:
        return None


def _dist(dist: metadata.Distribution) -> Dist:
    direct = json.loads(dist.read_text("direct_url.json") or "{}")
    return Dist(name=dist.metadata["Name"], version=dist.version,
                plugins=sorted({ep.name for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP}),
                editable=bool(direct.get("dir_info", {}).get("editable")),
                location=str(dist.locate_file("")))


def install(spec: str, *, editable: bool = False, upgrade: bool = False, pip_args: Sequence[str] = (),
            verbose: bool = False) -> InstallResult:
    """Install the plugin ``spec`` (a name on the package index, a directory, a wheel) with pip.

    Args:
        spec: what to give pip: ``gptstore-guard``, ``./gptstore-guard``, ``x.whl``, a VCS URL.
        editable: install a directory in editable mode (``pip install -e``), for development.
        upgrade: ``pip install --upgrade``.
        pip_args: more arguments for pip, e.g. ``["--no-deps", "--no-build-isolation"]``.
        verbose: let pip's warnings and errors through to the terminal as they happen (its stdout
            is the installation report, run with ``--quiet``).

    Returns what was installed, its plugins loaded in a fresh process, and the ``problems``
    (not a plugin, failed to load, a dependency conflict), which leave it installed.

    Raises:
        UsageError: a path that does not exist, ``editable`` without a path.
        PluginInstallError: pip failed (nothing was installed); the message is pip's error.
    """
    args = install_args(spec, editable=editable, upgrade=upgrade, pip_args=pip_args)
    result = pip("install", "--quiet", "--report", "-", *args, verbose=verbose, report=True)
    if result.returncode != 0:
        raise PluginInstallError(f"pip could not install {spec}: {_pip_error(result)}",
                                 hint="run again with --verbose to see pip's warnings and errors")
    report = _install_report(result)
    requested = _requested(report) if report is not None else []
    outcome = InstallResult(dists=[], already=report is not None and not requested)
    if not requested:  # pip changed nothing ("Requirement already satisfied"), or its report is unreadable
        named = _named_in(spec)
        requested = [named] if named else []
        if report is None:
            outcome.problems.append(f"pip's installation report was not readable (larger than "
                                    f"{MAX_REPORT_BYTES >> 20} MiB, or not JSON); check `gptstore plugins`")
        elif not requested:
            outcome.problems.append(f"pip succeeded, but it is not clear what it installed for {spec}; "
                                    "see `gptstore plugins`")
    for name in requested:
        dist = installed(name)
        if dist is None:
            outcome.problems.append(f"pip reported {name} as installed, but it cannot be found")
        elif not dist.plugins:
            outcome.problems.append(f"{dist.name} {dist.version} is installed, but it is not a gptstore plugin "
                                    f"(no entry point in group {ENTRY_POINT_GROUP!r}); remove it with "
                                    f"`pip uninstall {dist.name}`")
        else:
            outcome.dists.append(dist)
    complaint = _pip_complaint(result.stderr or "")
    if complaint:  # e.g. a dependency conflict: pip installed, but says something is broken
        outcome.problems.append(f"pip: {complaint}")
    if outcome.dists:
        outcome.plugins, problems = describe_fresh(outcome.dists)
        outcome.problems += problems
    return outcome


def describe_fresh(dists: list[Dist]) -> tuple[list[dict[str, Any]], list[str]]:
    """The plugins of ``dists`` as a fresh ``gptstore plugins --json`` shows them, and problems."""
    names = [p for d in dists for p in d.plugins]
    env = dict(os.environ, GPTSTORE_LOAD_PLUGINS=",".join([d.name for d in dists] + names))
    result = subprocess.run(LIST_PLUGINS, capture_output=True, text=True, env=env, timeout=300)
    try:
        listed = {p["name"]: p for p in json.loads(result.stdout)}
    except ValueError:
        lines = (result.stderr or result.stdout or "no output").strip().splitlines()
        return [], [f"gptstore could not list plugins after the install: {lines[-1] if lines else ''}"]
    infos, problems = [], []
    for name in names:
        info = listed.get(name)
        if info is None:
            problems.append(f"plugin {name!r} did not load (is another plugin of that name installed? "
                            "see `gptstore plugins`)")
            continue
        infos.append(info)
        problems += [f"plugin {name!r} failed: {error}" for error in info["errors"]]
    return infos, problems


def find_plugin(name: str) -> Dist | None:
    """The installed distribution that provides plugin ``name`` (as ``gptstore plugins`` shows
    it) or is named ``name``; None when no installed plugin matches."""
    importlib.invalidate_caches()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.dist is not None and (ep.name == name or normalize(ep.dist.metadata["Name"]) == normalize(name)):
            return _dist(ep.dist)
    return None


def uninstall(name: str, *, verbose: bool = False) -> Dist:
    """Uninstall the plugin ``name`` (its plugin name or its distribution name) with pip.

    Raises:
        PluginInstallError: no such plugin, a distribution that is not a plugin (left alone), a
            built-in, or pip failed or could not remove it.
    """
    dist = find_plugin(name)
    if dist is None:
        if name in DEFAULT_PLUGINS:
            raise PluginInstallError(f"{name} is built into gptstore and cannot be uninstalled",
                                     hint="GPTSTORE_LOAD_PLUGINS limits which plugins load")
        other = installed(name)
        if other is not None:
            raise PluginInstallError(f"{other.name} {other.version} is not a gptstore plugin "
                                     f"(no entry point in group {ENTRY_POINT_GROUP!r}); leaving it alone",
                                     hint=f"use `pip uninstall {other.name}` if you mean it")
        raise PluginInstallError(f"no installed plugin is named {name!r}", hint="see `gptstore plugins`")
    result = pip("uninstall", "--yes", dist.name, verbose=verbose)
    if result.returncode != 0:
        raise PluginInstallError(f"pip could not uninstall {dist.name}: {_pip_error(result)}",
                                 hint="run again with --verbose to see pip's output")
    if installed(dist.name) is not None:
        raise PluginInstallError(f"pip did not uninstall {dist.name} (installed in {dist.location}, "
                                 f"outside gptstore's environment {sys.prefix})",
                                 hint="uninstall it with the tool that installed it")
    return dist
