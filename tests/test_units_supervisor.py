"""The supervisor alone (cms.engine.supervisor), with a test-side executable standing
in for ``claude``: it replays recorded stream-json lines (as claude-agent-sdk-python
tests its transport), so one exchange runs in well under a second. What a user
checks: the record's outcome, figures and response, the log, and no process left."""

from __future__ import annotations

import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cms.base.paths import ProjectPaths
from cms.engine import lifecycle
from cms.engine.models import SessionRecord, Status
from cms.engine.store import Store
from cms.engine.supervisor import Supervisor

SESSION_ID = "0b6b7b52-5c4e-4c1e-9a55-3f9e1f0d2a11"


def _assistant(msg_id: str, text: str, out_tokens: int) -> dict[str, Any]:
    return {"type": "assistant", "session_id": SESSION_ID, "message": {
        "id": msg_id, "model": "claude-sonnet-4-5", "role": "assistant",
        "content": [{"type": "text", "text": text}],
        "usage": {"input_tokens": 1000, "output_tokens": out_tokens}}}  # fmt: skip


INIT = {"type": "system", "subtype": "init", "model": "claude-sonnet-4-5",
        "session_id": SESSION_ID, "claude_code_version": "2.1.332"}  # fmt: skip
RESULT = {"type": "result", "subtype": "success", "is_error": False, "result": "All done.",
          "session_id": SESSION_ID, "total_cost_usd": 0.0123, "num_turns": 2}  # fmt: skip


def _replaying_claude(folder: Path, events: list[dict[str, Any]], *, then: str = "",
                      code: int = 0, stderr: str = "") -> Path:  # fmt: skip
    """An executable that reads the prompt on stdin, prints ``events`` as stream-json
    lines, runs the Python of ``then`` and exits ``code``."""
    lines = "\n".join(json.dumps(e) for e in events)
    script = folder / "claude"
    script.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import sys, time
        prompt = sys.stdin.read()
        with open({str(folder / "argv")!r}, "w") as f:
            f.write("\\n".join(sys.argv[1:]) + "\\n--\\n" + prompt)
        for line in {lines!r}.splitlines():
            print(line, flush=True)
        sys.stderr.write({stderr!r})
        {then or "pass"}
        sys.exit({code})
        """))  # fmt: skip
    script.chmod(0o755)
    return script


def _run_supervisor(paths: ProjectPaths, claude: Path) -> int:
    """Run the supervisor of session ``s`` to its end in a forked process of its own
    (it becomes a subreaper, handles signals and stops its descendants); its exit
    status. A fork, not a new interpreter: this test's modules are loaded already."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        code = 99
        try:
            os.environ["CMS_CLAUDE_BIN"] = str(claude)
            code = Supervisor(paths, "s").run()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def _supervise(tmp_path: Path, claude: Path, **fields: Any) -> SessionRecord:
    """Begin an exchange of a new session ``s`` and supervise it; the record as the
    supervisor left it."""
    paths = ProjectPaths.for_project(tmp_path / "project", tmp_path / "home")
    (tmp_path / "project").mkdir(exist_ok=True)
    store = Store(paths)
    store.ensure_dirs()
    store.create(SessionRecord(name="s", session_id=SESSION_ID, sandbox=False,
                               cwd=str(tmp_path / "project"), **fields))  # fmt: skip
    lifecycle.apply(store, "s", lambda r: lifecycle.begin(r, "do the thing"))
    _run_supervisor(paths, claude)
    return store.load("s")


def test_an_exchange_is_recorded_from_the_result(tmp_path: Path) -> None:
    events = [INIT, _assistant("m1", "Looking.", 10), _assistant("m2", "All done.", 20), RESULT]
    claude = _replaying_claude(tmp_path, events)
    record = _supervise(tmp_path, claude, max_turns=10)
    assert record.status is Status.COMPLETED and record.error is None
    assert (record.cost_usd, record.turns, record.exchanges) == (0.0123, 2, 1)
    assert record.response == "All done." and record.has_conversation
    assert (record.input_tokens, record.output_tokens) == (2000, 30)
    assert record.pid is None and record.child_pid is None and not record.result_read
    argv, prompt = (tmp_path / "argv").read_text().split("\n--\n")
    assert prompt == "do the thing"
    assert "--session-id" in argv.split("\n") and "--max-turns" in argv.split("\n")
    log = (tmp_path / "home").rglob("s.jsonl")
    lines = [json.loads(line) for line in next(log).read_text().splitlines()]
    assert [e["type"] for e in lines] == [
        "system", "assistant", "assistant", "result", "cms_outcome"]  # fmt: skip


def test_a_claude_that_dies_without_a_result_fails_with_its_stderr(tmp_path: Path) -> None:
    claude = _replaying_claude(tmp_path, [INIT], code=1, stderr="boom: the API said no\n")
    record = _supervise(tmp_path, claude)
    assert record.status is Status.FAILED
    assert "boom: the API said no" in (record.error or "")


def test_spend_past_the_budget_stops_the_exchange_and_its_claude(tmp_path: Path) -> None:
    # Each message's estimate: 1000 input, 40000 output tokens of sonnet-4-5: $0.603.
    claude = _replaying_claude(
        tmp_path, [INIT, _assistant("m1", "Spending.", 40_000)],
        then=f"open({str(tmp_path / 'waiting')!r}, 'w').close(); time.sleep(60)",
    )  # fmt: skip
    record = _supervise(tmp_path, claude, max_cost_usd=0.5)
    assert record.status is Status.COST_EXCEEDED
    assert record.error is not None and "session 's' has spent $0.6030 of its $0.5000" in (
        record.error)  # fmt: skip
    assert (tmp_path / "waiting").exists()  # it was stopped while it waited
    assert record.cost_usd == pytest.approx(0.603)


def test_a_record_aborted_before_its_supervisor_claims_it_runs_nothing(tmp_path: Path) -> None:
    claude = _replaying_claude(tmp_path, [INIT, RESULT])
    paths = ProjectPaths.for_project(tmp_path / "project", tmp_path / "home")
    (tmp_path / "project").mkdir()
    store = Store(paths)
    store.ensure_dirs()
    store.create(SessionRecord(name="s", sandbox=False))
    lifecycle.apply(store, "s", lambda r: lifecycle.begin(r, "go"))
    lifecycle.apply(store, "s", lifecycle.abort)
    assert _run_supervisor(paths, claude) == 1 and not (tmp_path / "argv").exists()
    assert store.load("s").status is Status.ABORTED
