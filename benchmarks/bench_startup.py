"""Start-up costs a user meets, side by side in one run, each against its yardstick:

* ``cms hook pre-tool-use`` through the ``cms`` command in a cms child with a
  realistic record, a few sibling sessions and a project spend cap, against ``python
  -c pass`` (target: at most 1.5x), in a venv made as a user makes it (``python -m
  venv``, then ``pip install`` of this checkout, not editable: ``cms`` is ``bin/cms``
  as that venv's pip installed it, the bytecode pip's; made once and kept under
  ``.cache/bench-venv/`` by the checkout's content). Beside it, in the same venv, for
  reference: the child's own hook command (:func:`cms.engine.claude.hook_command`),
  and the wrapper that venv's pip (23.2) would write for a ``[project.scripts]`` entry
  point, which imports ``re`` before cms starts (why ``cms`` is a script file);
* the plugin's SessionStart and Stop hooks (``scripts/cms-hook``, as hooks/hooks.json
  runs them) in a project with no cms session, against ``python -c pass`` (target:
  at most 3x each);
* the plugin's MCP command (as the manifest gives it: ``scripts/cms-run --module
  cms.ui.mcp_lazy``, which answers the handshake from the answers shipped with cms;
  no setup, no ``CMS_PYTHON``: python3 on PATH has the dependencies) against ``cms
  mcp``, each to its first
  ``tools/list`` answer (target: at most 1.25x), and the launcher's own cost
  (``cms-run`` against ``python -m`` of the same module) as a share of the server's
  start (target: under a quarter);
* the first-use build of the plugin's environment, with uv and with pip (one build
  each, network needed; ``--no-build`` skips it).

Standalone: ``python benchmarks/bench_startup.py [--pairs 30] [--mcp-pairs 5]
[--uv PATH] [--no-build] [--hooks-only]``. Pairs run A B A B, so drift in machine load hits both
alike; each row gives both medians and the median of the per-pair ratios A/B. Python
writes bytecode here as it would for a user (``PYTHONDONTWRITEBYTECODE`` is dropped).
Reference rows repeat the hook through this interpreter, and in a bare venv, whose site
imports nothing, through the console script and as a child's own ``--settings``
command runs it (``python -S -P -c ...``): there the interpreter's own start is
smallest, so every import the hook needs weighs most, and the two should be alike.
``--hooks-only`` prints the hooks' rows alone.
Nothing outside a temporary folder and `.cache/bench-venv/` (the venv above) is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_hook  # noqa: E402
import timing  # noqa: E402
from timing import timed  # noqa: E402

#: The wrapper pip 23.2 writes for a ``[project.scripts]`` entry point (its template),
#: for reference: ``cms`` is ``bin/cms`` instead.
CONSOLE_SCRIPT = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from cms.ui.entry import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""
MS = 1000.0


def console_script(folder: Path, python: str, template: str | None = None) -> Path:
    """``bin/cms`` as pip installs it for ``python`` (its ``#!python`` line made that
    interpreter), or a ``template`` of another script."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "cms"
    if template is None:
        text = (ROOT / "bin" / "cms").read_text()
        script.write_text(text.replace("#!python\n", f"#!{python}\n", 1))
    else:
        script.write_text(template.format(python=python))
    script.chmod(0o755)
    return script


def first_tools_list(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """Seconds from starting an MCP server to its answer to ``tools/list``."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=env, cwd=cwd,
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    # What Claude Code 2.1.332 sends (recorded from it): the stateless protocol, each
    # request with its version in _meta, server/discover first.
    meta = {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "0"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }}  # fmt: skip
    for message in (
        {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": meta},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": meta},
    ):
        proc.stdin.write((json.dumps(message) + "\n").encode())
    proc.stdin.flush()
    while True:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"{argv} closed before answering tools/list")
        if json.loads(line).get("id") == 2:
            break
    elapsed = time.perf_counter() - start
    proc.stdin.close()
    proc.wait(timeout=30)
    return elapsed


class Row:
    """One comparison: A against B over paired runs."""

    def __init__(self, label: str, target: float | None) -> None:
        self.label, self.target = label, target
        self.a: list[float] = []
        self.b: list[float] = []

    def pair(self, run_a: Callable[[], float], run_b: Callable[[], float]) -> None:
        self.a.append(run_a())
        self.b.append(run_b())

    @property
    def ratio(self) -> float:
        return statistics.median(x / y for x, y in zip(self.a, self.b, strict=True))

    def line(self) -> str:
        target = f"target {self.target:g}" if self.target else "reference"
        verdict = ""
        if self.target is not None:
            verdict = "  met" if self.ratio <= self.target else "  NOT met"
        a, b = statistics.median(self.a) * MS, statistics.median(self.b) * MS
        return f"{self.label:72} {a:8.1f} ms {b:8.1f} ms  x{self.ratio:5.2f}  ({target}){verdict}"


def plugin_env(tmp: Path) -> tuple[dict[str, str], Path]:
    """The environment Claude Code gives the plugin's hooks and MCP server in a user's
    session: no cms child, no CMS_PYTHON, a data folder of its own, a project with no
    cms session."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "CLAUDE"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        HOME=str(tmp / "home"),
        CMS_HOME=str(tmp / "home" / ".claude" / "cms"),
        CLAUDE_PLUGIN_ROOT=str(ROOT),
        CLAUDE_PLUGIN_DATA=str(tmp / "plugin-data"),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
    )
    project = tmp / "users-project"
    (project / ".git").mkdir(parents=True)
    (tmp / "home").mkdir(exist_ok=True)
    return env, project


def child_hook(python: str, package_parent: str) -> tuple[list[str], dict[str, str]]:
    """The command a child's ``--settings`` runs (:func:`cms.engine.claude.hook_command`,
    without its shell), and what it adds to the environment."""
    from cms.engine.claude import HOOK_CODE

    return [python, "-S", "-P", "-c", HOOK_CODE, "pre-tool-use"], {"PYTHONPATH": package_parent}


def hook_rows(tmp: Path, pairs: int) -> list[Row]:
    python = sys.executable
    env, stdin = bench_hook.prepare(tmp / "child")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    # The yardstick: a venv made as a user makes it (python -m venv, pip install .),
    # where the console script is the one pip wrote and cms's bytecode pip compiled.
    user_script = timing.user_install(ROOT)
    user_python = str(user_script.parent / "python")
    user_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    old_wrapper = console_script(tmp / "wrapper-bin", user_python, CONSOLE_SCRIPT)
    where = "import cms, os; print(os.path.dirname(os.path.dirname(cms.__file__)))"
    site = subprocess.run(
        [user_python, "-c", where], env=user_env, check=True, capture_output=True, text=True
    ).stdout.strip()
    user_child, extra = child_hook(user_python, site)
    user_child_env = {**user_env, **extra}
    user_bare = [user_python, "-c", "pass"]
    pip_version = subprocess.run(
        [user_python, "-m", "pip", "--version"], env=user_env, check=True, capture_output=True,
        text=True,
    ).stdout.split()[1]  # fmt: skip

    script = console_script(tmp / "bin", python)
    bare = [python, "-c", "pass"]
    hook = [str(script), "hook", "pre-tool-use"]
    clean_venv = tmp / "bare-venv"
    subprocess.run([python, "-m", "venv", "--without-pip", str(clean_venv)], check=True)
    clean_python = str(clean_venv / "bin" / "python")
    clean_hook = [str(console_script(tmp / "bare-bin", clean_python)), "hook", "pre-tool-use"]
    clean_bare = [clean_python, "-c", "pass"]
    clean_child, clean_extra = child_hook(clean_python, str(ROOT))
    clean_child_env = {**env, **clean_extra}

    plugin, project = plugin_env(tmp)
    hooks = str(ROOT / "scripts" / "cms-hook")
    start_event = json.dumps({"session_id": "p-1", "cwd": str(project), "source": "startup",
                              "hook_event_name": "SessionStart"}).encode()  # fmt: skip
    stop_event = json.dumps({"session_id": "p-1", "cwd": str(project), "stop_hook_active": False,
                             "hook_event_name": "Stop"}).encode()  # fmt: skip
    rows = [
        Row(f"[pip venv] cms hook pre-tool-use (pip {pip_version})  vs  python -c pass", 1.5),
        Row("[pip venv] the child's own hook command  vs  python -c pass", None),
        Row(f"[pip venv] pip {pip_version}'s entry-point wrapper  vs  python -c pass", None),
        Row("[this python] cms hook pre-tool-use  vs  python -c pass", None),
        Row("plugin SessionStart (nothing to say)  vs  python -c pass", 3.0),
        Row("plugin Stop (nothing to say)  vs  python -c pass", 3.0),
        Row("[bare venv] cms hook pre-tool-use  vs  python -c pass", None),
        Row("[bare venv] the child's own hook command  vs  python -c pass", None),
    ]  # fmt: skip
    runs = [
        (lambda: timed([str(user_script), "hook", "pre-tool-use"], user_env, stdin),
         lambda: timed(user_bare, user_env)),
        (lambda: timed(user_child, user_child_env, stdin), lambda: timed(user_bare, user_env)),
        (lambda: timed([str(old_wrapper), "hook", "pre-tool-use"], user_env, stdin),
         lambda: timed(user_bare, user_env)),
        (lambda: timed(hook, env, stdin), lambda: timed(bare, env)),
        (lambda: timed([hooks, "session-start"], plugin, start_event, project),
         lambda: timed(bare, plugin)),
        (lambda: timed([hooks, "stop"], plugin, stop_event, project), lambda: timed(bare, plugin)),
        (lambda: timed(clean_hook, env, stdin), lambda: timed(clean_bare, env)),
        (lambda: timed(clean_child, clean_child_env, stdin), lambda: timed(clean_bare, env)),
    ]  # fmt: skip
    for run_a, run_b in runs:  # warm up: bytecode, the plugin's caches
        run_a(), run_a(), run_b()
    for _ in range(pairs):
        for row, (run_a, run_b) in zip(rows, runs, strict=True):
            row.pair(run_a, run_b)
    return rows


def mcp_rows(tmp: Path, pairs: int) -> list[Row]:
    env, project = plugin_env(tmp / "mcp")
    # The command the plugin's manifest gives Claude Code for its MCP server.
    manifest = json.loads((ROOT / ".claude-plugin" / "plugin.json").read_text())
    server_spec = manifest["mcpServers"]["cms"]
    plugin_mcp = [server_spec["command"].replace("${CLAUDE_PLUGIN_ROOT}", str(ROOT))]
    plugin_mcp += server_spec["args"]
    cms_mcp = [str(console_script(tmp / "mcp-bin", sys.executable)), "mcp"]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    server = Row("plugin MCP command  vs  cms mcp (to tools/list)", 1.25)
    guide = ["--stdlib", "--module", "cms.hooks.parent", "guide"]
    launcher = Row("cms-run launcher  vs  python -m (same module)", None)
    first_tools_list(plugin_mcp, env, project)  # warm up (the launcher's probe, bytecode)
    first_tools_list(cms_mcp, env, project)
    for _ in range(pairs):
        server.pair(
            lambda: first_tools_list(plugin_mcp, env, project),
            lambda: first_tools_list(cms_mcp, env, project),
        )
    for _ in range(pairs * 4):
        launcher.pair(
            lambda: timed([str(ROOT / "scripts" / "cms-run"), *guide], env, cwd=project),
            lambda: timed([sys.executable, "-m", "cms.hooks.parent", "guide"], env, cwd=project),
        )
    return [server, launcher]


def find_uv(given: str | None, tmp: Path) -> str | None:
    """uv: as given, on PATH, or its wheel from PyPI unpacked."""
    found = given or shutil.which("uv")
    if found:
        return found
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", str(tmp), "uv"],
            check=True, capture_output=True, timeout=300,
        )  # fmt: skip
        [wheel] = tmp.glob("uv-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            [member] = [n for n in archive.namelist() if n.endswith("/scripts/uv")]
            (tmp / "bin").mkdir()
            (tmp / "bin" / "uv").write_bytes(archive.read(member))
    except (subprocess.SubprocessError, ValueError, OSError):
        return None
    (tmp / "bin" / "uv").chmod(0o755)
    return str(tmp / "bin" / "uv")


def build_seconds(tmp: Path, uv: str | None) -> float:
    """One first-use build (``cms-run --build-only``) into a fresh data folder."""
    env, project = plugin_env(tmp)
    path = [p for p in env["PATH"].split(os.pathsep) if not (Path(p) / "uv").exists()]
    if uv:
        path.insert(0, str(Path(uv).parent))
    env["PATH"] = os.pathsep.join(path)
    data = tmp / "plugin-data"
    start = time.perf_counter()
    argv = [str(ROOT / "scripts" / "cms-run"), "--data", str(data), "--build-only"]
    done = subprocess.run(
        argv, env=env, cwd=project, capture_output=True, text=True, timeout=1800, check=False
    )
    took = time.perf_counter() - start
    log = (data / "build.log").read_text() if (data / "build.log").exists() else ""
    if done.returncode != 0 or not (data / "venv" / ".cms-version").exists():
        raise SystemExit(f"the build failed: {done.stderr[-500:]} {log[-1000:]}")
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30, help="pairs for the hooks")
    parser.add_argument("--mcp-pairs", type=int, default=5, help="pairs for the MCP servers")
    parser.add_argument("--uv", help="the uv to build with (default: on PATH, else from PyPI)")
    parser.add_argument("--no-build", action="store_true", help="skip the first-use builds")
    parser.add_argument("--hooks-only", action="store_true", help="only the hooks' rows")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]} ({sys.executable}), {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{'':72} {'A median':>11} {'B median':>11}  ratio A/B (median of pairs)")
    with tempfile.TemporaryDirectory(prefix="cms-bench-startup-") as tmp_name:
        tmp = Path(tmp_name)
        rows = hook_rows(tmp, args.pairs)
        if args.hooks_only:
            for row in rows:
                print(row.line())
            return 0
        rows += mcp_rows(tmp, args.mcp_pairs)
        for row in rows:
            print(row.line())
        server, launcher = rows[-2], rows[-1]
        own = statistics.median(launcher.a) - statistics.median(launcher.b)
        start = statistics.median(server.b)
        print(f"the launcher's own cost: {own * MS:.1f} ms = {own / start:.2f} of the MCP "
              f"server's start ({start * MS:.0f} ms; target under 0.25)")  # fmt: skip
        if not args.no_build:
            uv = find_uv(args.uv, tmp / "uv")
            with_uv = f"{build_seconds(tmp / 'build-uv', uv):.1f} s" if uv else "no uv found"
            with_pip = build_seconds(tmp / "build-pip", None)
            print(f"first-use build of the plugin's environment: with uv {with_uv}, "
                  f"with pip {with_pip:.1f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
