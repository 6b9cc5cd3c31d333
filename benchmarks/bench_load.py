"""Many background delegations at once in one project: time to all final, supervisor
memory, and the spend check.

Starts ``--sessions`` (default 20) ``cms delegate --background`` commands at the same
moment in one project whose parallel limit is raised to match, each a scripted task (a
Write tool call, then a text answer) run by the real pinned Claude Code CLI against the
loopback stand-in. Prints the wall time from the first start to every session final,
how long the slowest ``--background`` start took to return, each supervisor's peak
resident memory (VmHWM, sampled from /proc while they run: min / median / max), and
whether the project's spend equals the sum of the sessions' spend and what the CLI
was scripted to charge.

    python benchmarks/bench_load.py [--sessions 20] [--rounds 3] [--latency 0]
"""

from __future__ import annotations

import argparse
import json
import math
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
from standin import Reply, StandIn, expected_cost, text, tool_use  # noqa: E402
from supervisors import PeakSampler  # noqa: E402

MODEL = "claude-sonnet-4-5"
CMS = [sys.executable, "-m", "cms.ui.cli"]


def cms(env: dict[str, str], cwd: Path, *args: str) -> object:
    done = subprocess.run(
        [*CMS, "--json", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode not in (0, 1):
        raise SystemExit(f"cms {' '.join(args)} failed: {done.stderr.strip()}")
    return json.loads(done.stdout)


def one_round(sessions: int, latency: float, api: StandIn, root: Path, claude: Path) -> None:
    home = root / "home"
    (home / ".claude").mkdir(parents=True)
    (home / ".claude" / "settings.json").write_text(
        json.dumps({"permissions": {"allow": ["Write", "Edit", "Bash"]}})
    )
    project = root / "project"
    project.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    cms_home = root / "cms-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLAUDE", "ANTHROPIC", "CMS_"))}
    env.update(
        HOME=str(home),
        CMS_HOME=str(cms_home),
        CMS_CLAUDE_BIN=str(claude),
        ANTHROPIC_BASE_URL=api.url,
        ANTHROPIC_API_KEY="sk-bench",
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
        CLAUDE_CODE_MAX_RETRIES="0",
    )
    cms(env, project, "budget", "--max-parallel", str(sessions))
    cms(env, project, "doctor")  # warm the CLI's version cache, as a second use would
    scripts: dict[str, list[Reply]] = {}
    for i in range(sessions):
        name = f"load-{i:03d}"
        target = project / f"{name}.txt"
        scripts[name] = [
            tool_use(
                "Write",
                {"file_path": str(target), "content": "x\n"},
                delay=latency,
                input_tokens=500 + 37 * i,
                output_tokens=20 + i,
            ),
            text(f"answer {i}", delay=latency, input_tokens=900 + 53 * i, output_tokens=5 + i),
        ]
        api.script(f"{root.name}-{name}-MARK", scripts[name])

    sampler = PeakSampler(cms_home)
    sampler.start()
    started = time.monotonic()
    launches = [
        subprocess.Popen(
            [
                *CMS,
                "delegate",
                f"task {root.name}-{name}-MARK",
                "--name",
                name,
                "--background",
                "--model",
                MODEL,
            ],
            cwd=project,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in scripts
    ]
    slowest_start = 0.0
    for proc in launches:
        _, err = proc.communicate()
        slowest_start = max(slowest_start, time.monotonic() - started)
        if proc.returncode != 0:
            raise SystemExit(f"a background start failed: {err.decode().strip()}")
    records = cms(env, project, "wait", *scripts)
    wall = time.monotonic() - started
    sampler.done.set()
    sampler.join()

    assert isinstance(records, list)
    statuses = {r["status"] for r in records}
    total = cms(env, project, "cost")
    assert isinstance(total, dict)
    session_sum = math.fsum(r["cost_usd"] for r in records)
    scripted = math.fsum(expected_cost(MODEL, s) for s in scripts.values())
    spend_ok = total["total_cost_usd"] == round(session_sum, 6) and math.isclose(
        session_sum, scripted, rel_tol=1e-9
    )
    lost = sessions - len(list((cms_home / "projects").glob("*/sessions/*.toml")))
    peaks = sorted(kb / 1024 for kb in sampler.peak_kb.values())
    print(
        f"{sessions} sessions: all final in {wall:.1f}s (slowest --background start returned "
        f"after {slowest_start:.1f}s); statuses {sorted(statuses)}; records lost {lost}"
    )
    if peaks:
        print(
            f"  supervisor peak RSS over {len(peaks)}: min {peaks[0]:.1f} / median "
            f"{statistics.median(peaks):.1f} / max {peaks[-1]:.1f} MiB"
        )
    print(
        f"  project spend ${total['total_cost_usd']:.6f}, sum of sessions ${session_sum:.6f},"
        f" scripted ${scripted:.6f}: {'equal' if spend_ok else 'NOT equal'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds the stand-in waits per API call"
    )
    args = parser.parse_args()
    claude = install_claude()
    print(
        f"== {args.sessions} background delegations at once, stand-in latency "
        f"{args.latency:g}s, {args.rounds} rounds"
    )
    with StandIn() as api:
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                one_round(args.sessions, args.latency, api, Path(tmp), claude)


if __name__ == "__main__":
    main()
