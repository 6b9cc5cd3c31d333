"""Wall time of one scripted task through `cms delegate` against bare `claude -p`.

Both run the real pinned Claude Code CLI against the loopback stand-in with the same
script (a Write tool call, then a text answer), alternating A B A B so machine noise
hits both alike. Prints the median of each, the median of the per-pair ratios (target:
at most 1.15) and the supervisor's peak resident memory (VmHWM, sampled from /proc
while it runs).

    python benchmarks/bench_delegate.py [--pairs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from claude_version import install_claude  # noqa: E402
from standin import StandIn, text, tool_use  # noqa: E402
from supervisors import PeakSampler  # noqa: E402

#: The console script next to this interpreter (what `pip install` made), not a
#: version manager's shim in front of it, which would add its own start-up time.
_SCRIPT = Path(sys.executable).parent / "cms"
CMS = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "cms.ui.cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument(
        "--latency", type=float, nargs="*", default=[0.0, 1.0],
        help="seconds the stand-in waits before each answer; one series per value",
    )  # fmt: skip
    args = parser.parse_args()
    for latency in args.latency:
        print(f"== stand-in latency {latency:g}s per API call, {args.pairs} pairs")
        series(args.pairs, latency)


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

        def run_cms(i: int) -> float:
            marker = f"CMS-{i}-{latency}"
            script(marker)
            start = time.perf_counter()
            subprocess.run(
                [*CMS, "delegate", f"task {marker}"],
                cwd=project, env=env, check=True, capture_output=True,
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

        run_cms(-1000)  # warm up: the CLI's version probe is cached after the first run
        run_bare(-1000)
        sampler = PeakSampler(root / "cms-home")
        sampler.start()
        cms_times, bare_times, ratios = [], [], []
        for i in range(pairs):
            a = run_cms(i)
            b = run_bare(i)
            cms_times.append(a)
            bare_times.append(b)
            ratios.append(a / b)
            print(f"pair {i + 1:2d}: cms {a:.3f}s  claude -p {b:.3f}s  ratio {a / b:.3f}")
        sampler.done.set()
        sampler.join()
    ratio = statistics.median(ratios)
    print(f"median cms delegate : {statistics.median(cms_times):.3f}s")
    print(f"median claude -p    : {statistics.median(bare_times):.3f}s")
    verdict = "met" if ratio <= 1.15 else "NOT met"
    print(f"median ratio        : {ratio:.3f}  (target <= 1.15: {verdict})")
    print(f"supervisor peak RSS : {sampler.overall_peak_kb / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
