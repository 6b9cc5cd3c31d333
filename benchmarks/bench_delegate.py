"""Wall time of one scripted task three ways, side by side in one run:

A. ``cms delegate TASK`` (the foreground command, start to printed result), cms
   installed as a user installs it: ``pip install .`` into a venv of its own (made once
   and kept under ``.cache/bench-venv/`` by the checkout's content);
B. the same ``claude -p`` that cms runs for it: the argv, environment and settings of a
   child (its PreToolUse hook, the sandbox compiled from the preset, the cms MCP server
   it may delegate with), captured from a real delegation before the rounds;
C. bare ``claude -p`` (``--permission-mode acceptEdits``, no settings).

All run the real pinned Claude Code CLI against the loopback stand-in with the same
script (a Write tool call, then a text answer), in rounds of A B C, so machine noise hits
them alike. A - B is cms's own cost (target: under 150 ms), B - C Claude Code's own for
cms's settings (the sandbox's start, the hook, the MCP server). Prints the medians, the
median per-round differences and A/C ratio, and the supervisor's peak resident memory
(VmHWM, sampled from /proc while it runs).

For reference, in the same rounds: D, ``cms delegate`` through the console script of
this interpreter (the install the tests use; its bytecode compiled first, as ``pip
install`` does). Its start carries whatever this interpreter's site-packages load at
start-up (on the project's machines a ``.pth`` that imports certifi, and the editable
install's finder: about 20 ms more than a venv's start), so D - B is printed apart.

    python benchmarks/bench_delegate.py [--pairs 16] [--latency 0 1]
"""

from __future__ import annotations

import argparse
import compileall
import ctypes
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from claude_version import install_claude  # noqa: E402
from standin import StandIn, text, tool_use  # noqa: E402
from supervisors import PeakSampler  # noqa: E402
from timing import user_install  # noqa: E402

#: The console script next to this interpreter (what `pip install` made), not a
#: version manager's shim in front of it, which would add its own start-up time.
_SCRIPT = Path(sys.executable).parent / "cms"
HERE = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cms.ui.cli"]
#: A's console script (:func:`timing.user_install`), set in main().
CMS: list[str] = []


def cpu_of(run: object, *args: object) -> tuple[float, float]:
    """Wall seconds of ``run(*args)`` and the CPU seconds (user + system) of every
    process it started, detached ones included: this process is their subreaper, and
    waits for each. CPU time hardly moves with the machine's load, wall time does."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run(*args)  # type: ignore[operator]
    while True:
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return float(wall), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--latency", type=float, nargs="*", default=[0.0, 1.0],
        help="seconds the stand-in waits before each answer; one series per value",
    )  # fmt: skip
    args = parser.parse_args()
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: see cpu_of
    compile_as_installed()
    CMS.append(str(user_install(REPO)))
    print(f"A runs {CMS[0]}; D runs {HERE[0]}")
    for latency in args.latency:
        print(f"== stand-in latency {latency:g}s per API call, {args.pairs} pairs")
        series(args.pairs, latency)


def compile_as_installed() -> None:
    """The bytecode of the cms package that A runs (the one ``import cms`` finds with
    this environment), as ``pip install`` writes it."""
    found = subprocess.run(
        [sys.executable, "-c", "import cms, os; print(os.path.dirname(cms.__file__))"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    compileall.compile_dir(found, quiet=1)
    print(f"bytecode of {found} compiled, as pip install does")


def series(pairs: int, latency: float) -> None:
    claude = install_claude()
    with tempfile.TemporaryDirectory() as tmp, StandIn() as api:
        root = Path(tmp)
        home = root / "home"
        (home / ".claude").mkdir(parents=True)
        (home / ".claude" / "settings.json").write_text(
            json.dumps({"permissions": {"allow": ["Write", "Edit", "Bash"]}})
        )
        project = root / "project"
        project.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC", "CMS_"))
        }
        env.update(
            HOME=str(home),
            CMS_HOME=str(root / "cms-home"),
            CMS_CLAUDE_BIN=str(claude),
            ANTHROPIC_BASE_URL=api.url,
            ANTHROPIC_API_KEY="sk-bench",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            CLAUDE_CODE_MAX_RETRIES="0",
        )

        def script(marker: str) -> None:
            target = project / f"{marker}.txt"
            api.script(
                marker,
                [
                    tool_use("Write", {"file_path": str(target), "content": "x\n"}, delay=latency),
                    text("ok", delay=latency),
                ],
            )

        # A's venv is all there is of cms for it: no PYTHONPATH leads to a checkout.
        user_env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

        def run_cms(i: int, here: bool = False) -> float:
            marker = f"{'HERE' if here else 'CMS'}-{i}-{latency}"
            script(marker)
            start = time.perf_counter()
            subprocess.run(
                [*(HERE if here else CMS), "delegate", f"task {marker}"],
                cwd=project, env=env if here else user_env, check=True, capture_output=True,
            )  # fmt: skip
            return time.perf_counter() - start

        def run_bare(i: int) -> float:
            marker = f"BARE-{i}-{latency}"
            script(marker)
            start = time.perf_counter()
            subprocess.run(
                [str(claude), "-p", f"task {marker}", "--output-format", "stream-json",
                 "--verbose", "--permission-mode", "acceptEdits"],
                cwd=project, env=env, check=True, capture_output=True,
            )  # fmt: skip
            return time.perf_counter() - start

        def capture() -> tuple[list[str], dict[str, str]]:
            """The argv and environment of the claude that cms starts for a delegation."""
            api.script("CAPTURE", [text("ok", delay=3.0)])
            subprocess.run(
                [*CMS, "delegate", "task CAPTURE", "--name", "captured", "--background"],
                cwd=project, env=user_env, check=True, capture_output=True,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                shown = subprocess.run(
                    [*CMS, "show", "captured", "--json"], cwd=project, env=user_env,
                    check=True, capture_output=True, text=True,
                ).stdout  # fmt: skip
                pid = json.loads(shown).get("child_pid")
                if pid:
                    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")[:-1]
                    break
                time.sleep(0.05)
            else:
                raise SystemExit("the captured delegation never started claude")
            subprocess.run(
                [*CMS, "wait", "captured"], cwd=project, env=user_env, capture_output=True
            )
            child_env = dict(e.decode().split("=", 1) for e in environ)
            return [a.decode() for a in argv], child_env

        def run_same(i: int) -> float:
            marker = f"SAME-{i}-{latency}"
            script(marker)
            argv = list(same_argv)
            argv[argv.index("--session-id") + 1] = str(uuid.uuid4())
            temp = same_env.get("CLAUDE_CODE_TMPDIR")
            if temp:  # the turn's private temp folder, which cms removed after it
                Path(temp).mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            subprocess.run(
                argv, input=f"task {marker}".encode(), cwd=project, env=same_env, check=True,
                capture_output=True,
            )  # fmt: skip
            return time.perf_counter() - start

        same_argv, same_env = capture()
        run_cms(-1000)  # warm up: the CLI's version probe is cached after the first run
        run_cms(-1000, here=True)
        run_same(-1000)
        run_bare(-1000)
        sampler = PeakSampler(root / "cms-home")
        sampler.start()
        rounds: list[tuple[float, float, float, float]] = []
        cpus: list[tuple[float, float, float, float]] = []
        for i in range(pairs):
            (a, a_cpu), (b, b_cpu), (c, c_cpu), (d, d_cpu) = (
                cpu_of(run_cms, i),
                cpu_of(run_same, i),
                cpu_of(run_bare, i),
                cpu_of(run_cms, i, True),
            )
            rounds.append((a, b, c, d))
            cpus.append((a_cpu, b_cpu, c_cpu, d_cpu))
            print(f"round {i + 1:2d}: cms {a:.3f}s  same claude -p {b:.3f}s  bare {c:.3f}s"
                  f"  cms here {d:.3f}s  (CPU {a_cpu:.3f}s {b_cpu:.3f}s {c_cpu:.3f}s"
                  f" {d_cpu:.3f}s)")  # fmt: skip
        sampler.done.set()
        sampler.join()
    report(rounds, cpus)
    print(f"supervisor peak RSS             : {sampler.overall_peak_kb / 1024:.1f} MiB")


def report(
    rounds: list[tuple[float, float, float, float]], cpus: list[tuple[float, float, float, float]]
) -> None:
    cms_s, same_s, bare_s, here_s = (statistics.median(r[k] for r in rounds) for k in range(4))
    own = statistics.median(a - b for a, b, _, _ in rounds)
    own_here = statistics.median(d - b for _, b, _, d in rounds)
    sandbox = statistics.median(b - c for _, b, c, _ in rounds)
    ratio = statistics.median(a / c for a, _, c, _ in rounds)
    print(f"median A cms delegate (venv)    : {cms_s:.3f}s")
    print(f"median B the same claude -p     : {same_s:.3f}s")
    print(f"median C bare claude -p         : {bare_s:.3f}s")
    print(f"median D cms delegate (here)    : {here_s:.3f}s")
    verdict = "met" if own < 0.150 else "NOT met"
    print(f"cms's own cost (A - B, median)  : {own * 1000:.0f} ms  (target < 150 ms: {verdict})")
    print(f"  the same through this interpreter (D - B, median): {own_here * 1000:.0f} ms")
    print(f"cms's settings in Claude Code (B - C, median): {sandbox * 1000:.0f} ms")
    own_cpu = statistics.median(a - b for a, b, _, _ in cpus)
    each = " / ".join(f"{statistics.median(r[k] for r in cpus):.3f}s" for k in range(4))
    print(f"cms's own CPU time (A - B, median): {own_cpu * 1000:.0f} ms (A, B, C, D: {each})")
    print(f"median ratio cms / bare         : {ratio:.3f}")


if __name__ == "__main__":
    main()
