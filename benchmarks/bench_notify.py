"""Time the plugin's UserPromptSubmit hook on an ordinary prompt with nothing to tell,
against a bare interpreter start.

Standalone (no pytest): ``python benchmarks/bench_notify.py [--pairs N]``. It runs the
hook exactly as Claude Code does: the command line of ``hooks/hooks.json`` through
``/bin/sh -c``, with ``CLAUDE_PLUGIN_ROOT`` this checkout, the parent's
``CLAUDE_CODE_SESSION_ID`` and the prompt's JSON on stdin. A throwaway ``CMS_HOME``
holds notes for other parents (so the notes folder exists), none for this one.
Alternating A B A B so that drift in machine load hits both alike:

* A: the hook, nothing to tell (the user's every prompt, most of the time);
* B: ``python -c pass``;
* and, in the same rounds for reference: the hook with one note to tell (Python
  starts and prints the line; the note is put back before each run, untimed) and
  ``/bin/sh -c true`` (the floor of any hook command).

It prints the median of each and the median of the per-pair ratios A/B (target: under
0.5). Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import timed  # noqa: E402

from cms.engine import notices  # noqa: E402

PARENT = "11111111-2222-3333-4444-555555555555"


def hook_command() -> str:
    [entry] = json.loads((ROOT / "hooks" / "hooks.json").read_text())["hooks"]["UserPromptSubmit"]
    return str(entry["hooks"][0]["command"])


def prepare(tmp: Path) -> tuple[dict[str, str], bytes]:
    home = tmp / "cms-home"
    project = tmp / "project"
    project.mkdir()
    for k in range(3):  # other parents' notes: the notes folder exists, this one's does not
        other = f"99999999-0000-0000-0000-00000000000{k}"
        notices.note(home, other, {"project": str(project), "name": f"other-{k}",
                                   "status": "completed", "cost_usd": 0.01})  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "CLAUDE", "PYTHON"))}
    env.update(
        CMS_HOME=str(home),
        CMS_PYTHON=sys.executable,
        CLAUDE_PLUGIN_ROOT=str(ROOT),
        CLAUDE_CODE_SESSION_ID=PARENT,
        CLAUDE_PROJECT_DIR=str(project),
    )
    event = {
        "session_id": PARENT,
        "transcript_path": str(tmp / "t.jsonl"),
        "cwd": str(project),
        "prompt_id": "bcaa5848-7935-42ee-b14d-dfb015eebb9a",
        "permission_mode": "default",
        "hook_event_name": "UserPromptSubmit",
        "prompt": "Now add tests for the parser and run them",
    }
    return env, json.dumps(event).encode()


def run(argv: list[str], env: dict[str, str], stdin: bytes, told: bool = False) -> float:
    return timed(argv, env, stdin, prints=told)  # the line for the parent, or nothing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=40)
    args = parser.parse_args()
    hook = ["/bin/sh", "-c", hook_command()]
    bare = [sys.executable, "-c", "pass"]
    floor = ["/bin/sh", "-c", "true"]
    a: list[float] = []
    b: list[float] = []
    told: list[float] = []
    shell: list[float] = []
    with tempfile.TemporaryDirectory(prefix="cms-bench-") as tmp:
        env, stdin = prepare(Path(tmp))
        home = Path(env["CMS_HOME"])
        note = {"project": str(Path(tmp) / "project"), "name": "parser-tests",
                "status": "completed", "cost_usd": 0.0421}  # fmt: skip
        for argv in (hook, bare, floor):  # warm caches
            run(argv, env, stdin)
        for _ in range(args.pairs):
            a.append(run(hook, env, stdin))
            b.append(run(bare, env, stdin))
            notices.note(home, PARENT, note)
            told.append(run(hook, env, stdin, told=True))
            shell.append(run(floor, env, stdin))
    ms = 1000.0
    print(f"python: {sys.executable}; {args.pairs} rounds, A B alternating")
    print(f"hook command: {hook_command()}")
    print(f"A  the hook, nothing to tell   median {statistics.median(a) * ms:6.1f} ms")
    print(f"B  python -c pass              median {statistics.median(b) * ms:6.1f} ms")
    ratio = statistics.median([x / y for x, y in zip(a, b, strict=True)])
    print(f"median ratio A/B: {ratio:.2f} (target < 0.5)")
    print("reference (median, and ratio of medians to B):")
    for name, times in (("the hook, one line to tell", told), ("/bin/sh -c true", shell)):
        median = statistics.median(times)
        print(f"   {name:28} {median * ms:6.1f} ms  x{median / statistics.median(b):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
