"""Work that runs after other work (``--after``) and first-done waits (``wait --any``),
end to end: the real Claude Code CLI under cms's supervisors, against the stand-in.

The scenario is the strategy guide's own: three parts (login, signup, reset) run in
parallel, and the integration tests run after all three. What is checked is what the
user relies on: the dependent calls no model before the last part ended (the
stand-in's request times), its first request carries the three results, a
``--worktree`` dependent sees its predecessors' files, and a dependency that cannot be
met ends it ``failed`` without a model call.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from cmsrun import Cms, git, processes_of_session, tree_state, wait_gone
from standin import StandIn, error, first_user_text, text, tool_use

MODEL = "claude-sonnet-4-5"
#: Seconds each part's answer takes: reset is still running while list, show and watch look.
PARTS = {"login": 1.0, "signup": 3.0, "reset": 10.0}


def one_line_error(done: object, code: int = 2) -> str:
    assert getattr(done, "code", None) == code, done
    line = str(getattr(done, "stderr", "")).strip()
    assert "\n" not in line and line.startswith("cms: error: "), line
    return line


def script_parts(standin: StandIn) -> None:
    for name, delay in PARTS.items():
        standin.script(
            f"T-{name.upper()}", [text(f"{name} is built, see auth/{name}.py", delay=delay)]
        )


def check_ran_after_the_parts(standin: StandIn, marker: str) -> str:
    """The dependent's first request came after every part had its answer, and carries
    the three results; returns its first user text."""
    [first] = standin.requests_for(marker)
    for name, delay in PARTS.items():
        [part] = standin.requests_for(f"T-{name.upper()}")
        assert first.time >= part.time + delay, f"{marker} asked before {name} had answered"
    sent = first_user_text(first.body)
    for name in PARTS:
        assert f"{name} is built, see auth/{name}.py" in sent
        assert f"## {name} (completed" in sent
    assert sent.index("## reset") < sent.index("write the integration tests")
    return sent


# -- the guide's example -------------------------------------------------------------


def test_the_guides_example_through_the_cli(cms: Cms, standin: StandIn) -> None:
    script_parts(standin)
    standin.script("T-ITESTS", [text("integration tests written")])
    for name in PARTS:
        started = cms.ok(
            "delegate", f"build {name} T-{name.upper()}", "--name", name, "--background"
        )
        assert started["status"] == "running"
    out = cms.ok(
        "delegate", "write the integration tests T-ITESTS", "--name", "itests",
        "--after", "login,signup", "--after", "reset", "--background",
    )  # fmt: skip
    assert out["status"] == "queued" and out["after"] == ["login", "signup", "reset"]
    assert out["after_met"] is False
    # What it waits for, as list, show and watch show it (while the parts run).
    listed = cms.run("list")
    assert listed.code == 0
    [row] = [line for line in listed.stdout.splitlines() if line.startswith("itests")]
    assert "(waits for " in row and "reset) write the" in row
    shown = cms.run("show", "itests")
    assert "login (" in shown.stdout and "reset (running)" in shown.stdout
    watched = cms.run("watch", "--once", env={"COLUMNS": "200"})
    assert "waits for " in watched.stdout and "reset (running)" in watched.stdout, watched.stdout
    assert standin.requests_for("T-ITESTS") == []
    # Waiting for the dependent waits for the lot.
    [done] = cms.ok("wait", "itests", timeout=240)
    assert done["status"] == "completed" and done["response"] == "integration tests written"
    assert done["after_met"] is True and done["exchanges"] == 1
    check_ran_after_the_parts(standin, "T-ITESTS")
    # The record keeps the user's task; the results went only into the prompt.
    assert cms.show("itests")["task"] == "write the integration tests T-ITESTS"


def test_the_guides_example_through_mcp(
    claude_env: dict[str, str], standin: StandIn, project: Path, tmp_path: Path
) -> None:
    from mcp import ClientSession
    from test_mcp import call, run_scenario

    script_parts(standin)
    standin.script("T-MTESTS", [text("integration tests written")])

    async def scenario(s: ClientSession) -> None:
        tools = {t.name: t.input_schema["properties"] for t in (await s.list_tools()).tools}
        assert "after" in tools["delegate_task"] and "after" in tools["spawn_session"]
        assert tools["wait_sessions"]["any"]["type"] == "boolean"
        for name in PARTS:
            task = f"build {name} T-{name.upper()}"
            out = await call(s, "delegate_task", task=task, name=name, background=True)
            assert out["status"] == "running"
        out = await call(
            s, "delegate_task", task="write the integration tests T-MTESTS", name="itests",
            after=list(PARTS), background=True,
        )  # fmt: skip
        assert out["status"] == "queued" and out["after"] == list(PARTS)
        # The correction loop's shape: each part's result as it arrives.
        pending = list(PARTS)
        while pending:
            waited = await call(s, "wait_sessions", names=pending, any=True, wait_s=300)
            [first] = waited["sessions"]
            assert first["status"] == "completed" and first["name"] in pending
            pending.remove(first["name"])
            if pending:
                assert standin.requests_for("T-MTESTS") == []
        [done] = (await call(s, "wait_sessions", names=["itests"], wait_s=300))["sessions"]
        assert done["status"] == "completed" and done["response"] == "integration tests written"

    run_scenario(claude_env, project, tmp_path, scenario)
    check_ran_after_the_parts(standin, "T-MTESTS")


def test_wait_any_returns_the_first_while_the_other_runs(cms: Cms, standin: StandIn) -> None:
    standin.script("T-QUICK", [text("quick answer", delay=1)])
    standin.script("T-LONG", [text("long answer", delay=120)])
    cms.ok("delegate", "long T-LONG", "--name", "long", "--background")
    cms.ok("delegate", "quick T-QUICK", "--name", "quick", "--background")
    done = cms.run("--json", "wait", "--any", "long", "quick", timeout=120)
    assert done.code == 0, done.stderr
    [first] = done.json()
    assert first["name"] == "quick" and first["status"] == "completed"
    assert cms.show("long")["status"] == "running"
    # The exit status follows that session: a failed first one exits 1.
    standin.script("T-BROKEN", [error(500)])
    cms.ok("delegate", "broken T-BROKEN", "--name", "broken", "--background")
    failed = cms.run("wait", "--any", "long", "broken", timeout=120)
    assert failed.code == 1
    assert failed.stdout.startswith("broken: failed")
    assert cms.show("long")["status"] == "running"
    cms.ok("abort", "long")


def test_the_delegate_command_takes_after(
    claude_bin: Path, claude_env: dict[str, str], standin: StandIn, project: Path
) -> None:
    from cmsrun import REPO, claude_p

    from cms.ui.slash import parse_command

    parsed = parse_command("/cms:delegate --after a --after=b,c --name x do it", bare_ok=False)
    assert parsed == ("delegate", {"--after": "a,b,c", "--name": "x"}, "do it")
    env = {**claude_env, "CMS_PYTHON": sys.executable}
    cms = Cms(env, project)
    standin.script("T-SPART", [text("the part is done")])
    cms.ok("delegate", "a part T-SPART", "--name", "spart")
    standin.script("T-SDEP", [text("the dependent is done")])
    standin.script("<command-name>/cms:delegate</command-name>", [text("relayed")])
    prompt = "/cms:delegate --after spart --name sdep then this T-SDEP"
    claude_p(claude_bin, prompt, env, project, plugin_dir=REPO, timeout=300)
    [done] = cms.ok("wait", "sdep", timeout=120)
    assert done["status"] == "completed" and done["after"] == ["spart"]
    [first] = standin.requests_for("T-SDEP")
    assert "the part is done" in first_user_text(first.body)


# -- dependencies that cannot be met -------------------------------------------------


def test_a_predecessor_over_budget_fails_its_dependent_with_no_model_call(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    # One call costs 20k input tokens at $3/M = $0.06: over the $0.01 cap at once.
    readme = str(project / "README.md")
    standin.script(
        "T-COSTLY",
        # (its first answer takes 8 s, so that the dependent is delegated while it runs)
        [tool_use("Read", {"file_path": readme}, input_tokens=20_000, delay=8), text("costly ok")],
    )
    standin.script("T-AFTERCOST", [text("ran after costly")])
    cms.ok(
        "delegate", "expensive T-COSTLY", "--name", "costly", "--max-cost", "0.01",
        "--model", MODEL, "--background",
    )  # fmt: skip
    waiting = cms.ok("delegate", "then this T-AFTERCOST", "--name", "next", "--after", "costly",
                     "--background")  # fmt: skip
    assert waiting["status"] == "queued"
    result = cms.run("--json", "wait", "next", timeout=120)
    assert result.code == 1
    [out] = result.json()
    assert out["status"] == "failed"
    assert "costly" in out["error"] and "cost_exceeded" in out["error"]
    assert cms.show("costly")["status"] == "cost_exceeded"
    assert standin.requests_for("T-AFTERCOST") == []
    assert out["exchanges"] == 0 and out["cost_usd"] == 0
    # It cannot be sent to before it started; resume is refused while costly is not fixed.
    assert "resume" in one_line_error(cms.run("send", "next", "hello"))
    assert "cost_exceeded" in one_line_error(cms.run("resume", "next"))
    # Fix the predecessor, then resume starts the dependent with its result.
    fixed = cms.ok("continue", "costly", "finish it T-COSTLY", "--add-cost", "1")
    assert fixed["status"] == "completed" and fixed["response"]
    resumed = cms.ok("resume", "next", timeout=120)
    assert resumed["status"] == "completed" and resumed["response"] == "ran after costly"
    [first] = standin.requests_for("T-AFTERCOST")
    assert fixed["response"] in first_user_text(first.body)


def test_unknown_self_and_cyclic_dependencies_are_refused(cms: Cms, standin: StandIn) -> None:
    before = cms.ok("list")
    unknown = one_line_error(cms.run("delegate", "x", "--name", "lonely", "--after", "nobody"))
    assert "nobody" in unknown
    own = one_line_error(cms.run("spawn", "selfish", "do it", "--after", "selfish"))
    assert "itself" in own
    assert cms.ok("list") == before  # nothing made
    # A cycle: b runs after a, a is deleted, and a new a would run after b.
    standin.script("T-ASLOW", [text("a", delay=120)])
    cms.ok("delegate", "first a T-ASLOW", "--name", "a", "--background")
    cms.ok("delegate", "then b", "--name", "b", "--after", "a", "--background")
    cms.ok("delete", "a", "--force")
    cms.ok("list")  # any read of the records settles b: its predecessor is gone
    b = cms.show("b")
    # (Its predecessor was aborted, then deleted: whichever the queue saw first.)
    assert b["status"] == "failed" and "a, which it runs after" in b["error"]
    cyclic = one_line_error(cms.run("delegate", "a again", "--name", "a", "--after", "b"))
    assert "cycle" in cyclic and "a -> b -> a" in cyclic
    assert cms.run("show", "a").code == 2
    # --after with nothing to run is refused too.
    assert "--after" in one_line_error(cms.run("spawn", "idle", "--after", "b"))


# -- worktrees -----------------------------------------------------------------------


def test_a_worktree_session_after_others_starts_from_their_branches_merged(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    before = tree_state(project)
    for name, content in (("wt-login", "login code\n"), ("wt-signup", "signup code\n")):
        marker = f"T-{name.upper()}"
        standin.script(
            marker,
            [tool_use("Write", {"file_path": f"{name}.py", "content": content}), text("built")],
        )
        cms.ok("delegate", f"build {marker}", "--name", name, "--worktree", "--background")
    standin.script(
        "T-WTTESTS",
        [tool_use("Bash", {"command": "cat wt-login.py wt-signup.py"}), text("tests written")],
    )
    cms.ok(
        "delegate", "test them T-WTTESTS", "--name", "wt-tests", "--worktree",
        "--after", "wt-login,wt-signup", "--background",
    )  # fmt: skip
    [done] = cms.ok("wait", "wt-tests", timeout=240)
    assert done["status"] == "completed", done
    # The model saw both predecessors' files through its own tool call ...
    second = standin.requests_for("T-WTTESTS")[1]
    results = str(second.blocks("tool_result"))
    assert "login code" in results and "signup code" in results
    first = first_user_text(standin.requests_for("T-WTTESTS")[0].body)
    assert "branch cms/wt-login, merged into your working tree" in first
    # ... in its own tree, on its own branch; the user's tree is untouched.
    tree = Path(done["worktree"])
    assert (tree / "wt-login.py").read_text() == "login code\n"
    assert git(tree, "rev-parse", "--abbrev-ref", "HEAD") == "cms/wt-tests"
    assert tree_state(project) == before


def test_conflicting_predecessors_fail_the_worktree_dependent(
    cms: Cms, standin: StandIn, project: Path
) -> None:
    before = tree_state(project)
    for name in ("left", "right"):
        marker = f"T-{name.upper()}"
        standin.script(
            marker,
            [tool_use("Write", {"file_path": "README.md", "content": f"{name}\n"}), text("ok")],
        )
        cms.ok("delegate", f"edit {marker}", "--name", name, "--worktree", "--background")
    standin.script("T-BOTH", [text("never")])
    started = cms.run(
        "--json", "delegate", "combine T-BOTH", "--name", "both", "--worktree",
        "--after", "left", "--after", "right", "--background",
    )  # fmt: skip
    # Queued (exit 0) while a part runs; on a slow machine both may have ended before
    # the delegation, and then it fails at once (exit 1): the same outcome either way.
    assert started.code in (0, 1), started.stderr
    assert started.json()["status"] in ("queued", "failed")
    result = cms.run("--json", "wait", "both", timeout=240)
    assert result.code == 1
    [out] = result.json()
    assert out["status"] == "failed"
    assert "conflict" in out["error"] and "README.md" in out["error"]
    assert "untouched" in out["error"]
    assert standin.requests_for("T-BOTH") == []
    # Its tree is as it began (nothing half merged), the user's tree as it was.
    tree = Path(out["worktree"])
    assert (tree / "README.md").read_text() == "# Test project\n"
    assert git(tree, "status", "--porcelain") == ""
    assert tree_state(project) == before


# -- crashes -------------------------------------------------------------------------


def test_the_dependent_starts_once_after_every_supervisor_was_killed(
    cms: Cms, standin: StandIn
) -> None:
    parts = ("k1", "k2")
    for name in parts:
        marker = f"T-{name.upper()}"
        # The resumed conversation asks for the third answer (after the one cut off).
        replies = [tool_use("Bash", {"command": "echo step"}), text("x", delay=120)]
        standin.script(marker, [*replies, text(f"{name} done")])
        cms.ok("delegate", f"part {marker}", "--name", name, "--background")
    standin.script("T-KDEP", [text("dependent ran")])
    cms.ok("delegate", "after both T-KDEP", "--name", "kdep", "--after", "k1,k2", "--background")
    records = {}
    for name in parts:
        standin.wait_for(f"T-{name.upper()}", count=2, timeout=120)
        records[name] = cms.wait_field(name, "has_conversation", timeout=60)
    for name in parts:  # every supervisor there is: the dependent has none yet
        os.kill(records[name]["pid"], signal.SIGKILL)
    for name in parts:
        assert cms.wait_status(name, {"interrupted"}, timeout=30)["status"] == "interrupted"
        assert wait_gone(lambda n=name: processes_of_session(n)) == []
    assert cms.show("kdep")["status"] == "queued"
    # The dependency is on disk: resuming the parts, one after the other, starts it.
    first = cms.ok("resume", "k1", timeout=120)
    assert first["status"] == "completed"
    assert cms.show("kdep")["status"] == "queued"
    assert standin.requests_for("T-KDEP") == []
    cms.ok("resume", "k2", timeout=120)
    [done] = cms.ok("wait", "kdep", timeout=120)
    assert done["status"] == "completed" and done["exchanges"] == 1
    time.sleep(1.0)  # a second start would have shown by now
    assert len(standin.requests_for("T-KDEP")) == 1
    sent = first_user_text(standin.requests_for("T-KDEP")[0].body)
    assert "k1 done" in sent and "k2 done" in sent


# -- the rules, without processes ------------------------------------------------------


def test_the_rules_of_a_dependency() -> None:
    from cms.engine import dependencies as deps
    from cms.engine.models import SessionRecord, Status

    def rec(name: str, status: Status, **fields: object) -> SessionRecord:
        return SessionRecord(name=name, status=status, **fields)  # type: ignore[arg-type]

    by_name = {
        r.name: r
        for r in (
            rec("done", Status.COMPLETED, response="ok"),
            rec("closed", Status.FINISHED, response="closed ok", branch="cms/closed"),
            rec("busy", Status.RUNNING),
            rec("broken", Status.INTERRUPTED),
            rec("over", Status.TURNS_EXCEEDED),
        )
    }
    exists = by_name.__contains__

    def verdict(*after: str) -> deps.Verdict:
        return deps.judge(rec("d", Status.QUEUED, after=list(after)), by_name, exists)

    assert verdict("done", "closed").state == deps.READY
    assert verdict("done", "busy", "broken").pending == ["busy", "broken"]
    blocked = verdict("busy", "over")  # one that cannot complete decides at once
    assert (
        blocked.state == deps.BLOCKED and "over" in blocked.why and "turns_exceeded" in blocked.why
    )
    assert "deleted" in verdict("done", "gone").why
    # The prompt names each with its response and branch, then the task.
    prompt = deps.prompt_after([by_name["done"], by_name["closed"]], "the task", ["closed"])
    assert prompt.index("## done (completed)\nok") < prompt.index("## Your task\nthe task")
    assert "## closed (finished, branch cms/closed, merged into your working tree)" in prompt
    long = rec("long", Status.COMPLETED, response="x" * (deps.RESPONSE_CHARS + 50))
    assert len(deps.prompt_after([long], "t", [])) < deps.RESPONSE_CHARS + 300
    # Cycles: only through sessions that may still wait.
    graph = {
        "a": rec("a", Status.QUEUED, after=["b"]),
        "b": rec("b", Status.FAILED, after=["c"]),
        "c": rec("c", Status.COMPLETED, after=["a"], after_met=True),
    }
    assert deps.cycle("c", ["a"], graph) == ["c", "a", "b", "c"]
    assert deps.cycle("x", ["a"], graph) == []
    assert deps.cycle("a", ["c"], graph) == []  # c started already: it waits for nothing
