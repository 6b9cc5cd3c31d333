"""The PreToolUse hook as Claude Code runs it: ``cms.hooks.child.main`` (the child's hook
command; here mostly ``python -m cms.hooks.child pre-tool-use``) with the hook JSON on
stdin and the child's environment (CMS_SESSION, CMS_PROJECT, CMS_HOME).

Session records and project.toml are written by hand with the on-disk keys (the hook
must read what the store writes without pydantic), into a CMS_HOME under tmp_path.
"""

from __future__ import annotations

import importlib
import inspect
import io
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cmsrun import HOOK_PATH

from cms.base.paths import ProjectPaths
from cms.engine.models import SessionRecord
from cms.engine.store import Store
from cms.hooks import child as hook
from cms.policy import decide as policy

REPO = Path(__file__).resolve().parent.parent
SESSION = "fix-parser"


@dataclass
class Child:
    """A child session's world: its project, working tree, CMS_HOME and record files."""

    project: Path
    home: Path
    paths: ProjectPaths

    def env(self, session: str | None = SESSION, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CMS_", "PYTHON"))}
        env["PYTHONPATH"] = str(REPO)
        env["CMS_PROJECT"] = str(self.project)
        env["CMS_HOME"] = str(self.home)
        env["CMS_DEPTH"] = "1"
        if session is not None:
            env["CMS_SESSION"] = session
        env.update(extra)
        return env

    def record(self, name: str = SESSION, **fields: Any) -> Path:
        values: dict[str, Any] = {
            "name": name, "status": "running", "preset": "edit", "cwd": str(self.project),
            "cost_usd": 0.01, "turns": 1,
        }  # fmt: skip
        values.update(fields)
        lines = [f"{key} = {_toml(value)}" for key, value in values.items() if value is not None]
        path = self.paths.session_file(name)
        path.write_text("\n".join(lines) + "\n")
        return path

    def project_cap(self, max_cost_usd: float) -> None:
        self.paths.project_file.write_text(
            f"schema_version = 1\n\n[limits]\nmax_cost_usd = {max_cost_usd}\nmax_parallel = 4\n"
        )


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    return repr(value)


@pytest.fixture
def child(tmp_path: Path) -> Child:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    home = tmp_path / "cms-home"
    paths = ProjectPaths.for_project(project, home)
    paths.sessions_dir.mkdir(parents=True)
    return Child(project, home, paths)


def payload(tool_name: str, tool_input: dict[str, Any], cwd: str = "") -> str:
    # The shape Claude Code 2.1.x sends (see the captured pretooluse.jsonl).
    return json.dumps({
        "session_id": "11111111-2222-3333-4444-555555555555",
        "transcript_path": "/home/user/.claude/projects/p/1111.jsonl",
        "cwd": cwd,
        "permission_mode": "acceptEdits",
        "hook_event_name": "PreToolUse",
        "tool_name": tool_name,
        "tool_input": tool_input,
        "tool_use_id": "toolu_00000001",
    })  # fmt: skip


def run_hook(
    env: dict[str, str], stdin: str, event: str = "pre-tool-use"
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "cms.hooks.child", event], input=stdin, env=env, cwd=str(REPO),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def denial(done: subprocess.CompletedProcess[str]) -> str:
    """The deny reason printed by the hook (fails when it allowed)."""
    assert done.stdout.strip(), f"expected a denial, got none (stderr: {done.stderr})"
    out = json.loads(done.stdout)
    specific = out["hookSpecificOutput"]
    assert specific["hookEventName"] == "PreToolUse"
    assert specific["permissionDecision"] == "deny"
    reason: str = specific["permissionDecisionReason"]
    assert reason.startswith("cms: ") and "\n" not in reason
    return reason


def allowed(done: subprocess.CompletedProcess[str]) -> bool:
    return done.stdout == ""


def read_call(child: Child) -> str:
    return payload("Read", {"file_path": str(child.project / "src" / "a.py")}, str(child.project))


# ------------------------------------------------------------------ not a cms child


def test_no_cms_session_allows_at_once(child: Child) -> None:
    env = child.env(session=None)
    done = run_hook(env, payload("Bash", {"command": "sudo rm -rf /"}))
    assert allowed(done) and done.stderr == ""
    # Not even stdin is looked at.
    assert allowed(run_hook(env, "not json"))
    assert allowed(run_hook(child.env(session=""), "not json"))


# ----------------------------------------------------------------- records say stop


def test_aborted_session_denies_every_call(child: Child) -> None:
    child.record(status="aborted")
    reason = denial(run_hook(child.env(), read_call(child)))
    assert reason == f"cms: session '{SESSION}' was aborted; stop now and end your turn"


def test_abort_requested_denies_every_call(child: Child) -> None:
    child.record(abort_requested=True)
    assert "aborted" in denial(run_hook(child.env(), read_call(child)))


def test_over_budget_denies_with_figures(child: Child) -> None:
    child.record(cost_usd=0.52, max_cost_usd=0.5)
    reason = denial(run_hook(child.env(), read_call(child)))
    assert reason == f"cms: session '{SESSION}' has spent $0.5200 of its $0.5000 budget; stopping"


def test_exactly_at_budget_denies_and_below_allows(child: Child) -> None:
    child.record(cost_usd=0.5, max_cost_usd=0.5)
    assert "budget" in denial(run_hook(child.env(), read_call(child)))
    child.record(cost_usd=0.49, max_cost_usd=0.5)
    assert allowed(run_hook(child.env(), read_call(child)))


def test_past_deadline_denies(child: Child) -> None:
    child.record(deadline=time.time() - 30)
    reason = denial(run_hook(child.env(), read_call(child)))
    assert "past its deadline" in reason and "timeout" in reason
    child.record(deadline=time.time() + 300)
    assert allowed(run_hook(child.env(), read_call(child)))


def test_past_max_turns_denies(child: Child) -> None:
    child.record(turns=6, max_turns=5)
    assert "6 of its 5 turns" in denial(run_hook(child.env(), read_call(child)))
    child.record(turns=5, max_turns=5)  # the CLI still runs the last turn's tool calls
    assert allowed(run_hook(child.env(), read_call(child)))


def test_project_cap_counts_every_session(child: Child) -> None:
    child.record(cost_usd=0.30)
    child.record("docs", cost_usd=0.25, status="completed")
    child.project_cap(0.50)
    reason = denial(run_hook(child.env(), read_call(child)))
    assert reason == (
        "cms: the project has spent $0.5500 of its $0.5000 cap over all sessions; stopping"
    )
    child.project_cap(1.0)
    assert allowed(run_hook(child.env(), read_call(child)))


def test_project_cap_with_an_unreadable_sibling_denies(child: Child) -> None:
    # A record broken by hand or on purpose would hide its spend from the cap.
    child.record(cost_usd=0.01)
    child.paths.session_file("broken").write_text("cost_usd = = 1\n")
    child.project_cap(0.20)
    reason = denial(run_hook(child.env(), read_call(child)))
    assert "broken.toml cannot be read" in reason and "refused" in reason


def test_stop_wins_over_malformed_stdin(child: Child) -> None:
    child.record(status="aborted")
    assert "aborted" in denial(run_hook(child.env(), "{not json"))


# ---------------------------------- bad input: deny in a child, one line of reason


def test_malformed_stdin_denies(child: Child) -> None:
    child.record()
    for stdin in (
        "{not json",
        "",
        "[1, 2]",
        '{"tool_input": {}}',
        '{"tool_name": "Bash", "tool_input": "ls"}',
    ):
        reason = denial(run_hook(child.env(), stdin))
        assert reason.startswith("cms: denied because") and "\n" not in reason, stdin


@pytest.mark.parametrize(
    ("tool", "tool_input", "why"),
    [
        ("Bash", {"command": "touch /tmp/x\x00; echo ok"}, "NUL"),
        ("Write", {"file_path": "a\x00/../../etc/x", "content": ""}, "NUL"),
        ("Write", {"file_path": "\ud800.txt", "content": "x"}, "surrogate"),
        ("Bash", {"command": "echo \udfff > x"}, "surrogate"),
        ("Write", {"file_path": ["/etc/passwd"], "content": "x"}, "file_path"),
        ("Edit", {"file_path": 7, "old_string": "a", "new_string": "b"}, "file_path"),
        ("Bash", {"command": ["rm", "-rf", "/"]}, "command string"),
    ],
)
def test_unreadable_tool_input_denies(
    child: Child, tool: str, tool_input: dict[str, Any], why: str
) -> None:
    child.record()
    # json.dumps writes the lone surrogate as \\ud800, as Claude Code would send it.
    reason = denial(run_hook(child.env(), payload(tool, tool_input)))
    assert why in reason and "\n" not in reason


def test_corrupt_record_denies(child: Child) -> None:
    child.paths.session_file(SESSION).write_text("status = 'running\npreset = [\n")
    reason = denial(run_hook(child.env(), payload("Read", {"file_path": "/etc/hostname"})))
    assert "session record" in reason and "cannot be read" in reason


def test_record_with_a_duplicate_key_denies(child: Child) -> None:
    # Appending a second max_cost_usd makes the TOML invalid: a child must not switch
    # its budget (and every other check) off that way.
    path = child.record(max_cost_usd=0.5)
    with open(path, "a") as handle:
        handle.write("max_cost_usd = 1000\n")
    done = run_hook(child.env(), payload("Bash", {"command": "git push origin main"}))
    assert "cannot be read" in denial(done)


def test_missing_record_denies(child: Child) -> None:
    reason = denial(run_hook(child.env(), payload("Read", {"file_path": "/etc/hostname"})))
    assert "missing" in reason


@pytest.mark.parametrize("name", ["../evil", "UPPER", "a/b", ".", "x" * 80])
def test_invalid_session_name_denies(child: Child, name: str) -> None:
    done = run_hook(child.env(session=name), payload("Read", {"file_path": "/etc/hostname"}))
    assert "not a valid session name" in denial(done)


def test_wrong_types_in_record_deny(child: Child) -> None:
    for fields in (
        {"cost_usd": "lots"},
        {"max_cost_usd": True},
        {"deadline": "soon"},
        {"preset": 3},
    ):
        child.record(**fields)
        assert "record" in denial(run_hook(child.env(), read_call(child))), fields


def test_users_own_session_fails_open(child: Child) -> None:
    # No CMS_SESSION: the user's own Claude Code; nothing cms breaks may block it.
    for stdin in ("{not json", payload("Bash", {"command": "sudo \x00"})):
        done = run_hook(child.env(session=None), stdin)
        assert allowed(done)


# --------------------------------------------------------------------- each preset


PRESET_CASES = [
    ("read-only", "Read", {"file_path": "{project}/src/a.py"}, True),
    ("read-only", "Write", {"file_path": "{project}/a.txt", "content": "x"}, False),
    ("review", "Bash", {"command": "git log --oneline | head -5"}, True),
    ("review", "Bash", {"command": "git commit -am x"}, False),
    ("plan", "Edit", {"file_path": "{project}/src/a.py"}, False),
    ("plan", "Grep", {"pattern": "x"}, True),
    ("edit", "Write", {"file_path": "{project}/src/new.py", "content": "x"}, True),
    ("edit", "Write", {"file_path": "{home}/projects/x/sessions/s.toml", "content": "x"}, False),
    ("edit", "Bash", {"command": "python -m pytest -q 2>&1 | tail -3"}, True),
    ("edit", "Bash", {"command": "true && sudo rm -rf /"}, False),
    ("edit", "Bash", {"command": "echo 'max_cost_usd = 99' >> $CMS_HOME/x.toml"}, False),
    ("full", "Bash", {"command": "sudo rm -rf /"}, True),
]


@pytest.mark.parametrize(("preset", "tool", "tool_input", "expected"), PRESET_CASES)
def test_each_preset(
    child: Child, preset: str, tool: str, tool_input: dict[str, str], expected: bool
) -> None:
    child.record(preset=preset)
    filled = {
        k: v.replace("{project}", str(child.project)).replace("{home}", str(child.home))
        for k, v in tool_input.items()
    }
    done = run_hook(child.env(), payload(tool, filled, str(child.project)))
    if expected:
        assert allowed(done), done.stdout
    else:
        assert f"preset {preset} denies" in denial(done)


def test_worktree_is_the_records_cwd(child: Child, tmp_path: Path) -> None:
    # The boundary is the record's cwd (e.g. a session's own git worktree), not the
    # project: writing into the project from a worktree session is outside.
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    child.record(cwd=str(worktree))
    rm_tree = payload("Bash", {"command": f"rm -rf {worktree}"}, str(worktree))
    assert "whole working tree" in denial(run_hook(child.env(), rm_tree))
    rm_project = payload("Bash", {"command": f"rm -rf {child.project}"}, str(worktree))
    assert denial(run_hook(child.env(), rm_project))
    inside = payload("Write", {"file_path": str(worktree / "a.txt")}, str(worktree))
    assert allowed(run_hook(child.env(), inside))
    into_project = payload("Write", {"file_path": str(child.project / "a.txt")}, str(worktree))
    assert "outside the working tree" in denial(run_hook(child.env(), into_project))
    outside = payload("Write", {"file_path": "/etc/cms-hook-test.txt"}, str(worktree))
    assert "outside the working tree" in denial(run_hook(child.env(), outside))


def test_missing_preset_means_edit(child: Child) -> None:
    child.record(preset=None)
    write = payload("Write", {"file_path": str(child.project / "a.py")})
    assert allowed(run_hook(child.env(), write))
    assert "preset edit denies" in denial(
        run_hook(child.env(), payload("Bash", {"command": "sudo ls"}))
    )


# ------------------------------------------------------------------- entry point


def test_other_events_print_nothing(child: Child) -> None:
    child.record(status="aborted")
    for event in ("stop", "session-start"):
        done = run_hook(child.env(), "{}", event)
        assert done.stdout == ""
    # An event the child hook does not know, inside a child: refused, never allowed.
    assert "unknown event" in denial(run_hook(child.env(), "{}", "no-such-event"))
    assert run_hook(child.env(session=None), "{}", "no-such-event").stdout == ""


def test_main_catches_everything(
    monkeypatch: pytest.MonkeyPatch, child: Child, capsys: pytest.CaptureFixture[str]
) -> None:
    child.record(preset="edit")

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("bug in policy")

    monkeypatch.setattr(policy, "decide", broken)
    for key, value in child.env().items():
        monkeypatch.setenv(key, value)
    stdin = io.TextIOWrapper(io.BytesIO(payload("Bash", {"command": "ls"}).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    assert hook.main(["pre-tool-use"]) == 0
    captured = capsys.readouterr()
    # Inside a child an internal error denies, with the error as the reason.
    decision = json.loads(captured.out)["hookSpecificOutput"]
    assert decision["permissionDecision"] == "deny"
    assert "bug in policy" in decision["permissionDecisionReason"]
    assert "internal error" in captured.err and "bug in policy" in captured.err
    assert hook.main([]) == 0
    # In the user's own session the same bug allows.
    monkeypatch.delenv("CMS_SESSION")
    stdin = io.TextIOWrapper(io.BytesIO(payload("Bash", {"command": "ls"}).encode()))
    monkeypatch.setattr(sys, "stdin", stdin)
    capsys.readouterr()
    assert hook.main(["pre-tool-use"]) == 0
    assert capsys.readouterr().out == ""


def test_hook_runs_without_site_packages(child: Child) -> None:
    # `python -S -m cms.hooks.child` (no site: faster start) is a supported way to run it.
    child.record(status="aborted")
    done = subprocess.run(
        [sys.executable, "-S", "-m", "cms.hooks.child", "pre-tool-use"], input=read_call(child),
        env=child.env(), capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "aborted" in denial(done)


def test_the_childs_hook_command_never_runs_a_cms_package_in_its_tree(child: Child) -> None:
    # Claude Code runs the hook in the child's working folder, which the child may
    # write: a `cms` package it puts there must not be the hook that judges it.
    from cms.engine.claude import hook_command

    fake = child.project / "cms"
    (fake / "hooks").mkdir(parents=True)
    marker = child.project / "ran"
    (fake / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (fake / "hooks" / "__init__.py").write_text("")
    (fake / "hooks" / "child.py").write_text("def main(argv=None):\n    return 0\n")
    child.record(status="aborted")
    env = {k: v for k, v in child.env().items() if k != "PYTHONPATH"}
    done = subprocess.run(
        ["/bin/sh", "-c", hook_command()], input=read_call(child), env=env, cwd=child.project,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert "aborted" in denial(done)
    assert not marker.exists()


def test_handlers_are_registered_in_one_table() -> None:
    from cms.hooks import events

    modules = {event: h.handler.split(":")[0] for event, h in events.EVENTS.items()}
    assert modules == {
        "pre-tool-use": "cms.hooks.child",
        "session-start": "cms.hooks.parent",
        "stop": "cms.hooks.parent",
        # The slash commands need the API: the UI runs them (cms.ui.slash), not the
        # hooks; the standard-library part of the event is the parent's line.
        "user-prompt-submit": "cms.ui.slash",
        "guide": "cms.hooks.parent",
        "statusline": "cms.hooks.caps",
    }
    assert events.EVENTS["user-prompt-submit"].light == "cms.hooks.parent:user_prompt_submit"
    assert [e for e, h in events.EVENTS.items() if h.in_child] == ["pre-tool-use"]
    # One handler type: the raw input and the environment in, the output out.
    for h in events.EVENTS.values():
        for light in (False, True):
            handler = events.handler_of(h, light)
            assert list(inspect.signature(handler).parameters)[:2] == ["raw", "env"]
    # No other table: the module entries and `cms hook` all run this one.
    modules_ = ("cms.hooks.child", "cms.hooks.parent", "cms.hooks.caps", "cms.ui.slash",
                "cms.ui.hookrun")  # fmt: skip
    for module in modules_:
        source = Path(importlib.import_module(module).__file__ or "").read_text()
        assert "HANDLERS" not in source and "HOOK_MODULES" not in source, module


def _fresh_modules(code: str, flags: tuple[str, ...] = ()) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONPATH"] = str(REPO)
    out = subprocess.run(
        [sys.executable, *flags, "-c", f"{code}; import sys; print(sorted(sys.modules))"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=str(REPO),
    )
    return set(json.loads(out.stdout.replace("'", '"')))


def test_hook_imports_only_the_standard_library() -> None:
    modules = _fresh_modules("import cms.hooks.child")
    heavy = {
        "pydantic",
        "click",
        "rich",
        "mcp",
        "filelock",
        "tomli_w",
        "cms.engine.models",
        "cms.engine.store",
    }
    assert not heavy & modules
    assert {m for m in modules if m.startswith("cms")} == HOOK_PATH
    # Nor process or shell-parsing machinery beyond what the interpreter's site loads,
    # nor dataclasses (they load inspect: about 10 ms on every tool call).
    added = modules - _fresh_modules("pass")
    assert not {"subprocess", "shlex", "dataclasses", "inspect"} & added


#: All the hook may load beyond what ``python -c pass`` has: its own modules and a few
#: of the interpreter's C modules (the JSON scanner, datetimes for the record's times,
#: sha256 for the project's key). Not re, pathlib, json's Python modules, tomllib,
#: typing, enum, collections, functools, runpy, math: each costs a good part of an
#: interpreter's start (README, Performance), and they come back easily.
HOOK_MAY_LOAD = HOOK_PATH | {"__future__", "_json", "_datetime", "_sha256", "_sha2"}


#: How the hook is started: the child's own command (``-S``), and the ``cms`` command
#: (bin/cms: ``sys``, then ``cms.ui.entry``), each without site (whose ``.pth`` files
#: here load much of the standard library already), and the child's command with it.
STARTS = {
    "child": ((), "from cms.hooks.child import main; main(['pre-tool-use'])", "pass"),
    "child-no-site": (("-S",), "from cms.hooks.child import main; main(['pre-tool-use'])", "pass"),
    "console-script-no-site": (
        ("-S",), "import sys; from cms.ui.entry import main; main(['hook', 'pre-tool-use'])",
        "import sys",
    ),
}  # fmt: skip


@pytest.mark.parametrize("start", list(STARTS))
def test_a_checked_call_loads_nothing_beyond_the_interpreter_and_the_hook(
    child: Child, start: str
) -> None:
    # The common path, run for real in a fresh interpreter: the record and the
    # project's file (with a cap, so every sibling's record is read too) through the
    # TOML reader, the call through the JSON reader, the preset's reading of a Bash
    # command line; the call is allowed, so nothing is printed.
    child.record(sandbox=True, temp_dir=str(child.project / "tmp"), max_cost_usd=2.0)
    Store(child.paths).save(SessionRecord(name="sibling", cost_usd=0.5, after=["x"]))
    child.project_cap(25.0)
    calls = [
        read_call(child),
        payload("Bash", {"command": "cd src && python -m pytest -x -q 2>&1 | tail -20"
                         " && git diff --stat > out.txt"}, str(child.project)),
    ]  # fmt: skip
    flags, run, before = STARTS[start]
    code = f"{run}; import sys; print(sorted(sys.modules), file=sys.stderr)"
    baseline = _fresh_modules(before, flags)
    may_load = HOOK_MAY_LOAD | {"cms.ui", "cms.ui.entry", "cms.ui.hookrun"}
    if "-S" in flags:  # what site would have loaded: os and what os loads
        may_load |= {"os", "os.path", "posixpath", "genericpath", "stat", "_stat"}
        may_load |= {"_collections_abc"}
    for call in calls:
        done = subprocess.run(
            [sys.executable, *flags, "-P", "-c", code], input=call, env=child.env(),
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert allowed(done), done.stdout
        loaded = set(json.loads(done.stderr.strip().splitlines()[-1].replace("'", '"')))
        assert loaded - baseline <= may_load, sorted(loaded - baseline - may_load)
