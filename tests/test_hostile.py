"""Hostile input: every case gets its exit code and one line, or a denial, and nothing
else changes.

- session names: paths (``../``, absolute), NUL (through the API: argv cannot carry
  one), 1,000 characters, unicode look-alikes, through every command that names a new
  or existing session;
- budgets: negative, NaN, infinite, huge, through ``budget``, ``continue``, ``spawn``
  and ``delegate``;
- state files edited by hand into nonsense, into another schema version, or into
  another session's name;
- a child that tries to write its own record or raise its own budget through Write,
  Edit and Bash, run for real under the edit preset;
- the API key never lands in a record or a log, even when the child prints its
  environment and the model repeats the key.

test_cli_basics already covers ``delegate --name`` with ``../x``, ``/abs``, 1,000 a's,
a Cyrillic e; ``--max-cost`` negative/NaN/inf/0 on ``delegate``; test_store covers
invalid TOML, a bogus status, a wrong type, schema_version 99 and non-UTF-8 bytes.
Those are not repeated here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cmsrun import Cms, Run, Watcher, processes_with_home, wait_gone
from standin import StandIn, drop, error, text, tool_use

from cms import ops as api
from cms.base.errors import CmsError
from cms.base.paths import ProjectPaths
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store

API_KEY = "sk-test-not-a-real-key"  # what tests/conftest.py gives every child


@pytest.fixture(autouse=True)
def no_process_left(cms_home: Path) -> Iterator[None]:
    yield
    left = wait_gone(lambda: processes_with_home(cms_home), timeout=15)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"processes left behind: {left}"


@pytest.fixture
def cli(
    claude_env: dict[str, str],
    project: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Callable[..., Run]:
    """``cms ARGS`` run in this process through the console entry point (same argument
    parsing, same error rendering and exit codes, no interpreter start): the big
    matrices below would take minutes as subprocesses. A sample of each also runs as a
    real ``cms`` process."""
    from cms.ui import cli as cli_module

    for key, value in claude_env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(project)

    def run(*args: str) -> Run:
        capsys.readouterr()
        try:
            cli_module.main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        out = capsys.readouterr()
        return Run(code, out.out, out.err)

    return run


@pytest.fixture
def paths(project: Path, cms_home: Path) -> ProjectPaths:
    return ProjectPaths.for_project(project, cms_home)


@pytest.fixture
def store(paths: ProjectPaths) -> Store:
    store = Store(paths)
    store.ensure_dirs()
    return store


def one_line(done: Run, code: int) -> str:
    """Assert exit ``code`` and exactly one ``cms: error:`` line on stderr; return it."""
    assert done.code == code, (done.code, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("cms: error: "), lines[0]
    assert len(lines[0]) < 600, "the error echoes the hostile input in full"
    return lines[0]


def state(home: Path) -> dict[str, bytes]:
    """Every file under CMS_HOME that a refused command must not touch, with its bytes
    (lock files, the listing index and the claude version cache are not state)."""
    if not home.exists():
        return {}
    return {
        str(p.relative_to(home)): p.read_bytes()
        for p in sorted(home.rglob("*"))
        if p.is_file()
        and not p.name.endswith(".lock")
        and p.name not in (".index.json", "claude-version.json")
    }


def completed_session(store: Store, name: str = "known", **fields: Any) -> SessionRecord:
    values: dict[str, Any] = {
        "task": "t",
        "status": Status.COMPLETED,
        "max_cost_usd": 1.0,
        "max_turns": 5,
        "cost_usd": 0.25,
        "settled_cost_usd": 0.25,
    }
    values.update(fields)
    return store.create(SessionRecord(name=name, **values))


# -- session names ------------------------------------------------------------------------

HOSTILE_NAMES = {
    "dotdot-deep": "../../../etc/passwd",
    "dotdot-bare": "..",
    "dot": ".",
    "absolute": "/etc/passwd",
    "slash": "a/b",
    "backslash": "a\\b",
    "tilde": "~root",
    "newline": "abc\n",
    "trailing-space": "abc ",
    "one-too-long": "a" * 64,
    "thousand-look-alikes": "\u0430" * 1000,  # Cyrillic a, a thousand times
    "fullwidth": "\uff48\uff45\uff4c\uff4c\uff4f",
    "zero-width-space": "hel\u200blo",
    "combining-accent": "he\u0301llo",
    "ligature": "\ufb01x",
    "dotless-i": "f\u0131x",
    "right-to-left-override": "\u202eolleh",
    "roman-numeral": "\u2160",
    "greek-omicron": "hell\u03bf",
}

NEW_NAME_COMMANDS = {
    "spawn": lambda name: ["spawn", name],
    "delegate": lambda name: ["delegate", "say hi", "--name", name, "--background"],
    "fork": lambda name: ["fork", "known", name, "go"],
}
OLD_NAME_COMMANDS = {
    "show": lambda name: ["show", name],
    "send": lambda name: ["send", name, "hello"],
    "continue": lambda name: ["continue", name, "hello", "--add-cost", "1"],
    "finish": lambda name: ["finish", name],
    "resume": lambda name: ["resume", name],
    "delete": lambda name: ["delete", name, "--force"],
    "logs": lambda name: ["logs", name],
    "wait": lambda name: ["wait", name],
    "fork-source": lambda name: ["fork", name, "copy"],
}


@pytest.mark.parametrize("name", list(HOSTILE_NAMES.values()), ids=list(HOSTILE_NAMES))
def test_hostile_names_are_refused_by_every_command(
    name: str, cli: Callable[..., Run], store: Store, cms_home: Path, tmp_path: Path
) -> None:
    completed_session(store)
    before = state(cms_home)
    for what, args in {**NEW_NAME_COMMANDS, **OLD_NAME_COMMANDS}.items():
        line = one_line(cli(*args(name)), 2)
        assert "invalid session name" in line, (what, line)
    assert state(cms_home) == before
    assert [p.name for p in tmp_path.rglob("*.toml")] == ["known.toml"]
    assert not Path("/etc/passwd.toml").exists()


@pytest.mark.parametrize(
    "name", ["../../../etc/passwd", "\u0430" * 1000, "hel\u200blo", "\u202eolleh"]
)
def test_hostile_names_through_the_real_command(
    name: str, cms: Cms, store: Store, cms_home: Path
) -> None:
    completed_session(store)
    before = state(cms_home)
    for args in (["spawn", name], ["fork", "known", name], ["show", name], ["delete", name]):
        assert "invalid session name" in one_line(cms.run(*args), 2)
    assert state(cms_home) == before


def test_the_longest_legal_name_works(cms: Cms) -> None:
    name = "a" * 63
    assert cms.ok("spawn", name)["name"] == name


@pytest.mark.parametrize("name", ["a\0b", "\0", "known\0", "../\0x"])
def test_nul_in_a_name_is_refused_by_the_api(
    name: str, project: Path, claude_env: dict[str, str], store: Store, cms_home: Path
) -> None:
    # A NUL cannot reach `cms` through argv (exec refuses it); the MCP server and other
    # Python callers hand names to cms.ops.sessions as they are.
    completed_session(store)
    before = state(cms_home)
    proj = api.open_project(project, claude_env)
    calls = {
        "get": lambda: api.get_session(proj, name),
        "delegate": lambda: api.delegate(proj, "task", name, api.Options()),
        "spawn": lambda: api.spawn_session(proj, name, "task", api.Options()),
        "fork-new": lambda: api.fork_session(proj, "known", name),
        "fork-source": lambda: api.fork_session(proj, name, "copy"),
        "send": lambda: api.send_message(proj, name, "hi"),
        "delete": lambda: api.delete_session(proj, name, force=True),
        "wait": lambda: api.wait_sessions(proj, [name], timeout_s=1),
    }
    for what, call in calls.items():
        with pytest.raises(CmsError) as info:
            call()
        assert info.value.exit_code == 2, what
        assert "invalid session name" in info.value.message, what
        assert "\0" not in info.value.message and "\n" not in info.value.message
    assert state(cms_home) == before


def test_nul_and_control_characters_in_a_task_round_trip(
    project: Path, claude_env: dict[str, str], store: Store
) -> None:
    task = "fix\0 the\x1b[31m bug\r\n\t\"now\" ''' \\ \ud7ff"
    proj = api.open_project(project, claude_env)
    record = api.spawn_session(proj, "ctl", task, api.Options())
    assert store.load("ctl").task == task == record.task
    assert [r.task for r in store.list().records] == [task]


# -- budgets --------------------------------------------------------------------------------

HUGE_INT = str(10**30)
BAD_LIMITS = {
    "budget-negative": ["budget", "--max-cost", "-1"],
    "budget-minus-zero": ["budget", "--max-cost", "-0.0"],
    "budget-nan": ["budget", "--max-cost", "nan"],
    "budget-inf": ["budget", "--max-cost", "inf"],
    "budget-overflow": ["budget", "--max-cost", "1e309"],
    "budget-huge": ["budget", "--max-cost", "1e12"],
    "parallel-zero": ["budget", "--max-parallel", "0"],
    "parallel-negative": ["budget", "--max-parallel", "-1"],
    "parallel-huge": ["budget", "--max-parallel", HUGE_INT],
    "depth-negative": ["budget", "--max-depth", "-1"],
    "depth-huge": ["budget", "--max-depth", HUGE_INT],
    "add-cost-negative": ["continue", "known", "go", "--add-cost", "-5"],
    "add-cost-nan": ["continue", "known", "go", "--add-cost", "nan"],
    "add-cost-inf": ["continue", "known", "go", "--add-cost", "inf"],
    "add-cost-overflow": ["continue", "known", "go", "--add-cost", "1e309"],
    "add-cost-huge": ["continue", "known", "go", "--add-cost", "100001"],
    "add-turns-zero": ["continue", "known", "go", "--add-turns", "0"],
    "add-turns-negative": ["continue", "known", "go", "--add-turns", "-1"],
    "add-turns-huge": ["continue", "known", "go", "--add-turns", HUGE_INT],
    "add-turns-float": ["continue", "known", "go", "--add-turns", "1.5"],
    "spawn-cost-overflow": ["spawn", "new", "--max-cost", "1e309"],
    "spawn-cost-huge": ["spawn", "new", "--max-cost", "100001"],
    "spawn-turns-huge": ["spawn", "new", "--max-turns", HUGE_INT],
    "spawn-timeout-huge": ["spawn", "new", "--timeout", "1e12"],
    "spawn-timeout-inf": ["spawn", "new", "--timeout", "inf"],
    "spawn-timeout-zero": ["spawn", "new", "--timeout", "0"],
    "delegate-cost-overflow": ["delegate", "t", "--name", "new", "--max-cost", "1e309"],
    "delegate-turns-huge": ["delegate", "t", "--name", "new", "--max-turns", HUGE_INT],
    "delegate-timeout-nan": ["delegate", "t", "--name", "new", "--timeout", "nan"],
    "wait-timeout-negative": ["wait", "known", "--timeout", "-1"],
    "wait-timeout-nan": ["wait", "known", "--timeout", "nan"],
}


@pytest.mark.parametrize("args", list(BAD_LIMITS.values()), ids=list(BAD_LIMITS))
def test_hostile_budgets_are_refused_and_change_nothing(
    args: list[str], cli: Callable[..., Run], store: Store, cms_home: Path
) -> None:
    completed_session(store)
    store.update_project(lambda c: setattr(c.limits, "max_cost_usd", 10.0))
    before = state(cms_home)
    line = one_line(cli(*args), 2)
    assert args[-2] in line, line  # names the option
    assert state(cms_home) == before
    assert not store.exists("new")


@pytest.mark.parametrize(
    "key", ["budget-overflow", "parallel-huge", "add-cost-nan", "spawn-turns-huge"]
)
def test_hostile_budgets_through_the_real_command(
    key: str, cms: Cms, store: Store, cms_home: Path
) -> None:
    completed_session(store)
    before = state(cms_home)
    assert BAD_LIMITS[key][-2] in one_line(cms.run(*BAD_LIMITS[key]), 2)
    assert state(cms_home) == before


# -- state files edited by hand -------------------------------------------------------------

RECORD_EDITS = {
    "empty": lambda text: "",
    "binary": lambda text: "\0\x01\x02\xff garbage \x00",
    "json": lambda text: json.dumps({"name": "broken", "status": "completed"}),
    "a-project-file": lambda text: "schema_version = 1\n[limits]\nmax_parallel = 4\n",
    "schema-zero": lambda text: text.replace("schema_version = 1", "schema_version = 0"),
    "schema-string": lambda text: text.replace("schema_version = 1", 'schema_version = "1"'),
    "schema-float": lambda text: text.replace("schema_version = 1", "schema_version = 1.5"),
    "schema-2": lambda text: text.replace("schema_version = 1", "schema_version = 2"),
    "other-name": lambda text: text.replace('name = "broken"', 'name = "victim"'),
    "spend-nan": lambda text: text.replace("cost_usd = 0.25", "cost_usd = nan", 1),
    "spend-negative": lambda text: text.replace("cost_usd = 0.25", "cost_usd = -1000.0", 1),
    "budget-negative": lambda text: text.replace("max_cost_usd = 1.0", "max_cost_usd = -1.0"),
    "budget-inf": lambda text: text.replace("max_cost_usd = 1.0", "max_cost_usd = inf"),
    "status-uppercase": lambda text: text.replace('"completed"', '"COMPLETED"'),
    "status-table": lambda text: text.replace('status = "completed"', "[status]\nx = 1"),
    "truncated": lambda text: text[: len(text) // 2] + '\ntask = "',
}


@pytest.mark.parametrize("edit", list(RECORD_EDITS.values()), ids=list(RECORD_EDITS))
def test_a_record_edited_into_nonsense_is_named_and_nothing_changes(
    edit: Any, cli: Callable[..., Run], store: Store, paths: ProjectPaths, cms_home: Path
) -> None:
    for name in ("alpha", "broken", "victim"):
        completed_session(store, name)
    bad = paths.session_file("broken")
    bad.write_bytes(edit(bad.read_text()).encode("utf-8", "surrogateescape"))
    before = state(cms_home)

    listed = cli("--json", "list")
    assert listed.code == 0, listed.stderr
    assert [s["name"] for s in listed.json()] == ["alpha", "victim"]
    warning = listed.stderr.strip().splitlines()
    assert len(warning) == 1 and str(bad) in warning[0], listed.stderr
    for args in (
        ["show", "broken"],
        ["send", "broken", "hello"],
        ["continue", "broken", "hello", "--add-cost", "1"],
        ["finish", "broken"],
        ["delete", "broken"],
        ["delete", "broken", "--force"],
        ["fork", "broken", "copy", "go"],
    ):
        line = one_line(cli(*args), 2)
        assert str(bad) in line and "fix or delete that file" in line, (args, line)
    assert state(cms_home) == before
    assert json.loads(cli("--json", "show", "victim").stdout)["name"] == "victim"
    cost = cli("--json", "cost")
    assert cost.code == 0 and "NaN" not in cost.stdout
    assert json.loads(cost.stdout)["total_cost_usd"] == 0.5  # alpha and victim


PROJECT_EDITS = {
    "garbage": "limits = = 1\n",
    "parallel-zero": "[limits]\nmax_parallel = 0\n",
    "parallel-negative": "[limits]\nmax_parallel = -3\n",
    "depth-negative": "[limits]\nmax_depth = -1\n",
    "cap-nan": "[limits]\nmax_cost_usd = nan\n",
    "cap-negative": "[limits]\nmax_cost_usd = -5.0\n",
    "limits-a-string": 'limits = "none"\n',
    "schema-99": "schema_version = 99\n[limits]\nmax_parallel = 4\n",
    "preset-unknown": '[defaults]\npreset = "yolo"\n',
}


@pytest.mark.parametrize("content", list(PROJECT_EDITS.values()), ids=list(PROJECT_EDITS))
def test_a_project_file_edited_into_nonsense_is_named_and_nothing_changes(
    content: str, cli: Callable[..., Run], store: Store, paths: ProjectPaths, cms_home: Path
) -> None:
    completed_session(store)
    paths.project_file.write_text(content)
    before = state(cms_home)
    for args in (
        ["budget"],
        ["budget", "--max-cost", "5"],
        ["delegate", "t", "--name", "new", "--background"],
        ["spawn", "new"],
        ["send", "known", "hello", "--background"],
    ):
        line = one_line(cli(*args), 2)
        assert str(paths.project_file) in line, (args, line)
    assert state(cms_home) == before
    listed = cli("--json", "list")
    assert listed.code == 0 and [s["name"] for s in json.loads(listed.stdout)] == ["known"]


# -- a child against its own record and budget ------------------------------------------------


#: What the attacks below try to put into a state file.
TAMPERED = re.compile(r"INJECTED|max_cost_usd = 1000")


@pytest.fixture
def watch() -> Iterator[list[Watcher]]:
    watchers: list[Watcher] = []
    yield watchers
    for w in watchers:
        w.done.set()
        w.join()


def tool_results(standin: StandIn, marker: str) -> dict[str, tuple[bool, str]]:
    """Each tool call's result as the model was sent it: (is_error, text), by call id."""
    results = {}
    for request in standin.requests_for(marker):
        for block in request.blocks("tool_result"):
            content = block.get("content")
            if isinstance(content, list):
                content = " ".join(str(b.get("text", "")) for b in content)
            results[block["tool_use_id"]] = (bool(block.get("is_error")), str(content))
    return results


def test_a_child_cannot_change_its_own_record_or_budget(
    cms: Cms, standin: StandIn, paths: ProjectPaths, watch: list[Watcher]
) -> None:
    cms.ok("budget", "--max-cost", "50")
    name = "attacker"
    record, project_file = paths.session_file(name), paths.project_file
    forged = paths.session_file("forged")
    in_home = f"$CMS_HOME/projects/{paths.key}"
    cms_cli = f"{sys.executable} -m cms.ui.cli"
    # The hook must deny each of these with its one-line reason.
    denied = [
        ("Write", {"file_path": str(forged), "content": 'INJECTED = 1\nname = "forged"\n'}),
        (
            "Edit",
            {
                "file_path": str(project_file),
                "old_string": "max_cost_usd = 50.0",
                "new_string": "max_cost_usd = 1000.0 # INJECTED",
            },
        ),
        ("Write", {"file_path": str(project_file), "content": "INJECTED = 1\n"}),
        ("Bash", {"command": "cms budget --max-cost 1000"}),
        ("Bash", {"command": f"{cms_cli} budget --max-cost 1000"}),
        ("Bash", {"command": f"sed -i 's/max_cost_usd = 0.5/max_cost_usd = 1000.0/' {record}"}),
        ("Bash", {"command": f"echo 'INJECTED = 1' >> {record}"}),
        ("Bash", {"command": f"echo 'INJECTED = 1' >> \"{in_home}/sessions/{name}.toml\""}),
        ("Bash", {"command": f"cd {in_home} && printf 'INJECTED = 1\\n' >> project.toml"}),
    ]
    # Claude Code itself refuses these when the supervisor has rewritten the record since
    # the child read it (it rewrites it as events stream in); otherwise the hook denies.
    own_record = [
        ("Write", {"file_path": str(record), "content": "INJECTED = 1\n"}),
        (
            "Edit",
            {
                "file_path": str(record),
                "old_string": "max_cost_usd = 0.5",
                "new_string": "max_cost_usd = 1000.0 # INJECTED",
            },
        ),
    ]
    # Allowed by the preset, refused by cms itself: inside the sandbox cms state is
    # read-only, and cms says to use the MCP tools instead.
    own_continue = ("Bash", {"command": f"{cms_cli} continue {name} more --add-cost 100"})
    calls = [
        ("Read", {"file_path": str(project_file)}),
        ("Read", {"file_path": str(record)}),
        *own_record,
        *denied,
        own_continue,
    ]
    standin.script("T-ATTACK", [*(tool_use(t, a) for t, a in calls), text("gave up")])
    watch += [Watcher(record, TAMPERED), Watcher(project_file, TAMPERED), Watcher(forged, TAMPERED)]
    for w in watch:
        w.start()
    project_before = project_file.read_bytes()

    out = cms.ok(
        "delegate", "attack T-ATTACK", "--name", name, "--max-cost", "0.5", "--max-turns", "30"
    )
    assert out["status"] == "completed" and out["response"] == "gave up", out

    # Nothing changed: the budgets, the project's limits, no forged record, and no
    # injected line ever, not even for a moment.
    assert (out["max_cost_usd"], out["max_turns"]) == (0.5, 30)
    assert project_file.read_bytes() == project_before
    assert not forged.exists()
    assert [w.tampered for w in watch] == [[], [], []]
    assert [r["name"] for r in cms.ok("list")] == [name]

    results = tool_results(standin, "T-ATTACK")
    ids = [r.tool_use_ids[0] for r in standin.requests_for("T-ATTACK") if r.tool_use_ids]
    assert len(ids) == len(calls)
    by_call = dict(zip(ids, calls, strict=True))
    for tool_id, (tool, args) in by_call.items():
        is_error, content = results[tool_id]
        if (tool, args) in denied:
            assert is_error and "cms: preset edit denies" in content, (tool, args, content)
            assert "\n" not in content
        elif (tool, args) in own_record:
            assert is_error, (tool, args, content)
            assert "cms: preset edit denies" in content or "modified since read" in content
        elif (tool, args) == own_continue:
            assert is_error and "cms: error: inside cms session 'attacker'" in content
            assert "MCP tools" in content

    # ... and the denials are in the session's log.
    shown = cms.run("logs", name)
    assert shown.code == 0
    assert shown.stdout.count("denied") >= len(denied), shown.stdout


# -- the API key ---------------------------------------------------------------------------------


def test_the_api_key_never_reaches_records_or_logs(
    cms: Cms, standin: StandIn, project: Path, cms_home: Path
) -> None:
    # The child prints its environment (the key is in it), the model repeats the key in
    # its answer, and other turns fail in the ways the API fails.
    standin.script(
        "T-LEAK",
        [
            tool_use("Bash", {"command": "env | sort"}),
            tool_use("Bash", {"command": "echo key=$ANTHROPIC_API_KEY >&2; false"}),
            tool_use("Write", {"file_path": str(project / "k.txt"), "content": API_KEY}),
            text(f"The key is {API_KEY}."),
        ],
    )
    standin.script("T-LEAK-500", [error(500)])
    standin.script("T-LEAK-DROP", [drop()])
    # Without the sandbox, on purpose: under it the commands never see the key at all
    # (test_red_team.py), and this is about what cms writes when a child has it.
    leak = cms.ok("delegate", "print env T-LEAK", "--name", "leak", "--no-sandbox")
    assert leak["status"] == "completed"
    assert leak["response"] is not None and "The key is" in leak["response"]
    for marker, name in (("T-LEAK-500", "fail-500"), ("T-LEAK-DROP", "fail-drop")):
        assert cms.run("delegate", f"fail {marker}", "--name", name).code == 1
    assert cms.ok("budget", "--max-cost", "5")

    # The child did see the key (so the test proves something) ...
    seen = [
        str(b.get("content"))
        for r in standin.requests_for("T-LEAK")
        for b in r.blocks("tool_result")
    ]
    assert any(API_KEY in s for s in seen)
    # ... and no file of cms holds it: records, logs, stderr, supervisor logs, caches.
    files = [p for p in cms_home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files) and any(p.suffix == ".stderr" for p in files)
    holding = [str(p) for p in files if API_KEY.encode() in p.read_bytes()]
    assert holding == []
    # Nor does anything cms prints about the sessions.
    for args in (
        ["show", "leak"],
        ["logs", "leak"],
        ["logs", "leak", "--raw"],
        ["list"],
        ["result", "fail-500"],
        ["logs", "fail-drop", "--raw"],
    ):
        assert API_KEY not in cms.run("--json", *args).stdout, args
