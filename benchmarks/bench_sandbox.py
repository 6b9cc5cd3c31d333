"""The cost of Claude Code's sandbox per Bash call: a trivial command, sandboxed or not.

Standalone (no pytest): ``python benchmarks/bench_sandbox.py [--rounds 6] [--calls 12]``.
Each round runs the pinned ``claude -p`` twice against the loopback stand-in of
``tests/standin.py``, scripted to make ``--calls`` Bash calls of ``true``: once with the
sandbox cms compiles for an ``edit`` child (bubblewrap and socat on Linux), once
without, alternating which goes first so that drift in machine load hits both alike.

A Bash call's time is the gap between the stand-in answering with the tool call and
the CLI's next request (which carries the result): the command, Claude Code's own
handling of it, and, sandboxed, starting bubblewrap around it. The script prints the
median per call of each and the median of the per-round ratios, and the difference:
what the sandbox adds to one command.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from claude_version import install_claude  # noqa: E402
from standin import StandIn, text, tool_use  # noqa: E402

from cms.engine import sandboxprobe  # noqa: E402
from cms.policy import sandbox  # noqa: E402


def per_call_seconds(
    claude: Path, api: StandIn, marker: str, calls: int, settings: dict[str, object],
    home: Path, cwd: Path,
) -> list[float]:  # fmt: skip
    api.script(marker, [*(tool_use("Bash", {"command": "true"}) for _ in range(calls)),
                        text("done")])  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC"))}
    env.update(
        HOME=str(home),
        ANTHROPIC_BASE_URL=api.url,
        ANTHROPIC_API_KEY="sk-bench",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    argv = [
        str(claude), "-p", "--output-format", "stream-json", "--verbose",
        "--permission-mode", "acceptEdits", "--allowedTools", "Bash",
        "--settings", json.dumps(settings),
    ]  # fmt: skip
    done = subprocess.run(argv, input=f"bench {marker}", cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"claude failed: {done.stderr[-500:]}")
    times = [r.time for r in api.requests_for(marker)]
    if len(times) != calls + 1:
        raise SystemExit(f"expected {calls + 1} requests, got {len(times)}")
    return [b - a for a, b in itertools.pairwise(times)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=12)
    args = parser.parse_args()
    found = sandboxprobe.check()
    if not found.ok:
        raise SystemExit(f"the sandbox cannot run here: {found.detail}; {found.fix}")
    claude = install_claude()
    with tempfile.TemporaryDirectory() as tmp, StandIn() as api:
        home, cwd, temp = Path(tmp, "home"), Path(tmp, "project"), Path(tmp, "temp")
        (home / ".claude").mkdir(parents=True)
        cwd.mkdir()
        temp.mkdir(mode=0o700)
        compiled = sandbox.settings(
            "edit", cwd=str(cwd), temp_dir=str(temp), state_dir=str(Path(tmp, "state"))
        )
        variants = {"sandboxed": {"sandbox": compiled}, "plain": {}}
        medians: dict[str, list[float]] = {"sandboxed": [], "plain": []}
        ratios = []
        for n in range(args.rounds):
            order = ["sandboxed", "plain"] if n % 2 == 0 else ["plain", "sandboxed"]
            this_round = {}
            for name in order:
                gaps = per_call_seconds(
                    claude, api, f"B-{name}-{n}", args.calls, variants[name], home, cwd
                )
                this_round[name] = statistics.median(gaps)
                medians[name].append(this_round[name])
            ratios.append(this_round["sandboxed"] / this_round["plain"])
        sandboxed = statistics.median(medians["sandboxed"]) * 1000
        plain = statistics.median(medians["plain"]) * 1000
        print(f"Bash `true`, per call ({args.rounds} rounds x {args.calls} calls):")
        print(f"  sandboxed  median {sandboxed:7.1f} ms")
        print(f"  plain      median {plain:7.1f} ms")
        print(f"  the sandbox adds {sandboxed - plain:.1f} ms a call "
              f"(median ratio {statistics.median(ratios):.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
