"""Spend read from Claude Code's transcripts (cms.hooks.spend), the caps' hook and
``cms budget``'s caps, without the real CLI: transcripts written as Claude Code 2.1.332
writes them (one line per content block of a message, sharing its id)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms

from cms.base.paths import ProjectPaths
from cms.hooks import caps, prices, spend

REPO = Path(__file__).resolve().parent.parent
STAMP = "2026-12-06T12:00:00.000Z"


def line(msg_id: str, tokens: int, model: str = "claude-opus-5-5", **usage: Any) -> str:
    entry = {
        "type": "assistant",
        "timestamp": STAMP,
        "message": {
            "id": msg_id, "model": model, "role": "assistant",
            "content": [{"type": "tool_use", "id": f"toolu_{msg_id}", "name": "Bash", "input": {}}],
            "usage": {"input_tokens": tokens, "output_tokens": 0, **usage},
        },
    }  # fmt: skip
    return json.dumps(entry) + "\n"


@pytest.fixture
def ledger(tmp_path: Path) -> spend.Ledger:
    where = ProjectPaths.for_project(tmp_path / "project", tmp_path / "cms-home")
    return spend.Ledger(where, {"HOME": str(tmp_path / "home")})


def test_a_message_written_as_several_lines_is_counted_once(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(line("m1", 1_000_000) + line("m1", 1_000_000) + line("m2", 500_000))
    state = ledger.read(transcript, "s")
    assert state["total"] == pytest.approx(4.0 + 2.0)
    with transcript.open("a") as handle:  # the next block of m2 arrives in a later read
        handle.write(line("m2", 500_000))
    assert ledger.read(transcript, "s")["total"] == pytest.approx(6.0)


def test_cache_writes_of_both_kinds_and_cache_reads_are_priced(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    split = {"ephemeral_5m_input_tokens": 1_000_000, "ephemeral_1h_input_tokens": 1_000_000}
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(
        line("m1", 0, cache_creation_input_tokens=2_000_000, cache_creation=split,
             cache_read_input_tokens=1_000_000)
    )  # fmt: skip
    assert ledger.read(transcript, "s")["total"] == pytest.approx(5.0 + 8.0 + 0.2)


def test_only_what_was_added_is_read_and_a_line_being_written_waits(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(line("m1", 1_000_000))
    first = ledger.read(transcript, "s")
    half = line("m2", 1_000_000)
    with transcript.open("a") as handle:
        handle.write(half[:40])  # Claude Code still writing it
    state = ledger.read(transcript, "s")
    assert state["offset"] == first["offset"] and state["total"] == pytest.approx(4.0)
    with transcript.open("a") as handle:
        handle.write(half[40:])
    assert ledger.read(transcript, "s")["total"] == pytest.approx(8.0)


def test_a_truncated_or_rewritten_transcript_is_read_again_from_the_start(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(line("m1", 1_000_000) + line("m2", 1_000_000))
    assert ledger.read(transcript, "s")["total"] == pytest.approx(8.0)
    with transcript.open("r+") as handle:
        handle.truncate(len(line("m1", 1_000_000)))
    assert ledger.read(transcript, "s")["total"] == pytest.approx(4.0)
    # rewritten in place, as long as before: the bytes before the offset changed
    rewritten = line("m3", 2_000_000)
    assert len(rewritten) == len(line("m1", 1_000_000))
    transcript.write_text(rewritten)
    assert ledger.read(transcript, "s")["total"] == pytest.approx(8.0)
    replaced = tmp_path / "new.jsonl"
    replaced.write_text(line("m4", 250_000))
    os.replace(replaced, transcript)  # a new file under the same name
    assert ledger.read(transcript, "s")["total"] == pytest.approx(1.0)


def test_a_malformed_line_is_skipped_and_an_unknown_model_priced_at_the_highest_rate(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    transcript = tmp_path / "s.jsonl"
    junk = '{"type":"assistant","message":{"usage": broken\n'
    transcript.write_text(line("m1", 1_000_000) + junk + line("m2", 1_000_000, model="mystery-9"))
    state = ledger.read(transcript, "s")
    assert state["bad_lines"] == 1
    assert state["unknown"] == ["mystery-9"]
    assert state["total"] == pytest.approx(4.0 + prices.HIGHEST[0])
    assert prices.rates("claude-sonnet-4-5-20250929") == (prices.PRICES["claude-sonnet-4-5"], True)


def test_the_hook_fails_open_on_its_own_errors_in_your_session(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    home = tmp_path / "cms-home"
    where = ProjectPaths.for_project(project, home)
    where.root.mkdir(parents=True)
    marker = caps.marker(home, where.key)
    marker.parent.mkdir(parents=True)
    marker.write_text('{"limits": {"session_cap_usd": ')  # broken by hand
    event = {"session_id": "s1", "transcript_path": str(tmp_path), "cwd": str(project),
             "tool_name": "Bash", "tool_input": {"command": "true"}}  # fmt: skip
    env = {**os.environ, "CMS_HOME": str(home), "CLAUDE_PROJECT_DIR": str(project)}
    env.pop("CMS_SESSION", None)
    for event_name in ("pre-tool-use", "user-prompt-submit", "statusline"):
        done = subprocess.run(
            [sys.executable, "-m", "cms.hooks.caps", event_name], input=json.dumps(event),
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout == "", done.stdout
        assert "JSONDecodeError" in done.stderr
    marker.write_text('{"limits": {"session_cap_usd": 0.5}}')
    done = subprocess.run(
        [sys.executable, "-m", "cms.hooks.caps", "pre-tool-use"], input=json.dumps(event),
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == ""  # a folder for a transcript: no spend


@pytest.mark.parametrize("value", ["-1", "0", "abc", "inf", "nan", "1e9", ""])
def test_a_cap_that_is_no_positive_amount_is_refused_and_nothing_changes(
    project: Path, claude_env: dict[str, str], cms_home: Path, value: str
) -> None:
    cms = Cms(claude_env, project)
    assert cms.run("budget", "--daily-cap", "3").code == 0
    before = cms.ok("budget")
    done = cms.run("budget", "--session-cap", value, "--max-parallel", "7")
    assert done.code == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "--session-cap" in done.stderr
    assert cms.ok("budget") == before


def test_caps_are_set_shown_and_removed_with_their_marker(
    project: Path, claude_env: dict[str, str], cms_home: Path
) -> None:
    cms = Cms(claude_env, project)
    key = ProjectPaths.for_project(project, cms_home).key
    shown = cms.ok("budget", "--session-cap", "2.5", "--subagent-cap", "0.5")
    assert shown["session_cap_usd"] == 2.5 and shown["subagent_cap_usd"] == 0.5
    assert shown["daily_cap_usd"] is None
    assert (cms_home / "capped" / key).is_file()
    text = cms.run("budget").stdout
    assert "session_cap_usd   $2.50" in text and "daily_cap_usd     none  (today " in text
    cms.ok("budget", "--session-cap", "none", "--subagent-cap", "NONE")
    assert not (cms_home / "capped").exists()
    assert cms.ok("budget")["session_cap_usd"] is None


def pre_tool_use_command() -> str:
    [entry] = json.loads((REPO / "hooks" / "hooks.json").read_text())["hooks"]["PreToolUse"]
    [hook] = entry["hooks"]
    return str(hook["command"])


def test_without_caps_in_the_project_the_pre_tool_use_hook_starts_no_interpreter(
    project: Path, claude_env: dict[str, str], cms_home: Path, tmp_path: Path
) -> None:
    starts = tmp_path / "python-starts"
    wrapper = tmp_path / "python-wrapper"
    wrapper.write_text(f'#!/bin/sh\necho x >> "{starts}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    env = {**claude_env, "CLAUDE_PLUGIN_ROOT": str(REPO), "CMS_PYTHON": str(wrapper),
           "CLAUDE_PROJECT_DIR": str(project)}  # fmt: skip
    event = {"session_id": "s1", "transcript_path": str(tmp_path / "none.jsonl"),
             "cwd": str(project), "tool_name": "Bash", "tool_input": {}}  # fmt: skip

    def hook() -> int:
        done = subprocess.run(
            ["/bin/sh", "-c", pre_tool_use_command()], input=json.dumps(event), env=env,
            cwd=project, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0 and done.stdout == "", done.stderr
        return len(starts.read_text().splitlines()) if starts.exists() else 0

    assert hook() == 0  # no caps anywhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert Cms(claude_env, elsewhere).run("budget", "--daily-cap", "5").code == 0
    assert hook() == 0  # caps in another project only: still a shell test
    assert Cms(claude_env, project).run("budget", "--session-cap", "5").code == 0
    assert hook() == 1  # this project's caps: Python reads the transcript
    assert caps.marker(cms_home, ProjectPaths.for_project(project, cms_home).key).exists()


def test_the_statusline_shows_this_sessions_spend_and_today_against_the_caps(
    project: Path, claude_env: dict[str, str], cms_home: Path, tmp_path: Path
) -> None:
    cms = Cms(claude_env, project)
    assert cms.run("budget", "--session-cap", "10", "--daily-cap", "20").code == 0
    transcript = tmp_path / "home-claude" / "s1.jsonl"
    transcript.parent.mkdir()
    stamp = datetime.now().astimezone().isoformat()
    transcript.write_text(line("m1", 1_000_000).replace(STAMP, stamp))  # $4 today
    event = {"session_id": "s1", "transcript_path": str(transcript), "cwd": str(project),
             "workspace": {"project_dir": str(project)}}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "cms.ui.entry", "statusline"], input=json.dumps(event),
        env=claude_env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "cms: session $4.00/$10.00 · today $4.00/$20.00"


def test_cost_names_a_model_missing_from_the_price_table(
    project: Path, claude_env: dict[str, str], fake_home: Path
) -> None:
    folder = spend.claude_folder(project, {"HOME": str(fake_home)})
    folder.mkdir(parents=True)
    prompt = {"type": "user", "timestamp": STAMP, "message": {"role": "user", "content": "hi"}}
    text = json.dumps(prompt) + "\n" + line("m1", 1_000_000, model="mystery-9") + "{broken\n"
    (folder / "abcdef0123456789.jsonl").write_text(text)
    cms = Cms(claude_env, project)
    report = cms.ok("cost")
    assert report["unknown_models"] == ["mystery-9"]
    assert report["rows"] == [
        {"key": "abcdef01 hi", "cost_usd": prices.HIGHEST[0], "sessions": 1, "kind": "claude"}
    ]
    assert report["total_cost_usd"] == prices.HIGHEST[0]
    shown = cms.run("cost").stdout
    assert "priced at its highest rate: mystery-9" in shown


def test_setups_status_line_is_set_only_where_none_is_and_taken_out_again(
    tmp_path: Path,
) -> None:
    from cms.ops import setup_statusline as statusline

    root, settings = tmp_path / "plugin", tmp_path / "claude" / "settings.json"
    will, note = statusline.offer(settings, root)
    assert will and "statusLine" in will and note is None
    assert statusline.install(settings, root)
    written = json.loads(settings.read_text())["statusLine"]
    assert written["command"].endswith("cms-run --stdlib --module cms.hooks.caps statusline")
    assert statusline.offer(settings, root) == (None, None)  # a second run changes nothing
    assert statusline.remove(settings) and json.loads(settings.read_text()) == {}

    yours = {"statusLine": {"type": "command", "command": "my-line"}, "model": "opus"}
    settings.write_text(json.dumps(yours))
    will, note = statusline.offer(settings, root)
    assert will is None and note and "keeping your own statusLine" in note
    assert not statusline.install(settings, root) and not statusline.remove(settings)
    assert json.loads(settings.read_text()) == yours


def test_a_state_folder_that_cannot_be_written_costs_only_a_second_reading(
    ledger: spend.Ledger, tmp_path: Path
) -> None:
    ledger.folder.parent.mkdir(parents=True)
    ledger.folder.write_text("not a folder")  # as in a child's sandbox: no writes there
    transcript = tmp_path / "s.jsonl"
    transcript.write_text(line("m1", 1_000_000))
    assert ledger.read(transcript, "s")["total"] == pytest.approx(4.0)
    assert ledger.read(transcript, "s")["total"] == pytest.approx(4.0)


def test_the_day_counts_cms_sessions_that_run_in_a_worktree_and_not_yesterday(
    tmp_path: Path,
) -> None:
    project, tree, home = tmp_path / "project", tmp_path / "trees" / "w1", tmp_path / "home"
    project.mkdir()
    where = ProjectPaths.for_project(project, tmp_path / "cms-home")
    env = {"HOME": str(home)}
    where.sessions_dir.mkdir(parents=True)
    record = f'name = "w1"\ncwd = "{tree}"\nsession_id = "sw1"\n'
    where.session_file("w1").write_text(record)
    now = datetime.now().astimezone()
    folder = spend.claude_folder(tree, env)
    folder.mkdir(parents=True)
    yesterday = (now - timedelta(days=1)).isoformat()
    lines = line("m0", 1_000_000).replace(STAMP, yesterday)
    lines += line("m1", 500_000).replace(STAMP, now.isoformat())
    (folder / "sw1.jsonl").write_text(lines)
    spent = caps.Spent(where, {"session_id": "other"}, env)
    assert spent.today(now.timestamp()) == pytest.approx(2.0)
    (folder / "sw1.jsonl").write_text(lines + line("m2", 500_000).replace(STAMP, now.isoformat()))
    assert spent.today(now.timestamp()) == pytest.approx(4.0)  # the cwds kept, read on


@pytest.mark.parametrize("cap", ["session_cap_usd", "daily_cap_usd"])
def test_a_call_is_judged_with_its_own_message_that_reaches_the_transcript_late(
    cap: str, tmp_path: Path
) -> None:
    # Claude Code may run the PreToolUse hook before it has written the message that
    # asks for the call: the hook waits for it rather than judging without its price.
    project, home = tmp_path / "project", tmp_path / "cms-home"
    project.mkdir()
    where = ProjectPaths.for_project(project, home)
    marker = caps.marker(home, where.key)
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"limits": {cap: 6.0}}))
    env = {"HOME": str(tmp_path / "home"), "CMS_HOME": str(home),
           "CLAUDE_PROJECT_DIR": str(project)}  # fmt: skip
    transcript = spend.claude_folder(project, env) / "s1.jsonl"
    transcript.parent.mkdir(parents=True)
    now = datetime.now().astimezone().isoformat()
    transcript.write_text(line("m1", 1_000_000).replace(STAMP, now))  # $4: under the cap

    def written_late() -> None:
        with transcript.open("a") as handle:  # $8 with the call's own message
            handle.write(line("m2", 1_000_000).replace(STAMP, now))

    late = threading.Timer(0.3, written_late)
    late.start()
    event = {"session_id": "s1", "transcript_path": str(transcript), "cwd": str(project),
             "tool_use_id": "toolu_m2", "tool_name": "Bash", "tool_input": {}}  # fmt: skip
    try:
        found = caps.reason(event, env, time.time())
    finally:
        late.join()
    assert found is not None and "spent $8.00" in found
    assert caps.OPTIONS[cap] in found
