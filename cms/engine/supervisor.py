"""The detached supervisor of one running exchange (one ``claude -p`` run).

Started by :mod:`cms.engine.launcher` (forked, or as ``python -m cms.engine.launcher
HOME PROJECT NAME``) in a process session of its own, with no terminal and none of
the caller's file descriptors, so the command that started it may exit or be killed
without harm. It owns the exchange from start to recorded outcome:

- starts ``claude -p`` (its own process group) with the prompt on stdin;
- reads stream-json line by line, appends every raw line to the session's log, and
  keeps the record current (turns, tokens, live cost estimate, last activity);
- ends the exchange itself when it runs past its deadline (``timed_out``), when the
  session is aborted (``aborted``) or when the session's or project's spend reaches
  its cap (``cost_exceeded``): the whole process tree is stopped, SIGTERM then SIGKILL;
- records the outcome from the ``result`` event (trusting ``is_error``, not only the
  subtype: an API error ends with subtype "success" and ``is_error`` true), or
  ``failed`` with the stderr tail when the CLI crashed or exited without a result;
- then calls back the launcher, which starts queued sessions if a slot is free.

If the supervisor itself dies, the record still says ``running`` with a pid that is
no longer alive: the next :func:`cms.ops.reconcile` records it ``interrupted``.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

from cms.base import paths
from cms.base.errors import CmsError
from cms.base.paths import ProjectPaths
from cms.engine import claude, hosts, lifecycle, procs, seam
from cms.engine.models import ProjectConfig, SessionRecord, Status
from cms.engine.store import LockTimeout, Store
from cms.engine.streamjson import LineFramer, TurnTally, parse_line
from cms.policy import budget, sandbox

#: How often the record is rewritten while events stream in (seconds).
RECORD_EVERY_S = 0.25
#: How often the project's total spend is re-read for the project cap (seconds).
PROJECT_CAP_EVERY_S = 1.0
#: How long a live update of the record waits for its lock. The figures are written
#: again a moment later, so a slow lock skips one write instead of stalling the loop
#: that checks the limits and reads claude's output.
LIVE_LOCK_S = 0.2
#: SIGTERM to SIGKILL grace when stopping claude.
KILL_GRACE_S = 3.0
STDERR_TAIL_CHARS = 2000
#: Where the user's git keeps its global excludes (the child's git gets them too).
EXCLUDES_QUERY = ("git", "config", "--global", "--path", "--get", "core.excludesFile")

#: Variables whose values are credentials. A child can print its environment (``env``)
#: and the model can repeat what it read, so their values are replaced by
#: ``[redacted]`` in every event line before it reaches the log or the record.
SECRET_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
REDACTED = b"[redacted]"

#: The status an exchange ends with when :func:`budget.judge` stops it.
STATUS_FOR_REASON = {
    budget.ABORTED: Status.ABORTED,
    budget.SESSION_BUDGET: Status.COST_EXCEEDED,
    budget.SESSION_TURNS: Status.TURNS_EXCEEDED,
    budget.DEADLINE: Status.TIMED_OUT,
    budget.PROJECT_CAP: Status.COST_EXCEEDED,
}

ERROR_FOR_SUBTYPE = {
    "error_max_turns": Status.TURNS_EXCEEDED,
    "error_max_budget_usd": Status.COST_EXCEEDED,
}


@dataclass
class Stop:
    """Why the supervisor ended the turn itself."""

    status: Status
    error: str


class Supervisor:
    """One exchange of session ``name``, from starting claude to the recorded outcome.

    ``after`` runs once the outcome is recorded (the launcher passes "start what the
    queue holds"), so this module needs nothing of the launcher's."""

    def __init__(
        self, paths: ProjectPaths, name: str, after: Callable[[], object] | None = None
    ) -> None:
        self.paths = paths
        self.name = name
        self.after = after
        self.turns_passed: int | None = None
        self.store = Store(paths)
        self.tally = TurnTally()
        self.stop: Stop | None = None
        #: The signal that told this supervisor to stop ("" while none did).
        self.terminated = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.temp_dir: str | None = None
        self.extra_env: dict[str, str] = {}
        #: ``git config`` asked for the user's excludes file at the turn's start, read
        #: when the sandbox is set up (:meth:`_git_excludes`): not on claude's path.
        self.excludes_query: procs.Running | None = None
        #: Where the turn runs (cms.engine.seam): this machine, or a Docker host.
        self.engine: seam.Engine | None = None
        self.stdin_prefix = b""
        self.turn_marker: dict[str, str] = {}
        self.reaper: tuple[int, int] | None = None
        self._last_write = 0.0
        self._last_shown: tuple[object, ...] = ()
        self._last_cap_check = 0.0
        self._project_other_spend = 0.0
        self.secrets = [
            value.encode() for key in SECRET_VARIABLES if len(value := os.environ.get(key, "")) >= 8
        ]

    def _redact(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret, REDACTED)
        return data

    # -- signals ---------------------------------------------------------------

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = signal.Signals(signum).name

    # -- main ------------------------------------------------------------------

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        me, started = os.getpid(), procs.start_ticks(os.getpid())
        # Every process of this turn carries CMS_TURN; if this supervisor is killed,
        # the reaper stops them all, sandbox bridges included (no reader needed).
        self.turn_marker = {
            "CMS_HOME": str(self.paths.home),
            "CMS_SESSION": self.name,
            "CMS_TURN": f"{me}-{started}",
        }
        self.reaper = procs.start_reaper(self.turn_marker)
        try:
            return self._claim_and_run(me, started)
        finally:
            if self.excludes_query is not None:  # a turn that never reached its sandbox
                with contextlib.suppress(OSError, subprocess.SubprocessError):
                    self.excludes_query.result(timeout=5)
            self._release_reaper()

    def _release_reaper(self) -> None:
        """The turn ends in order: the reaper may go (before the descendants are
        stopped, so it is not one of them)."""
        procs.release_reaper(self.reaper)
        self.reaper = None

    def _claim_and_run(self, me: int, started: int | None) -> int:
        try:
            record = lifecycle.apply(
                self.store, self.name, lambda r: lifecycle.claim(r, me, started), durable=False
            )
        except CmsError as exc:  # aborted or deleted before it began: nothing to run
            self._log(f"not started: {exc.message}\n")
            return 1
        try:
            return self._run_turn(record)
        except Exception as exc:  # never leave a running record behind
            self._log(traceback.format_exc())
            self._kill_child()  # nor a claude that nobody supervises
            self._end_engine_turn()
            self._release_reaper()
            procs.stop_descendants()
            self._remove_temp()
            self._finish(Status.FAILED, f"cms supervisor error: {exc}")
            return 1

    def _money_left(
        self, record: SessionRecord, config: ProjectConfig
    ) -> tuple[float | None, budget.Verdict | None]:
        """What this turn may spend (None: no limit): the least of the session's budget
        left and the project's; and why it may not start (:func:`budget.judge`)."""
        cap = config.limits.max_cost_usd
        spent = self.store.spend() if cap is not None else None
        verdict = budget.judge(
            self.name,
            record.model_dump(),
            project_spend=spent,
            project_cap=cap,
            now=time.time(),
            starting=True,
        )
        budget_left = None
        if record.max_cost_usd is not None:
            budget_left = record.max_cost_usd - record.settled_cost_usd
        if cap is None or spent is None:
            return budget_left, verdict
        project_left = cap - spent
        return (project_left if budget_left is None else min(budget_left, project_left)), verdict

    def _run_turn(self, record: SessionRecord) -> int:
        self._ask_excludes(record)
        config = self.store.load_project()
        budget_left, refused = self._money_left(record, config)
        if refused:  # e.g. a queued turn whose slot came after the project's cap
            status = STATUS_FOR_REASON[refused.reason]
            fix = f"; {refused.fix}" if refused.fix else ""
            self._finish(status, f"{refused.message} before this turn started{fix}")
            return 1
        turns_left = None
        if record.max_turns is not None:
            turns_left = record.max_turns - record.settled_turns
        self.turns_passed = turns_left
        try:
            self.engine = seam.engine_for(self.paths, record)
            local = isinstance(self.engine, seam.LocalEngine)
            binary = claude.find_claude() if local else "claude"
            self.engine.put_tree(record)
        except CmsError as exc:
            self._finish(Status.FAILED, exc.message)
            return 1
        cwd = record.cwd or str(self.paths.project)
        settings = self._sandbox(record, cwd, config) if local else None
        spec = claude.TurnSpec(
            claude=binary,
            session_id=record.session_id,
            resume=record.has_conversation and not record.fork_from,
            fork_from=record.fork_from,
            preset=record.preset,
            model=record.model,
            max_budget_usd=budget_left,
            max_turns=turns_left,
            sandbox=settings,
            delegates=record.depth < config.limits.max_depth,
        )
        env = claude.child_env(
            os.environ,
            session=record.name,
            depth=record.depth,
            project=self.paths.project,
            home=self.paths.home,
            temp_dir=self.temp_dir,
        )
        env.update(self.extra_env)
        env.update(self.turn_marker)
        launch = self.engine.start(record, spec, env, config.sandbox.allowed_domains)
        self.stdin_prefix = launch.stdin_prefix
        prompt = record.pending_message or record.task
        stderr_path = self.paths.stderr_file(self.name)
        log_path = self.paths.log_file(self.name)
        with open(stderr_path, "wb") as stderr, open(log_path, "ab") as log:
            os.chmod(stderr_path, 0o600)
            os.chmod(log_path, 0o600)
            try:
                self.proc = subprocess.Popen(
                    launch.argv,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=stderr,
                    cwd=launch.cwd,
                    env=launch.env,
                    start_new_session=True,
                    close_fds=True,
                )
            except OSError as exc:
                self._finish(Status.FAILED, f"could not start claude ({binary}): {exc}")
                return 1
            procs.become_subreaper()  # its orphans come here: set once it runs, not before
            self._note_child(self.proc.pid)
            self._send_prompt(prompt)
            self._pump(log)
        # Tool processes claude ran in sessions of their own outlive a claude that was
        # killed; the turn is over, so nothing of it may keep running.
        self._release_reaper()
        procs.stop_descendants()
        self._remove_temp()
        self._end_engine_turn(record)
        return self._conclude(stderr_path)

    def _note_child(self, child_pid: int) -> None:
        """claude's pid in the record, for abort and reconcile (no fsync: a crash of the
        machine makes it moot, and none may stand before claude's start)."""
        child_started = procs.start_ticks(child_pid)
        lifecycle.apply(
            self.store,
            self.name,
            lambda r: lifecycle.child(r, child_pid, child_started),
            durable=False,
        )

    def _end_engine_turn(self, record: SessionRecord | None = None) -> None:
        """Nothing of the turn left on its host; its work home as ``cms/NAME``."""
        if self.engine is None:
            return
        try:
            self.engine.end_turn()
            if record is not None:
                self.engine.get_branch(record)
        except CmsError as exc:
            self._log(f"after the turn: {exc.message}\n")

    def _sandbox(self, record: SessionRecord, cwd: str, config: ProjectConfig) -> Any:
        """The turn's sandbox settings, and its private temp folder (None: no sandbox)."""
        if not record.sandbox or not sandbox.needed(record.preset.value):
            return None
        self.temp_dir = tempfile.mkdtemp(prefix=f"cms-{record.name}-")
        protected = self._protected(cwd)
        temp_dir = self.temp_dir

        lifecycle.apply(
            self.store, self.name, lambda r: lifecycle.temp_folder(r, temp_dir), durable=False
        )
        self._git_excludes(cwd, temp_dir)
        return sandbox.settings(
            record.preset.value,
            cwd=cwd,
            temp_dir=temp_dir,
            state_dir=str(self.paths.home),
            protected=protected,
            allowed_domains=config.sandbox.allowed_domains,
            denied_domains=config.sandbox.denied_domains,
        )

    def _protected(self, cwd: str) -> list[str]:
        """Places beyond cms state the child's commands must not write: Claude Code's
        folder (all of it but the way to the tree, when the tree lies inside) and the
        folders Claude Code's sandbox would leave writable in the home."""
        home = Path(os.environ.get("HOME") or Path.home())
        for name in sandbox.HOME_WRITABLE:
            with contextlib.suppress(OSError):
                (home / name).mkdir(parents=True, exist_ok=True, mode=0o700)
        protected = sandbox.shielded(paths.claude_config_dir(), Path(cwd))
        return protected + [str(home / name) for name in sandbox.HOME_WRITABLE]

    def _ask_excludes(self, record: SessionRecord) -> None:
        """Start asking git for the user's excludes file, for a local sandboxed turn:
        read when the sandbox is set up (:meth:`_git_excludes`), not waited for here."""
        if record.host == hosts.LOCAL and record.sandbox and sandbox.needed(record.preset.value):
            with contextlib.suppress(OSError):
                self.excludes_query = procs.begin(EXCLUDES_QUERY)

    def _git_excludes(self, cwd: str, temp_dir: str) -> None:
        """Point the child's git at an excludes file that hides the sandbox's
        placeholders (see :func:`cms.policy.sandbox.git_excludes`)."""
        user = ""
        query, self.excludes_query = self.excludes_query, None
        try:
            done = (query or procs.begin(EXCLUDES_QUERY)).result()
        except (OSError, subprocess.SubprocessError):
            done = procs.Completed(EXCLUDES_QUERY, 1, "", "")
        default = os.path.join(
            os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config"), "git", "ignore"
        )
        source = done.stdout.strip() if done.ok and done.stdout.strip() else default
        with contextlib.suppress(OSError, UnicodeDecodeError):
            user = Path(source).read_text(encoding="utf-8")
        path = os.path.join(temp_dir, "git-excludes")
        Path(path).write_text(sandbox.git_excludes(cwd, user), encoding="utf-8")
        given = os.environ.get("GIT_CONFIG_COUNT", "0")
        count = int(given) if given.isdigit() else 0
        self.extra_env = {
            "GIT_CONFIG_COUNT": str(count + 1),
            f"GIT_CONFIG_KEY_{count}": "core.excludesFile",
            f"GIT_CONFIG_VALUE_{count}": path,
        }

    def _remove_temp(self) -> None:
        if self.temp_dir:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def _send_prompt(self, prompt: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(self.stdin_prefix + prompt.encode("utf-8"))
            self.proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # claude died at once; its exit status and stderr tell why

    # -- the event loop ----------------------------------------------------------

    def _pump(self, log: IO[bytes]) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        stdout = self.proc.stdout
        framer = LineFramer()
        selector = selectors.DefaultSelector()
        selector.register(stdout, selectors.EVENT_READ)
        fd = stdout.fileno()
        open_stream = True
        exited_at: float | None = None
        while open_stream:
            if self.stop is None:
                self.stop = self._check_limits()
                if self.stop is not None:
                    self._kill_child()
            for _key, _mask in selector.select(timeout=0.2):
                chunk = os.read(fd, 65536)
                if not chunk:
                    open_stream = False
                    break
                for line in framer.feed(chunk):
                    self._handle_line(line, log)
            if open_stream and self.proc.poll() is not None:
                # claude is gone but something it started may still hold the pipe.
                exited_at = exited_at or time.monotonic()
                if time.monotonic() - exited_at > 2.0:
                    open_stream = False
            if not open_stream:
                for line in framer.flush():
                    self._handle_line(line, log)
            self._maybe_write()
        selector.close()
        try:
            self.proc.wait(timeout=KILL_GRACE_S * 2)
        except subprocess.TimeoutExpired:
            self._kill_child()
            self.proc.wait()

    def _handle_line(self, line: bytes, log: IO[bytes]) -> None:
        line = self._redact(line)
        log.write(line.rstrip(b"\r\n") + b"\n")
        log.flush()
        event = parse_line(line)
        if event is None:
            self.tally.bad_lines += 1
            return
        before = self.tally.result
        self.tally.add(event)
        if self.tally.result is not before:
            self._maybe_write(force=True)

    def _check_limits(self) -> Stop | None:
        if self.terminated:
            record = self.store.load(self.name)
            if record.abort_requested:
                return Stop(Status.ABORTED, "aborted by cms abort")
            return Stop(
                Status.FAILED,
                f"the cms supervisor was stopped by {self.terminated} before the turn "
                "finished (claude was stopped with it)",
            )
        record = self.store.load(self.name)
        spend = record.settled_cost_usd + self.tally.estimated_cost_usd
        cap, total = None, None
        now = time.monotonic()
        if now - self._last_cap_check >= PROJECT_CAP_EVERY_S:
            self._last_cap_check = now
            cap = self.store.load_project().limits.max_cost_usd
            if cap is not None:
                total = self.store.spend(exclude=self.name) + spend
        verdict = budget.judge(
            self.name,
            {**record.model_dump(), "cost_usd": spend},
            project_spend=total,
            project_cap=cap,
            now=time.time(),
            starting=False,
        )
        if verdict is None:
            return None
        return Stop(STATUS_FOR_REASON[verdict.reason], verdict.message)

    def _kill_child(self) -> None:
        if self.engine is not None:
            self.engine.stop()
        if self.proc is not None and self.proc.poll() is None:
            procs.kill_tree(self.proc.pid, grace_s=KILL_GRACE_S)

    def _maybe_write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_write < RECORD_EVERY_S:
            return
        tally = self.tally
        shown = (tally.estimated_cost_usd, tally.api_calls, tally.denials,
                 tally.last_activity, tally.saw_conversation)  # fmt: skip
        if not force and shown == self._last_shown:
            return  # nothing new to show: no locked rewrite (and fsync) of the record
        self._last_write = now

        # Another process holding the record's lock: the next write catches up.
        try:
            lifecycle.apply(
                self.store,
                self.name,
                lambda r: lifecycle.tally(
                    r,
                    tally.estimated_cost_usd,
                    tally.api_calls,
                    tally.denials,
                    tally.last_activity,
                    tally.saw_conversation,
                ),
                timeout_s=LIVE_LOCK_S,
            )
        except LockTimeout:
            return
        self._last_shown = shown

    # -- the outcome -------------------------------------------------------------

    def _conclude(self, stderr_path: Path) -> int:
        assert self.proc is not None
        code = self.proc.returncode
        result = self.tally.result
        self._redact_file(stderr_path)
        stderr_tail = _tail(stderr_path)
        if self.stop is not None:
            status, error = self.stop.status, self.stop.error
        elif result is not None:
            subtype = str(result.get("subtype", ""))
            if subtype in ERROR_FOR_SUBTYPE:
                status = ERROR_FOR_SUBTYPE[subtype]
                error = "; ".join(result.get("errors") or []) or subtype
            elif result.get("is_error") or subtype != "success":
                status = Status.FAILED
                error = _result_error(result, stderr_tail, code)
            else:
                status, error = Status.COMPLETED, ""
        else:
            status = Status.FAILED
            error = _no_result_error(code, stderr_tail, stderr_path)
        lost = None
        if status is Status.FAILED and self.stop is None and self.engine is not None:
            lost = self.engine.lost(stderr_tail)
        if lost is not None:  # its host went away: resumable, as after a dead supervisor
            status, error = Status.INTERRUPTED, lost
        self._finish(status, error)
        return 0 if status is Status.COMPLETED else 1

    def _finish(self, status: Status, error: str) -> None:
        # The verdict goes into the log first: a reader that sees the final status
        # (`cms logs --follow`) then finds the log complete.
        self._log_outcome(status, error)
        outcome = self._outcome(status, error)
        try:
            lifecycle.apply(self.store, self.name, lambda r: lifecycle.end(r, outcome))
        except CmsError as exc:  # deleted meanwhile (or closed otherwise): said in its log
            self._log(f"outcome not recorded: {exc.message}\n")
        if self.after is not None:
            try:
                self.after()
            except Exception:
                self._log(traceback.format_exc())

    def _outcome(self, status: Status, error: str) -> lifecycle.Outcome:
        """The exchange's outcome: the CLI's own figures where its result gives them,
        else the live tally."""
        tally, result = self.tally, self.tally.result
        cost = tally.estimated_cost_usd
        turns = tally.api_calls
        response = tally.last_text
        session_id = None
        if result is not None:
            if isinstance(result.get("total_cost_usd"), int | float):
                cost = float(result["total_cost_usd"])
            if isinstance(result.get("num_turns"), int):
                turns = int(result["num_turns"])
                if self.turns_passed is not None:
                    # error_max_turns reports the refused turn too; count turns used.
                    turns = min(turns, max(self.turns_passed, 1))
            sid = result.get("session_id")
            session_id = sid if isinstance(sid, str) and sid else None
            text = result.get("result")
            response = text if isinstance(text, str) else tally.last_text
        return lifecycle.Outcome(
            status=status,
            error=error,
            cost_usd=cost,
            turns=turns,
            input_tokens=tally.input_tokens,
            output_tokens=tally.output_tokens,
            denials=tally.denials,
            response=response,
            session_id=session_id,
            subtype=str(result.get("subtype")) if result else None,
            saw_conversation=tally.saw_conversation,
            last_activity=tally.last_activity,
        )

    def _log_outcome(self, status: Status, error: str) -> None:
        """Close the turn in the event log with cms's own verdict (``cms logs`` shows it)."""
        event = {"type": "cms_outcome", "status": status.value, "error": error or None}
        with contextlib.suppress(OSError), open(self.paths.log_file(self.name), "ab") as log:
            log.write(json.dumps(event).encode() + b"\n")

    def _log(self, text: str) -> None:
        text = self._redact(text.encode("utf-8", "replace")).decode("utf-8", "replace")
        with contextlib.suppress(OSError), open(self.paths.supervisor_log(self.name), "a") as f:
            f.write(text)

    def _redact_file(self, path: Path) -> None:
        """Redact secrets from a file claude wrote itself (its stderr), in place."""
        try:
            with open(path, "rb") as handle:
                data = handle.read(64 * 1024 * 1024)
            clean = self._redact(data)
            if clean != data:
                with open(path, "r+b") as handle:
                    handle.write(clean)
                    handle.truncate()
        except OSError:
            pass


def _signal_of(code: int | None) -> str | None:
    """The signal that ended claude: a negative exit status (killed by it), or 128+N (a
    shell, or Node, exiting on it: 143 is SIGTERM, 137 SIGKILL); None otherwise."""
    if code is None:
        return None
    number = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else 0
    try:
        return signal.Signals(number).name if number else None
    except ValueError:
        return None


def _no_result_error(code: int | None, stderr_tail: str, stderr_path: Path) -> str:
    """The error of a claude that ended without a result. Death by a signal is said
    plainly: its stderr then holds whatever it printed before (often a stray warning),
    which is no cause, so it is pointed to rather than quoted."""
    killed_by = _signal_of(code)
    if killed_by is not None:
        how = f"killed by {killed_by}" if code and code < 0 else f"stopped by {killed_by}"
        return (
            f"claude was {how} (exit status {code}) before it finished the turn: "
            f"something outside cms ended it; its stderr is in {stderr_path}"
        )
    return stderr_tail or f"claude exited with status {code} and no result"


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - STDERR_TAIL_CHARS))
            data = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return data.strip()


def _result_error(result: dict[str, object] | object, stderr_tail: str, code: int | None) -> str:
    assert isinstance(result, dict)
    parts: list[str] = []
    text = result.get("result")
    if isinstance(text, str) and text.strip():
        parts.append(text.strip())
    errors = result.get("errors")
    if isinstance(errors, list):
        parts.extend(str(e) for e in errors if str(e).strip())
    status = result.get("api_error_status")
    if status:
        parts.insert(0, f"API error {status}:")
    if not parts and stderr_tail:
        parts.append(stderr_tail)
    if not parts:
        parts.append(f"claude ended with an error (exit {code})")
    return " ".join(parts)
