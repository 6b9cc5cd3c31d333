"""Wall-clock benchmark of ``cms --json list`` over a project with many sessions.

Creates a throwaway ``CMS_HOME`` holding one project with ``--sessions`` realistic
records (varied statuses, a few KB of response each) written through
:mod:`cms.engine.store`, then runs the real ``cms --json list`` as a whole process ``--runs``
times and prints min/median/max in milliseconds against the target (300 ms), with
``python -c pass`` and a bare ``import cms.ui.cli, cms.ops`` as reference points.

A few sessions are ``running`` with this script's own pid as their supervisor, so
every run pays the per-record liveness check without turning them ``interrupted``.
No ``queued`` sessions: listing those would try to start their turns.

    python benchmarks/bench_list.py [--sessions 1000] [--runs 15] [--response-kb 3]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cms.base.paths import ProjectPaths
from cms.engine import procs
from cms.engine.models import Preset, SessionRecord, Status
from cms.engine.store import Store

TARGET_MS = 300.0
SETTLED = [s for s in Status if s not in (Status.QUEUED, Status.RUNNING)]
TEXT = (
    "refactor the store module so that every write is atomic and add tests for the "
    "lock handling then update the README with the new layout and check the CLI "
    "output for errors in the JSON rendering of sessions costs turns budgets"
)
WORDS = TEXT.split()


def cms_command() -> list[str]:
    script = Path(sys.executable).with_name("cms")
    found = str(script) if script.exists() else shutil.which("cms")
    return [found] if found else [sys.executable, "-m", "cms.ui.cli"]


def make_record(i: int, rng: random.Random, response_kb: int, running: bool) -> SessionRecord:
    created = datetime.now(UTC) - timedelta(minutes=rng.randint(1, 60 * 24 * 30))
    task = " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 40)))
    paragraph = " ".join(rng.choice(WORDS) for _ in range(60)) + "\n\n"
    response = (paragraph * (response_kb * 1024 // len(paragraph) + 1))[: response_kb * 1024]
    turns = rng.randint(1, 40)
    cost = round(rng.uniform(0.001, 3.0), 6)
    record = SessionRecord(
        name=f"session-{i:04d}",
        status=Status.RUNNING if running else rng.choice(SETTLED),
        preset=rng.choice(list(Preset)),
        model=rng.choice([None, "sonnet", "opus", "haiku"]),
        task=task,
        response=response,
        error=None if rng.random() < 0.7 else "exit 1: something went wrong",
        cost_usd=cost,
        settled_cost_usd=cost,
        turns=turns,
        settled_turns=turns,
        input_tokens=rng.randint(1000, 500_000),
        output_tokens=rng.randint(100, 50_000),
        max_cost_usd=rng.choice([None, 5.0, 10.0]),
        max_turns=rng.choice([None, 50, 100]),
        timeout_s=rng.choice([None, 600.0, 1800.0]),
        session_id=f"{rng.getrandbits(128):032x}",
        has_conversation=True,
        cwd="/home/user/project",
        project="/home/user/project",
        exchanges=rng.randint(1, 5),
        last_activity="Edit: cms/store.py",
        created_at=created,
        updated_at=created + timedelta(minutes=rng.randint(1, 90)),
        ended_at=None if running else created + timedelta(minutes=rng.randint(1, 90)),
    )
    if running:
        record.pid = os.getpid()
        record.pid_started = procs.start_ticks(os.getpid())
        record.turn_started_at = datetime.now(UTC)
    return record


def populate(home: Path, project: Path, count: int, response_kb: int, seed: int) -> Store:
    project.mkdir(parents=True)
    (project / ".git").mkdir()  # enough for cms to see a git top-level
    store = Store(ProjectPaths.for_project(project, home))
    rng = random.Random(seed)
    for i in range(count):
        store.create(make_record(i, rng, response_kb, running=i % 100 == 0))
    return store


def time_runs(
    argv: list[str], runs: int, env: dict[str, str], cwd: Path, warm_up: bool = True
) -> list[float]:
    """Milliseconds of each of ``runs`` runs (after one warm-up run, if asked)."""
    times: list[float] = []
    for i in range(runs + 1):
        started = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=False)
        elapsed = (time.perf_counter() - started) * 1000
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
        if i or not warm_up:
            times.append(elapsed)
    return times


def summary(label: str, times: list[float]) -> str:
    return (
        f"{label:<28} min {min(times):7.1f}  median {statistics.median(times):7.1f}  "
        f"max {max(times):7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--response-kb", type=int, default=3)
    parser.add_argument("--target-ms", type=float, default=TARGET_MS)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="Keep the temp CMS_HOME.")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="cms-bench-"))
    try:
        home, project = tmp / "cms-home", tmp / "project"
        started = time.perf_counter()
        store = populate(home, project, args.sessions, args.response_kb, args.seed)
        size = sum(p.stat().st_size for p in store.paths.sessions_dir.glob("*.toml"))
        print(
            f"{args.sessions} sessions, {size / 1e6:.1f} MB of records, written in "
            f"{time.perf_counter() - started:.1f} s; {args.runs} runs each"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CMS_")}
        env.update(CMS_HOME=str(home), CMS_CLAUDE_BIN="/nonexistent")

        baseline = time_runs([sys.executable, "-c", "pass"], args.runs, env, project)
        imports = time_runs(
            [sys.executable, "-c", "import cms.ui.cli, cms.ops"], args.runs, env, project
        )
        # Cold: no index of parsed records yet (the first listing after records changed).
        index = store.paths.sessions_dir / ".index.json"
        cold: list[float] = []
        for _ in range(3):
            index.unlink(missing_ok=True)
            cold += time_runs([*cms_command(), "--json", "list"], 0, env, project, warm_up=False)
        listing = time_runs([*cms_command(), "--json", "list"], args.runs, env, project)
        still = store.list().records
        running = sum(r.status is Status.RUNNING for r in still)

        print(summary("python -c pass", baseline))
        print(summary("import cms.ui.cli, cms.ops", imports))
        print(summary("cms --json list, cold", cold))
        print(summary("cms --json list", listing))
        median = statistics.median(listing)
        verdict = "under" if median < args.target_ms else "OVER"
        print(f"median {median:.0f} ms is {verdict} the {args.target_ms:.0f} ms target")
        print(f"({running} sessions still running after the runs, as intended)")
        if args.keep:
            print(f"kept CMS_HOME={home} project={project}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
