"""Time the PreToolUse hook of a cms child against a bare interpreter start.

Standalone (no pytest): ``python benchmarks/bench_hook.py [--pairs N]``. It prepares a
throwaway CMS_HOME with a realistic session record, a few sibling sessions and a
project.toml with a spend cap (so the hook does all its reading), then runs, alternating
A B A B so that drift in machine load hits both alike:

* A: what a child's ``--settings`` runs (:func:`cms.engine.claude.hook_command`: ``python
  -S -P -c "...cms.hooks.child.main()" pre-tool-use``, no site, no runpy) with a
  realistic Bash call on stdin;
* B: ``python -c pass`` in the same environment;
* and, in the same rounds for reference, ``python -m cms.hooks.child`` (with site, and
  runpy), ``python -S -m cms.hooks.child`` (what children started before 2026-12-07
  run), ``python cms/hook.py`` (the file: no cached bytecode for it) and ``python -S -c
  pass``.

It prints the median of each and the median of the per-pair ratios A/B (the target is
at most 1.5). Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import timed  # noqa: E402

from cms.base.paths import ProjectPaths  # noqa: E402
from cms.engine.claude import HOOK_CODE  # noqa: E402

RECORD = """\
schema_version = 1
name = "{name}"
status = "running"
preset = "edit"
model = "claude-sonnet-4-5"
task = "Refactor the parser module and make the tests pass"
cost_usd = {cost}
settled_cost_usd = 0.21
turns = 7
settled_turns = 5
input_tokens = 48211
output_tokens = 5120
max_cost_usd = 2.0
max_turns = 40
timeout_s = 1800.0
session_id = "11111111-2222-3333-4444-555555555555"
has_conversation = true
cwd = "{cwd}"
project = "{project}"
pid = 4242
deadline = {deadline}
depth = 1
abort_requested = false
exchanges = 2
created_at = 2026-01-01T10:00:00Z
updated_at = 2026-01-01T10:05:00Z
"""

PROJECT = """\
schema_version = 1
project = "{project}"

[limits]
max_cost_usd = 25.0
max_parallel = 4
max_depth = 2

[defaults]
preset = "edit"
"""


def prepare(tmp: Path) -> tuple[dict[str, str], bytes]:
    project = tmp / "project"
    (project / "src").mkdir(parents=True)
    home = tmp / "cms-home"
    paths = ProjectPaths.for_project(project, home)
    paths.sessions_dir.mkdir(parents=True)
    deadline = time.time() + 3600
    for k, name in enumerate(["refactor-parser", "docs", "fix-tests", "bench"]):
        paths.session_file(name).write_text(
            RECORD.format(
                name=name, cost=0.1 + k / 10, cwd=project, project=project, deadline=deadline
            )
        )
    paths.project_file.write_text(PROJECT.format(project=project))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "CLAUDE", "PYTHON"))}
    env.update(
        CMS_SESSION="refactor-parser",
        CMS_PROJECT=str(project),
        CMS_HOME=str(home),
        CMS_DEPTH="1",
        PYTHONPATH=str(ROOT),
    )
    payload = {
        "session_id": "11111111-2222-3333-4444-555555555555",
        "transcript_path": str(tmp / "t.jsonl"),
        "cwd": str(project),
        "permission_mode": "acceptEdits",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_input": {
            "command": "cd src && python -m pytest -x -q tests/test_parser.py 2>&1 | tail -20"
            " && git diff --stat > build/diffstat.txt",
            "description": "Run the parser tests",
        },
        "tool_use_id": "toolu_00000003",
    }
    return env, json.dumps(payload).encode()


def run(argv: list[str], env: dict[str, str], stdin: bytes) -> float:
    return timed(argv, env, stdin, prints=False)  # an allowed call prints nothing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    python = sys.executable
    # A: exactly what a child's hook runs (cms.engine.claude.hook_command), without its sh.
    hook_m = [python, "-S", "-P", "-c", HOOK_CODE, "pre-tool-use"]
    bare = [python, "-c", "pass"]
    # For reference (same rounds): other ways hooks.json could start the hook.
    references = {
        "python -m cms.hooks.child (with site)": [python, "-m", "cms.hooks.child", "pre-tool-use"],
        "python -S -m cms.hooks.child": [python, "-S", "-m", "cms.hooks.child", "pre-tool-use"],
        "python cms/hook.py": [python, str(ROOT / "cms" / "hook.py"), "pre-tool-use"],
        "python -S -c pass": [python, "-S", "-c", "pass"],
    }  # fmt: skip
    a: list[float] = []
    b: list[float] = []
    ref: dict[str, list[float]] = {name: [] for name in references}
    with tempfile.TemporaryDirectory(prefix="cms-bench-") as tmp:
        env, stdin = prepare(Path(tmp))
        for argv in (hook_m, bare, *references.values()):  # warm caches and .pyc files
            run(argv, env, stdin)
        for _ in range(args.pairs):
            a.append(run(hook_m, env, stdin))
            b.append(run(bare, env, stdin))
            for name, argv in references.items():
                ref[name].append(run(argv, env, stdin))
    ms = 1000.0
    bare_median = statistics.median(b)
    print(f"python: {python}; {args.pairs} rounds, A B alternating")
    hook_median = statistics.median(a) * ms
    print(f"A  the child's hook command          median {hook_median:6.1f} ms")
    print(f"B  python -c pass                    median {bare_median * ms:6.1f} ms")
    ratio = statistics.median([x / y for x, y in zip(a, b, strict=True)])
    print(f"median ratio A/B: {ratio:.2f} (target <= 1.5)")
    print("reference (median, and ratio of medians to B):")
    for name, times in ref.items():
        median = statistics.median(times)
        print(f"   {name:34} {median * ms:6.1f} ms  x{median / bare_median:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
