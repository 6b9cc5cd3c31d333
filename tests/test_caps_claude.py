"""Caps over all of Claude Code (docs/DESIGN.md, "Budgets over all of Claude Code"):
the user's own ``claude -p`` sessions with the plugin loaded, their native subagents and
cms's children, held by the plugin's hooks; spend read from the real CLI's transcripts,
which the stand-in's usage figures set.

Prices: the stand-in answers with the model the CLI asks for (claude-opus-5-5: $4 per
million input tokens, $20 output), so a reply of 1,000 input and 10 output tokens costs
$0.0042.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms
from standin import PRICES_PER_MTOK, Reply, StandIn, expected_cost, text, tool_use

REPO = Path(__file__).resolve().parent.parent
MODEL = "claude-opus-5-5"


@pytest.fixture
def env(claude_env: dict[str, str]) -> dict[str, str]:
    # The plugin's scripts pick this interpreter (it has cms's dependencies).
    return {**claude_env, "CMS_PYTHON": sys.executable}


def bash(command: str, tokens: int = 1000) -> Reply:
    return tool_use("Bash", {"command": command, "description": "run it"}, input_tokens=tokens)


def agent(prompt: str, tokens: int = 100) -> Reply:
    task = {"description": "a part", "prompt": prompt, "subagent_type": "general-purpose"}
    return tool_use("Agent", {**task, "run_in_background": False}, input_tokens=tokens)


def claude(
    claude_bin: Path, env: dict[str, str], project: Path, prompt: str, session: str, *, resume: bool
) -> list[dict[str, Any]]:
    """One ``claude -p`` run of the user's session with the plugin loaded."""
    which = "--resume" if resume else "--session-id"
    done = subprocess.run(
        [str(claude_bin), "-p", prompt, which, session, "--plugin-dir", str(REPO),
         "--output-format", "stream-json", "--verbose"],
        cwd=project, env=env, capture_output=True, text=True, timeout=240,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def denials(events: list[dict[str, Any]]) -> list[str]:
    """The texts of tool results that were refusals."""
    found = []
    for event in events:
        content = event.get("message", {}).get("content") if event.get("type") == "user" else None
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") == "tool_result":
                body = block.get("content")
                body = json.dumps(body) if not isinstance(body, str) else body
                if "cms:" in body:
                    found.append(body)
    return found


def test_a_session_cap_denies_the_next_tool_call_then_the_next_prompt_until_raised(
    env: dict[str, str], standin: StandIn, project: Path, claude_bin: Path
) -> None:
    cms = Cms(env, project)
    assert cms.run("budget", "--session-cap", "0.01").code == 0
    session = str(uuid.uuid4())
    standin.script(
        "CAP-SESSION",
        [
            bash("touch one"),  # $0.0042: allowed
            text("first done", input_tokens=1000),  # $0.0084
            bash("touch two"),  # $0.0126: past the cap, denied
            text("stopped", input_tokens=10),
            bash("touch three"),  # after the cap is raised
            text("third done", input_tokens=10),
        ],
    )
    claude(claude_bin, env, project, "CAP-SESSION go", session, resume=False)
    assert (project / "one").exists()
    second = claude(claude_bin, env, project, "and now two", session, resume=True)
    assert not (project / "two").exists()
    [line] = denials(second)
    assert "this session has spent $0.0126, at the project's session cap of $0.0100" in line
    assert "budget --session-cap USD" in line

    asked = len(standin.requests_for("CAP-SESSION"))
    third = claude(claude_bin, env, project, "and now three", session, resume=True)
    assert len(standin.requests_for("CAP-SESSION")) == asked  # the prompt never went out
    assert "session cap of $0.0100" in json.dumps(third)

    assert cms.run("budget", "--session-cap", "1").code == 0
    claude(claude_bin, env, project, "and now three", session, resume=True)
    assert (project / "three").exists()


def test_a_subagent_cap_stops_the_subagent_while_its_parent_goes_on(
    env: dict[str, str], standin: StandIn, project: Path, claude_bin: Path
) -> None:
    cms = Cms(env, project)
    assert cms.run("budget", "--subagent-cap", "0.006").code == 0
    standin.script(
        "CAP-PARENT",
        [agent("SUB-ONE do it"), agent("SUB-TWO do it"), bash("touch parent-on"), text("end")],
    )
    standin.script("SUB-ONE", [bash("touch one-a"), bash("touch one-b"), text("one over")])
    standin.script("SUB-TWO", [bash("touch two-a"), text("two done")])
    events = claude(claude_bin, env, project, "CAP-PARENT go", str(uuid.uuid4()), resume=False)
    assert (project / "one-a").exists()  # $0.0042 spent: under the cap
    assert not (project / "one-b").exists()  # $0.0084: at the cap, denied
    assert (project / "two-a").exists()  # the second subagent starts fresh
    assert (project / "parent-on").exists()  # the parent goes on
    refusals = [r for r in denials(events) if "subagent" in r]
    assert refusals and "this subagent (general-purpose) has spent $0.0084" in refusals[0]
    assert "subagent cap of $0.0060" in refusals[0]

    report = cms.ok("cost", "--by", "agent")
    keys = {row["key"]: row["cost_usd"] for row in report["rows"]}
    assert keys["general-purpose"] == pytest.approx(0.0084 + 0.0042 + 2 * 0.0006, abs=1e-9)
    assert sum(row["cost_usd"] for row in report["rows"]) == pytest.approx(
        report["total_cost_usd"], abs=1e-6
    )


def test_cost_by_session_lists_your_sessions_and_cms_sessions_to_the_cent(
    env: dict[str, str], standin: StandIn, project: Path, claude_bin: Path
) -> None:
    cms = Cms(env, project)
    mine = [bash("touch mine", tokens=3000), text("mine done", input_tokens=2000)]
    standin.script("COST-MINE", mine)
    child = [bash("true", tokens=1500), text("child done", input_tokens=500)]
    standin.script("COST-CHILD", child)
    session = str(uuid.uuid4())
    claude(claude_bin, env, project, "COST-MINE go", session, resume=False)
    done = cms.run("delegate", "COST-CHILD task", "--name", "kid")
    assert done.code == 0, done.stderr

    report = cms.ok("cost", "--by", "session")
    rows = {row["key"]: row for row in report["rows"]}
    assert rows["kid"]["kind"] == "cms"
    [user_key] = [key for key, row in rows.items() if row["kind"] == "claude"]
    assert user_key.startswith(session[:8]) and "COST-MINE go" in user_key
    every = [r for r in standin.requests if r.kind in ("main", "side")]
    paid = sum(expected_cost(MODEL, [r.reply]) for r in every if r.reply is not None)
    assert sum(row["cost_usd"] for row in report["rows"]) == pytest.approx(paid, abs=0.005)
    assert round(report["total_cost_usd"], 2) == round(paid, 2)
    assert MODEL in PRICES_PER_MTOK


def yesterdays_session(env: dict[str, str], project: Path, cost_tokens: int) -> None:
    """A transcript of the user's from yesterday, in Claude Code's folder of the project."""
    import re
    from datetime import datetime, timedelta

    folder = Path(env["HOME"], ".claude", "projects", re.sub(r"[^A-Za-z0-9]", "-", str(project)))
    folder.mkdir(parents=True, exist_ok=True)
    when = (datetime.now().astimezone() - timedelta(days=1)).isoformat()
    usage = {"input_tokens": cost_tokens, "output_tokens": 0}
    line = {"type": "assistant", "timestamp": when, "message": {"id": "msg_old", "model": MODEL,
            "role": "assistant", "content": [], "usage": usage}}  # fmt: skip
    (folder / f"{uuid.uuid4()}.jsonl").write_text(json.dumps(line) + "\n")


def test_a_daily_cap_reached_by_a_cms_child_and_your_session_denies_both(
    env: dict[str, str], standin: StandIn, project: Path, claude_bin: Path
) -> None:
    cms = Cms(env, project)
    yesterdays_session(env, project, 1_000_000)  # $4 yesterday: not today's
    assert cms.run("budget", "--daily-cap", "0.02").code == 0
    child = [bash("touch child-one", tokens=3000), text("child done", input_tokens=10)]
    child += [bash("touch child-two"), text("child stopped", input_tokens=10)]
    standin.script("DAILY-CHILD", child)
    done = cms.run("delegate", "DAILY-CHILD task", "--name", "kid")
    assert done.code == 0, done.stderr
    assert (project / "child-one").exists()  # $0.0122 today

    standin.script(
        "DAILY-MINE",
        [bash("touch mine-one"), bash("touch mine-two"), text("mine done", input_tokens=10)],
    )
    events = claude(claude_bin, env, project, "DAILY-MINE go", str(uuid.uuid4()), resume=False)
    assert (project / "mine-one").exists()  # $0.0166 today
    assert not (project / "mine-two").exists()  # $0.0208: at the daily cap
    [line] = denials(events)
    assert "the project has spent $0.0208 today, at its daily cap of $0.0200" in line
    assert "budget --daily-cap USD" in line

    cms.run("send", "kid", "once more")
    assert not (project / "child-two").exists()  # the child is held by the same cap
    assert cms.show("kid")["denials"] >= 1

    report = cms.ok("budget")["claude_code"]
    assert report["daily_cap_usd"] == 0.02 and report["today_spent_usd"] >= 0.0208
    days = {row["key"]: row["cost_usd"] for row in cms.ok("cost", "--by", "day")["rows"]}
    assert 4.0 in days.values()  # yesterday's spend is reported, on its own day
