"""Time the user's PreToolUse hook with a cap set, on a 20 MB transcript, against a bare
interpreter start.

Standalone (no pytest): ``python benchmarks/bench_caps.py [--pairs N] [--mb N]``. It
prepares a throwaway HOME and CMS_HOME, a project with ``--session-cap`` and
``--daily-cap`` set (so the hook reads the session's transcript, its subagents and the
project's day), and a transcript of about 20 MB written as Claude Code 2.1.332 writes
one (assistant messages of several lines, tool results, attachments). Then, as Claude
Code runs it (the command line of hooks/hooks.json through ``/bin/sh -c``):

* the first call, which reads the whole transcript once;
* A: the hook per call after that, one more assistant message appended before each
  call (outside the timing), as a session grows between its tool calls;
* B: ``python -c pass`` in the same environment, alternating A B A B;
* and for reference the same hook command in a project without caps while another
  project has some (the hook script's shell test), and with no caps anywhere (the
  hooks.json command line's own test).

It prints the medians and the median of the per-pair ratios A/B (the target is at most
1.5). Nothing outside the temporary folder is touched.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from timing import timed  # noqa: E402


def hook_command() -> str:
    [entry] = json.loads((ROOT / "hooks" / "hooks.json").read_text())["hooks"]["PreToolUse"]
    [hook] = entry["hooks"]
    return str(hook["command"])


def message(n: int, session: str) -> tuple[str, str]:
    """One assistant message as two lines (a text block and a tool_use block sharing the
    id), and its tool's id."""
    tool = f"toolu_bench_{n:08d}"
    split = {"ephemeral_5m_input_tokens": 900, "ephemeral_1h_input_tokens": 0}
    usage = {"input_tokens": 1200, "output_tokens": 80, "cache_read_input_tokens": 30000,
             "cache_creation_input_tokens": 900, "cache_creation": split}  # fmt: skip
    base = {"type": "assistant", "sessionId": session, "timestamp": "2026-12-06T10:00:00.000Z",
            "uuid": str(uuid.uuid4())}  # fmt: skip
    blocks = [
        {"type": "text", "text": "Looking at the parser next. " * 8},
        {"type": "tool_use", "id": tool, "name": "Bash",
         "input": {"command": "python -m pytest -x -q tests/test_parser.py", "description": "t"}},
    ]  # fmt: skip
    lines = []
    for block in blocks:
        body = {"id": f"msg_bench_{n:08d}", "type": "message", "role": "assistant",
                "model": "claude-sonnet-4-5", "content": [block], "usage": usage}  # fmt: skip
        lines.append(json.dumps({**base, "message": body}))
    result = {"type": "user", "sessionId": session, "timestamp": "2026-12-06T10:00:01.000Z",
              "message": {"role": "user", "content": [{"type": "tool_result",
              "tool_use_id": tool, "content": "x" * 3000}]}}  # fmt: skip
    return "\n".join([*lines, json.dumps(result)]) + "\n", tool


def prepare(tmp: Path, megabytes: int) -> tuple[dict[str, str], Path, Path, str]:
    home, cms_home = tmp / "home", tmp / "cms-home"
    capped, plain = tmp / "capped", tmp / "plain"
    for folder in (home, capped, plain):
        folder.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "CLAUDE", "PYTHON"))}
    env.update(
        HOME=str(home),
        CMS_HOME=str(cms_home),
        CMS_PYTHON=sys.executable,
        CLAUDE_PLUGIN_ROOT=str(ROOT),
        CLAUDE_PLUGIN_DATA=str(tmp / "data"),
        PYTHONPATH=str(ROOT),
    )
    cli = [sys.executable, "-m", "cms.ui.cli", "--project", str(capped), "budget"]
    subprocess.run([*cli, "--session-cap", "5000", "--daily-cap", "9000"], env=env, check=True,
                   capture_output=True)  # fmt: skip
    session = str(uuid.uuid4())
    folder = re.sub(r"[^A-Za-z0-9]", "-", str(capped))
    transcript = home / ".claude" / "projects" / folder / f"{session}.jsonl"
    transcript.parent.mkdir(parents=True)
    with transcript.open("w") as handle:
        first = {"type": "user", "timestamp": "2026-12-06T09:59:00.000Z",
                 "message": {"role": "user", "content": "Refactor the parser"}}  # fmt: skip
        handle.write(json.dumps(first) + "\n")
        n = 0
        while handle.tell() < megabytes * 1_000_000:
            n += 1
            handle.write(message(n, session)[0])
    return env, capped, transcript, session


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    shell = ["/bin/sh", "-c", hook_command()]
    bare = [sys.executable, "-c", "pass"]
    with tempfile.TemporaryDirectory(prefix="cms-bench-caps-") as tmp:
        env, capped, transcript, session = prepare(Path(tmp), args.mb)
        size = transcript.stat().st_size
        n = 10_000_000

        def event(tool: str, project: Path) -> bytes:
            payload = {"session_id": session, "transcript_path": str(transcript),
                       "cwd": str(project), "hook_event_name": "PreToolUse", "tool_name": "Bash",
                       "tool_input": {"command": "true"}, "tool_use_id": tool}  # fmt: skip
            return json.dumps(payload).encode()

        def grow() -> str:
            nonlocal n
            n += 1
            text, tool = message(n, session)
            with transcript.open("a") as handle:
                handle.write(text)
            return tool

        capped_env = {**env, "CLAUDE_PROJECT_DIR": str(capped)}
        plain_env = {**env, "CLAUDE_PROJECT_DIR": str(Path(tmp) / "plain")}
        started = time.perf_counter()
        timed(shell, capped_env, event(grow(), capped), capped, prints=False)
        first = time.perf_counter() - started
        timed(bare, env)
        a: list[float] = []
        b: list[float] = []
        plain: list[float] = []
        nowhere: list[float] = []
        nowhere_env = {**plain_env, "CMS_HOME": str(Path(tmp) / "no-caps-home")}
        for _ in range(args.pairs):
            tool = grow()
            a.append(timed(shell, capped_env, event(tool, capped), capped, prints=False))
            b.append(timed(bare, env))
            plain.append(timed(shell, plain_env, event(tool, capped), capped, prints=False))
            nowhere.append(timed(shell, nowhere_env, event(tool, capped), capped, prints=False))
    ms = 1000.0
    print(f"python: {sys.executable}; transcript {size / 1e6:.1f} MB; {args.pairs} rounds")
    print(f"first call (reads the whole transcript once)  {first * ms:8.1f} ms")
    hook, python = statistics.median(a) * ms, statistics.median(b) * ms
    print(f"A  PreToolUse hook, session and daily caps set  median {hook:6.1f} ms")
    print(f"B  python -c pass                               median {python:6.1f} ms")
    ratio = statistics.median([x / y for x, y in zip(a, b, strict=True)])
    print(f"median ratio A/B: {ratio:.2f} (target <= 1.5)")
    shell_only = statistics.median(plain) * ms
    print(f"reference: the same hook in a project without caps  median {shell_only:6.1f} ms")
    none_at_all = statistics.median(nowhere) * ms
    print(f"reference: the same hook with no caps anywhere      median {none_at_all:6.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
