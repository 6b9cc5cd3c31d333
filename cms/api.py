"""Every cms operation, as plain functions over typed records.

The CLI and the MCP server call these and only render what they return; nothing here
prints. Failures are :class:`cms.errors.CmsError` with the message and exit code of
DESIGN.md, raised before anything is changed: a refused command leaves state as it was.

A session's lifecycle: ``delegate``/``spawn`` create the record; a turn is started by
marking it ``running`` (or ``queued`` when the project's parallel limit is reached)
and launching its detached supervisor, which records the outcome. Waiting is polling
the record, so a waiter can come and go (another terminal, a later conversation)
without affecting the turn.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cms import claude, launcher, procs, sandbox, vocab, worktree
from cms.errors import (
    BadInput,
    BudgetExhausted,
    CmsError,
    EnvironmentProblem,
    WrongState,
)
from cms.models import (
    SENDABLE,
    SUCCESSFUL,
    Preset,
    ProjectConfig,
    SessionRecord,
    Status,
    utcnow,
)
from cms.paths import ProjectPaths, cms_home, resolve_project, valid_name
from cms.store import Store

#: How often a waiter re-reads the records (seconds): a turn's end is seen this soon.
POLL_S = 0.02
#: How often a waiter re-checks the queue in case every supervisor died.
QUEUE_KICK_S = 2.0

Progress = Callable[[list[SessionRecord]], None]


# -- the project context ---------------------------------------------------------


@dataclass
class Project:
    """One project's state and the environment cms was called with."""

    paths: ProjectPaths
    store: Store
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def directory(self) -> Path:
        return self.paths.project


def open_project(
    project: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Project:
    """The project of ``--project``, ``$CMS_PROJECT`` or the working directory."""
    env = dict(os.environ if env is None else env)
    if project is not None and not os.path.isdir(os.path.expanduser(os.fspath(project))):
        raise BadInput(f"project directory {os.fspath(project)!r} does not exist")
    directory = resolve_project(project, env)
    paths = ProjectPaths.for_project(directory, cms_home(env))
    return Project(paths=paths, store=Store(paths), env=env)


# -- validation --------------------------------------------------------------------


def check_name(name: str) -> str:
    if not valid_name(name):
        shown = name if len(name) <= 80 else name[:77] + "..."
        raise BadInput(
            f"invalid session name {shown!r}: use 1-63 characters of a-z, 0-9, '.', '_' "
            "or '-', starting with a letter or digit"
        )
    return name


def check_cost(value: float | None, what: str = "--max-cost") -> float | None:
    if value is None:
        return None
    if not isinstance(value, int | float) or math.isnan(value) or math.isinf(value):
        raise BadInput(f"invalid {what} {value!r}: give a finite amount in USD, e.g. 2.50")
    if value <= 0:
        raise BadInput(f"invalid {what} {value!r}: it must be greater than 0")
    if value > 100_000:
        raise BadInput(f"invalid {what} {value!r}: more than $100,000 is surely a typo")
    return float(value)


def check_turns(value: int | None, what: str = "--max-turns") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > 100_000:
        raise BadInput(f"invalid {what} {value!r}: give a whole number from 1 to 100000")
    return value


def check_timeout(value: float | None) -> float | None:
    if value is None:
        return None
    if (
        not isinstance(value, int | float)
        or math.isnan(value)
        or math.isinf(value)
        or value <= 0
        or value > 7 * 86400
    ):
        raise BadInput(f"invalid --timeout {value!r}: give seconds, more than 0, at most a week")
    return float(value)


def check_preset(value: str | Preset | None) -> Preset | None:
    if value is None:
        return None
    try:
        return Preset(value)
    except ValueError:
        choices = ", ".join(p.value for p in Preset)
        raise BadInput(f"unknown preset {value!r}: choose one of {choices}") from None


def name_from_task(task: str, taken: Iterable[str]) -> str:
    """A readable name from the task's first words, unique in the project."""
    ascii_text = unicodedata.normalize("NFKD", task).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    stem = ""
    for word in words:
        candidate = f"{stem}-{word}" if stem else word
        if len(candidate) > 32:
            break
        stem = candidate
        if stem.count("-") >= 4:
            break
    stem = stem or "task"
    taken_set = set(taken)
    name, n = stem, 2
    while name in taken_set:
        name = f"{stem}-{n}"
        n += 1
    return name


# -- reading -------------------------------------------------------------------


def _refresh(project: Project, record: SessionRecord) -> SessionRecord:
    """Show a running session whose supervisor is gone as interrupted (and record it)."""
    if record.status is not Status.RUNNING or launcher.supervisor_alive(record):
        return record

    def interrupt(r: SessionRecord) -> None:
        if r.status is Status.RUNNING and not launcher.supervisor_alive(r):
            if r.child_pid and r.child_started:
                procs.kill_tree(r.child_pid, grace_s=1.0, started=r.child_started)
            r.status = Status.INTERRUPTED
            r.error = "its supervisor died before recording an outcome"
            r.pid = r.pid_started = r.child_pid = r.child_started = None
            r.deadline = None
            r.ended_at = utcnow()
            if r.temp_dir:
                shutil.rmtree(r.temp_dir, ignore_errors=True)
                r.temp_dir = None
            if transcript_exists(r.session_id, project.env):
                r.has_conversation = True

    try:
        return project.store.update(record.name, interrupt)
    except CmsError:
        record.status = Status.INTERRUPTED
        return record


def transcript_exists(session_id: str, env: Mapping[str, str]) -> bool:
    """Whether Claude Code saved a conversation with this id (so --resume can load it)."""
    if not session_id:
        return False
    config = env.get("CLAUDE_CONFIG_DIR") or os.path.join(
        env.get("HOME") or str(Path.home()), ".claude"
    )
    pattern = os.path.join(glob.escape(config), "projects", "*", f"{session_id}.jsonl")
    return bool(glob.glob(pattern))


def get_session(project: Project, name: str, mark_read: bool = False) -> SessionRecord:
    record = _refresh(project, project.store.load(check_name(name)))
    if mark_read and not record.result_read and not record.status.active:
        record = project.store.update(record.name, lambda r: setattr(r, "result_read", True))
    return record


@dataclass
class SessionList:
    sessions: list[SessionRecord]
    problems: list[str]


def list_sessions(project: Project, status: str | None = None) -> SessionList:
    if status is not None:
        try:
            wanted: Status | None = Status(status)
        except ValueError:
            choices = ", ".join(s.value for s in Status)
            raise BadInput(f"unknown status {status!r}: choose one of {choices}") from None
    else:
        wanted = None
    listing = project.store.list()
    records = [_refresh(project, r) for r in listing.records]
    if any(r.status is Status.QUEUED for r in records):
        _kick_queue(project)
    if wanted is not None:
        records = [r for r in records if r.status is wanted]
    return SessionList(records, listing.problems)


def _kick_queue(project: Project) -> None:
    # A read must not fail because the queue could not be advanced.
    with contextlib.suppress(CmsError):
        launcher.start_queued(project.store)


# -- starting turns ----------------------------------------------------------------


@dataclass
class Options:
    """Settings of a new session (None: the project's default, else cms's)."""

    preset: str | None = None
    model: str | None = None
    max_cost_usd: float | None = None
    max_turns: int | None = None
    timeout_s: float | None = None
    cwd: str | None = None
    worktree: bool = False
    #: False: run without the OS sandbox (``--no-sandbox``), the hook alone.
    sandbox: bool = True


# -- nested delegation -------------------------------------------------------------
#
# A session started from inside a child (by Bash, MCP or a slash command) never gets
# more than the child has: a preset no wider, a budget no larger than what is left of
# the child's, and its depth from the child's record. The child is named by
# CMS_SESSION in the caller's environment; the MCP server a child calls runs with the
# environment cms gave that child, which the child's commands cannot change.

#: How much a preset allows, for "no wider than": read-only and plan change nothing.
_WIDTH = {Preset.READ_ONLY: 0, Preset.PLAN: 0, Preset.REVIEW: 1, Preset.EDIT: 2, Preset.FULL: 3}


def _caller(project: Project) -> SessionRecord | None:
    """The cms session this call comes from (a child delegating), None for the user."""
    name = project.env.get("CMS_SESSION")
    if not name:
        return None
    if project.env.get("SANDBOX_RUNTIME") == "1":
        raise EnvironmentProblem(
            f"inside cms session {name!r} the commands run in the sandbox, where cms state "
            "is read-only; start and steer sessions with the cms MCP tools "
            "(mcp__cms__delegate_task, mcp__cms__wait_sessions, ...) instead"
        )
    if not valid_name(name):
        raise BadInput(f"CMS_SESSION={name[:80]!r} is not a session name; refusing to delegate")
    try:
        return project.store.load(name)
    except CmsError as exc:
        raise BadInput(
            f"this runs inside cms session {name!r}, whose record cannot be read here "
            f"({exc.message}); a child may only delegate within its own project"
        ) from None


def _owned_by(project: Project, caller: SessionRecord, record: SessionRecord) -> None:
    """A child may steer only the sessions it started (and theirs)."""
    seen: set[str] = set()
    parent = record.parent
    while parent and parent not in seen:
        if parent == caller.name:
            return
        seen.add(parent)
        try:
            parent = project.store.load(parent).parent
        except CmsError:
            break
    raise WrongState(
        f"session {record.name!r} was not started by {caller.name!r}; a child may only "
        "steer the sessions it started"
    )


def _check_steer(project: Project, record: SessionRecord) -> None:
    caller = _caller(project)
    if caller is not None:
        _owned_by(project, caller, record)


def _budget_left(project: Project, caller: SessionRecord, exclude: str | None) -> float | None:
    """What is left of the caller's spend cap once its own spend and what its other
    sessions may spend (their caps) are taken off; None when it has no cap."""
    if caller.max_cost_usd is None:
        return None
    held = sum(
        max(r.cost_usd, r.max_cost_usd if r.max_cost_usd is not None else r.cost_usd)
        for r in project.store.list().records
        if r.parent == caller.name and r.name != exclude
    )
    return caller.max_cost_usd - caller.cost_usd - held


def _nested_limits(
    project: Project,
    caller: SessionRecord,
    preset: Preset,
    explicit: bool,
    max_cost: float | None,
    max_turns: int | None,
    exclude: str | None = None,
) -> tuple[Preset, float | None, int | None]:
    """The preset and budgets of a session the caller starts, narrowed to the caller's;
    a request for more is refused with one line."""
    who = f"session {caller.name!r}"
    if _WIDTH[preset] > _WIDTH[caller.preset]:
        if explicit:
            raise BadInput(
                f"{who} runs with preset {caller.preset.value}; a session it starts may not "
                f"have a wider preset than that (asked for {preset.value})"
            )
        preset = caller.preset
    left = _budget_left(project, caller, exclude)
    if left is not None:
        if left <= 0:
            raise BudgetExhausted(
                f"{who} has no budget left to give a new session "
                f"({vocab.usd(caller.cost_usd)} spent of {vocab.usd(caller.max_cost_usd or 0)}, "
                "the rest held by the sessions it started)"
            )
        if max_cost is None:
            max_cost = round(left, 6)
        elif max_cost > left + 1e-9:
            raise BudgetExhausted(
                f"{who} has {vocab.usd(left)} of its budget left; a session it starts may "
                f"spend at most that (asked for --max-cost {vocab.usd(max_cost)})"
            )
    if caller.max_turns is not None:
        turns_left = caller.max_turns - caller.turns
        if turns_left < 1:
            raise BudgetExhausted(f"{who} has no turns left to give a new session")
        if max_turns is None:
            max_turns = turns_left
        elif max_turns > turns_left:
            raise BudgetExhausted(
                f"{who} has {turns_left} turns left; a session it starts may use at most "
                f"that (asked for --max-turns {max_turns})"
            )
    return preset, max_cost, max_turns


def _depth(caller: SessionRecord | None) -> int:
    """A new session's nesting depth: from its starter's record, never the environment."""
    return 1 if caller is None else caller.depth + 1


def _check_can_start(
    project: Project, config: ProjectConfig, caller: SessionRecord | None = None
) -> None:
    depth = _depth(caller) - 1
    if caller is not None and depth >= config.limits.max_depth:
        raise BadInput(
            f"session {caller.name!r} is at nesting depth {depth}, the project's maximum "
            f"(max_depth={config.limits.max_depth}); do the work here instead of delegating"
        )
    cap = config.limits.max_cost_usd
    if cap is not None:
        spent = project_spend(project)
        if spent >= cap:
            raise BudgetExhausted(
                f"the project's spend ${spent:.4f} has reached its cap ${cap:.4f}; "
                "raise it with `cms budget --max-cost USD`"
            )


def project_spend(project: Project) -> float:
    return sum(r.cost_usd for r in project.store.list().records)


def _locate_claude(project: Project) -> claude.ClaudeBinary:
    home = project.paths.home
    return claude.locate(home if home.is_dir() else None, project.env)


def _check_sandbox(project: Project, preset: Preset, wanted: bool) -> None:
    """A preset that needs the sandbox does not start where it cannot run (exit 3)."""
    if not wanted or not sandbox.needed(preset.value):
        return
    found = sandbox.check(project.env)
    if not found.ok:
        raise EnvironmentProblem(f"{found.detail}: {found.fix}")


def _check_runnable(project: Project, record: SessionRecord) -> None:
    """What must hold before any turn of ``record`` starts: claude there, the preset
    runnable as this user, its sandbox available."""
    claude.check_preset_runnable(record.preset)
    _check_sandbox(project, record.preset, record.sandbox)
    _locate_claude(project)


def _resolve_cwd(project: Project, cwd: str | None) -> str:
    if cwd is None:
        return str(project.directory)
    path = Path(os.path.expanduser(cwd))
    if not path.is_absolute():
        path = Path(os.getcwd()) / path
    if not path.is_dir():
        raise BadInput(f"--cwd {cwd!r} is not a directory")
    return os.path.realpath(path)


def spawn_session(
    project: Project,
    name: str | None,
    task: str,
    options: Options,
    prompt: str | None = None,
) -> SessionRecord:
    """Create a session; start ``prompt`` as its first turn when given."""
    config = project.store.load_project()
    defaults = config.defaults
    caller = _caller(project)
    asked = check_preset(options.preset)
    preset = asked or defaults.preset or Preset.EDIT
    max_cost = check_cost(
        options.max_cost_usd if options.max_cost_usd is not None else defaults.max_cost_usd
    )
    max_turns = check_turns(
        options.max_turns if options.max_turns is not None else defaults.max_turns
    )
    if caller is not None:
        preset, max_cost, max_turns = _nested_limits(
            project, caller, preset, asked is not None, max_cost, max_turns
        )
        if not options.sandbox and caller.sandbox:
            raise BadInput(
                f"session {caller.name!r} runs in the sandbox; a session it starts may not "
                "run without it (--no-sandbox)"
            )
    timeout = check_timeout(
        options.timeout_s if options.timeout_s is not None else defaults.timeout_s
    )
    model = options.model or defaults.model
    if model is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:\[\]-]{0,99}", model):
        raise BadInput(f"invalid --model {model[:80]!r}: give a model name such as 'sonnet'")
    if name is not None:
        check_name(name)
    if options.worktree and options.cwd is not None:
        raise BadInput("--worktree and --cwd cannot be combined: the worktree is the cwd")
    if options.worktree:
        _check_worktree_possible(project)
    cwd = _resolve_cwd(project, options.cwd)
    if not task.strip() and prompt is None and name is None:
        raise BadInput("the task is empty: say what the session should do")
    if prompt is not None and not prompt.strip():
        raise BadInput("the message is empty: say what the session should do")
    claude.check_preset_runnable(preset)
    _check_can_start(project, config, caller)
    _check_sandbox(project, preset, options.sandbox)
    _locate_claude(project)  # exit 3 before any record exists
    project.store.ensure_dirs()
    if name is None:
        taken = [r.name for r in project.store.list().records]
        name = name_from_task(task, taken)
    parent = project.env.get("CLAUDE_CODE_SESSION_ID") or project.env.get("CMS_PARENT_SESSION")
    record = SessionRecord(
        name=name,
        status=Status.COMPLETED if prompt is None else Status.QUEUED,
        preset=preset,
        model=model,
        task=task,
        max_cost_usd=max_cost,
        max_turns=max_turns,
        timeout_s=timeout,
        session_id=str(uuid.uuid4()),
        cwd=cwd,
        project=str(project.directory),
        depth=_depth(caller),
        parent=caller.name if caller is not None else None,
        parent_session_id=parent or None,
        sandbox=options.sandbox and sandbox.needed(preset.value),
        result_read=True,
    )
    if project.store.exists(name):
        raise BadInput(
            f"a session named {name!r} already exists; choose another --name or `cms delete {name}`"
        )
    if options.worktree:
        _make_worktree(project, record, start=None)
    try:
        if prompt is None:
            # A session with no turn yet: ready for its first `send`.
            record.status = Status.COMPLETED
            project.store.create(record)
            return record
        record.pending_message = prompt
        project.store.create(record)
    except CmsError:
        if options.worktree and record.worktree and record.branch:
            worktree.remove(project.directory, Path(record.worktree), record.branch)
        raise
    return _start_turn(project, record.name, prompt, seen=record)


def _check_worktree_possible(project: Project) -> None:
    if not worktree.is_repository(project.directory):
        raise BadInput(
            f"--worktree needs a git repository, and {project.directory} is not one; "
            "run `git init` and commit first, or leave out --worktree"
        )
    if worktree.head_commit(project.directory) is None:
        raise BadInput(f"--worktree needs at least one commit in {project.directory}; commit first")


def _make_worktree(project: Project, record: SessionRecord, start: str | None) -> None:
    """Give ``record`` a new worktree on ``cms/<name>`` from ``start`` (default HEAD)."""
    directory = project.directory
    base = worktree.head_commit(directory) if start is None else start
    assert base is not None
    path = worktree.worktrees_root(project.paths.home, project.paths.key) / record.name
    if path.exists():
        raise BadInput(f"{path} already exists; remove it or choose another name")
    branch = worktree.branch_for(record.name)
    worktree.create(directory, path, branch, base)
    record.worktree = str(path)
    record.branch = branch
    record.cwd = os.path.realpath(path)
    if start is None:
        record.base_commit = base
        if worktree.changes(directory):
            record.notice = (
                "your uncommitted changes were not carried into the session's worktree "
                f"(it starts from {base[:12]}); commit them first to include them"
            )


def _start_turn(project: Project, name: str, message: str, *, seen: SessionRecord) -> SessionRecord:
    """Run the next turn now, or queue it when the project has no free slot.

    ``seen`` is the record as the caller checked it. The queue lock may take a while
    to get; meanwhile another cms may have started this very turn (a finishing
    supervisor or a listing starts a new session's queued first turn) or another
    one (a concurrent ``send``). Starting it again would run the turn twice.
    """
    limit = project.store.load_project().limits.max_parallel
    with project.store.locked(project.paths.root / "queue"):
        current = project.store.load(name)
        if (current.status, current.exchanges) != (seen.status, seen.exchanges):
            if seen.status is Status.QUEUED and seen.exchanges == 0:
                return current  # the queue started this new session's first turn
            raise WrongState(
                f"session {name!r} is {current.status.value}: another cms command started "
                f"a turn meanwhile; see `cms show {name}`"
            )
        running = sum(
            1
            for r in project.store.list().records
            if r.status is Status.RUNNING and launcher.supervisor_alive(r)
        )
        if running >= limit:

            def enqueue(r: SessionRecord) -> None:
                r.status = Status.QUEUED
                r.pending_message = message
                r.turn_started_at = utcnow()
                r.error = None

            return project.store.update(name, enqueue)
        record = project.store.update(name, lambda r: launcher.mark_running(r, message))
        launcher.spawn_supervisor(project.store, name)
    return project.store.load(record.name)


def delegate(project: Project, task: str, name: str | None, options: Options) -> SessionRecord:
    """Create a session and start the task as its first turn (does not wait)."""
    if not task.strip():
        raise BadInput("the task is empty: say what the session should do")
    return spawn_session(project, name, task, options, prompt=task)


def _budget_problem(record: SessionRecord) -> str | None:
    if record.max_cost_usd is not None and record.cost_usd >= record.max_cost_usd:
        return (
            f"session {record.name!r} has spent ${record.cost_usd:.4f} of its "
            f"${record.max_cost_usd:.4f} budget; raise it with "
            f"`cms continue {record.name} MESSAGE --add-cost USD`"
        )
    if record.max_turns is not None and record.turns >= record.max_turns:
        return (
            f"session {record.name!r} has used {record.turns} of its {record.max_turns} "
            f"turns; raise them with `cms continue {record.name} MESSAGE --add-turns N`"
        )
    return None


def _check_sendable(record: SessionRecord) -> None:
    name = record.name
    if record.status in (Status.RUNNING, Status.QUEUED):
        raise WrongState(
            f"session {name!r} is {record.status.value}; wait for it (`cms wait {name}`) "
            f"or stop it (`cms abort {name}`)"
        )
    if record.status is Status.FINISHED:
        raise WrongState(
            f"session {name!r} is finished; reopen it with `cms resume {name} MESSAGE`"
        )
    if record.status is Status.INTERRUPTED:
        raise WrongState(f"session {name!r} was interrupted; continue it with `cms resume {name}`")
    assert record.status in SENDABLE
    problem = _budget_problem(record)
    if problem:
        raise BudgetExhausted(problem)


def send_message(project: Project, name: str, message: str) -> SessionRecord:
    """Run the next turn of a session in the same conversation (does not wait)."""
    if not message.strip():
        raise BadInput("the message is empty: say what the session should do next")
    record = get_session(project, name)
    _check_steer(project, record)
    _check_sendable(record)
    _check_can_start(project, project.store.load_project())
    _check_runnable(project, record)
    return _start_turn(project, record.name, message, seen=record)


def continue_task(
    project: Project,
    name: str,
    message: str,
    add_cost_usd: float | None = None,
    add_turns: int | None = None,
) -> SessionRecord:
    """The correction loop: raise the budget if asked, then send."""
    add_cost = check_cost(add_cost_usd, "--add-cost")
    more_turns = check_turns(add_turns, "--add-turns")
    if not message.strip():
        raise BadInput("the message is empty: say what to correct")
    record = get_session(project, name)
    caller = _caller(project)
    if caller is not None:
        _owned_by(project, caller, record)
        left = _budget_left(project, caller, exclude=None)
        if add_cost is not None and left is not None and add_cost > left + 1e-9:
            raise BudgetExhausted(
                f"session {caller.name!r} has {vocab.usd(max(left, 0))} of its budget left; "
                f"it cannot give {record.name!r} {vocab.usd(add_cost)} more"
            )
        if (
            more_turns is not None
            and caller.max_turns is not None
            and more_turns > caller.max_turns - caller.turns
        ):
            raise BudgetExhausted(
                f"session {caller.name!r} has {max(caller.max_turns - caller.turns, 0)} turns "
                f"left; it cannot give {record.name!r} {more_turns} more"
            )
    if record.status in (Status.RUNNING, Status.QUEUED, Status.FINISHED, Status.INTERRUPTED):
        _check_sendable(record)
    if add_cost is not None or more_turns is not None:
        if add_cost is not None and record.max_cost_usd is None:
            raise BadInput(f"session {name!r} has no cost limit to raise; --add-cost is not needed")
        if more_turns is not None and record.max_turns is None:
            raise BadInput(
                f"session {name!r} has no turn limit to raise; --add-turns is not needed"
            )
        trial = record.model_copy()
        if add_cost is not None and trial.max_cost_usd is not None:
            trial.max_cost_usd = max(trial.max_cost_usd, trial.cost_usd) + add_cost
        if more_turns is not None and trial.max_turns is not None:
            trial.max_turns = max(trial.max_turns, trial.turns) + more_turns
        _check_sendable(trial)  # refuse before changing anything

        def raise_budget(r: SessionRecord) -> None:
            r.max_cost_usd = trial.max_cost_usd
            r.max_turns = trial.max_turns

        project.store.update(record.name, raise_budget)
    return send_message(project, name, message)


def resume_session(
    project: Project, name: str, message: str | None = None, fresh: bool = False
) -> SessionRecord:
    """Continue an interrupted or finished session from its Claude conversation."""
    record = get_session(project, name)
    if record.status not in (Status.INTERRUPTED, Status.FINISHED) and not fresh:
        if record.status.active:
            raise WrongState(f"session {name!r} is {record.status.value}; nothing to resume")
        raise WrongState(
            f"session {name!r} is {record.status.value}, not interrupted or finished; "
            f"use `cms send {name} MESSAGE`"
        )
    if record.status.active:
        raise WrongState(f"session {name!r} is {record.status.value}; nothing to resume")
    saved = record.has_conversation or transcript_exists(record.session_id, project.env)
    if not saved and not fresh:
        raise WrongState(
            f"session {name!r} has no saved Claude conversation to resume (its turn was "
            f"stopped before Claude Code saved it); start over from its task with "
            f"`cms resume {name} --fresh`"
        )
    problem = _budget_problem(record)
    if problem:
        raise BudgetExhausted(problem)
    _check_steer(project, record)
    _check_can_start(project, project.store.load_project())
    _check_runnable(project, record)
    if fresh:
        text = message or record.task

        def restart(r: SessionRecord) -> None:
            r.session_id = str(uuid.uuid4())
            r.has_conversation = False
            r.fork_from = None

        project.store.update(record.name, restart)
    else:
        text = message or (
            "Your previous turn was interrupted before it finished. Continue the task "
            "where you left off."
            if record.status is Status.INTERRUPTED
            else "Continue."
        )
        if record.status is Status.INTERRUPTED:
            project.store.update(record.name, lambda r: setattr(r, "has_conversation", True))
    return _start_turn(project, record.name, text, seen=record)


def fork_session(
    project: Project, source: str, name: str, message: str | None = None
) -> SessionRecord:
    """A new session that starts from ``source``'s conversation."""
    check_name(name)
    src = get_session(project, source)
    if src.status.active:
        raise WrongState(
            f"session {source!r} is {src.status.value}; fork it once its turn has ended"
        )
    if src.worktree and src.branch:
        _check_worktree_possible(project)
    if not (src.has_conversation or transcript_exists(src.session_id, project.env)):
        raise WrongState(f"session {source!r} has no saved conversation to fork yet")
    if project.store.exists(name):
        raise BadInput(f"a session named {name!r} already exists; choose another name")
    config = project.store.load_project()
    caller = _caller(project)
    preset, max_cost, max_turns = src.preset, src.max_cost_usd, src.max_turns
    if caller is not None:
        _owned_by(project, caller, src)
        preset, max_cost, max_turns = _nested_limits(
            project, caller, preset, True, max_cost, max_turns
        )
    _check_can_start(project, config, caller)
    _check_runnable(project, src)
    record = SessionRecord(
        name=name,
        status=Status.COMPLETED,
        preset=preset,
        model=src.model,
        task=src.task,
        max_cost_usd=max_cost,
        max_turns=max_turns,
        sandbox=src.sandbox,
        parent=src.parent,
        timeout_s=src.timeout_s,
        session_id=str(uuid.uuid4()),
        fork_from=src.session_id,
        cwd=src.cwd,
        project=src.project,
        depth=src.depth,
        parent_session_id=project.env.get("CLAUDE_CODE_SESSION_ID") or src.parent_session_id,
        result_read=True,
    )
    if src.worktree and src.branch:
        worktree.snapshot(Path(src.worktree), f"cms: work of session {src.name} (before fork)")
        _make_worktree(project, record, start=src.branch)
        record.base_commit = src.base_commit
    try:
        project.store.create(record)
    except CmsError:
        if record.worktree and record.branch:
            worktree.remove(project.directory, Path(record.worktree), record.branch)
        raise
    if message is None:
        return record
    return _start_turn(project, name, message, seen=record)


# -- waiting -------------------------------------------------------------------------


def wait_sessions(
    project: Project,
    names: list[str] | None = None,
    timeout_s: float | None = None,
    on_progress: Progress | None = None,
    mark_read: bool = True,
) -> list[SessionRecord]:
    """Block until the named sessions (default: all running or queued) stop.

    Returns the records as they are at the end; sessions still running when the
    timeout runs out are returned as they are (status running or queued).
    """
    if timeout_s is not None:
        check_timeout(timeout_s)
    if names:
        for n in names:
            check_name(n)
        targets = list(dict.fromkeys(names))
        for n in targets:
            project.store.load(n)  # NotFound before waiting
    else:
        targets = [r.name for r in list_sessions(project).sessions if r.status.active]
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    last_kick = time.monotonic()
    while True:
        records = [get_session(project, n) for n in targets]
        if on_progress is not None:
            on_progress(records)
        if not any(r.status.active for r in records):
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            return records
        if now - last_kick >= QUEUE_KICK_S and any(r.status is Status.QUEUED for r in records):
            _kick_queue(project)
            last_kick = now
        time.sleep(POLL_S)
    if mark_read:
        records = [get_session(project, r.name, mark_read=True) for r in records]
    return records


def all_successful(records: Iterable[SessionRecord]) -> bool:
    return all(r.status in SUCCESSFUL for r in records)


# -- stopping and closing ----------------------------------------------------------


def abort_session(project: Project, name: str, grace_s: float = 3.0) -> SessionRecord:
    """Stop a running (or queued) turn and its whole process tree: status aborted."""
    record = get_session(project, name)
    _check_steer(project, record)
    if not record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}, not running; nothing to abort"
        )
    if record.status is Status.QUEUED:

        def dequeue(r: SessionRecord) -> None:
            if r.status is Status.QUEUED:
                r.status = Status.ABORTED
                r.error = "aborted by cms abort while queued"
                r.pending_message = None
                r.ended_at = utcnow()

        record = project.store.update(name, dequeue)
        if record.status is Status.ABORTED:
            return record
    record = project.store.update(name, lambda r: setattr(r, "abort_requested", True))
    if record.pid and procs.alive(record.pid, record.pid_started):
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
    # The supervisor stops claude and records the outcome; give it time, then do it
    # ourselves if it could not.
    deadline = time.monotonic() + grace_s + 5.0
    while time.monotonic() < deadline:
        record = project.store.load(name)
        if not record.status.active:
            return record
        if record.pid and not procs.alive(record.pid, record.pid_started):
            break
        time.sleep(POLL_S)
    record = project.store.load(name)
    if record.child_pid:
        procs.kill_tree(record.child_pid, grace_s=grace_s, started=record.child_started)
    if record.pid:
        procs.kill_tree(record.pid, grace_s=1.0, started=record.pid_started)

    def mark_aborted(r: SessionRecord) -> None:
        if r.status.active:
            r.status = Status.ABORTED
            r.error = "aborted by cms abort"
            r.pid = r.pid_started = r.child_pid = r.child_started = None
            r.deadline = None
            r.abort_requested = False
            r.ended_at = utcnow()

    return project.store.update(name, mark_aborted)


def finish_session(project: Project, name: str) -> SessionRecord:
    """Close a session; it stays on record as finished (``resume`` reopens it)."""
    record = get_session(project, name)
    _check_steer(project, record)
    if record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}; wait for it or abort it first"
        )

    def close(r: SessionRecord) -> None:
        r.status = Status.FINISHED
        r.result_read = True

    return project.store.update(record.name, close)


def delete_session(project: Project, name: str, force: bool = False) -> SessionRecord:
    """Remove a session's record and logs. A running session must be aborted first."""
    record = get_session(project, name)
    _check_steer(project, record)
    if record.status.active and not force:
        raise WrongState(
            f"session {name!r} is {record.status.value}; abort it first "
            f"(`cms abort {name}`) or delete with --force"
        )
    if record.worktree and record.branch and not force:
        lost = worktree.unmerged(project.directory, Path(record.worktree), record.branch)
        if lost:
            raise WrongState(
                f"session {name!r} has {' and '.join(lost)}; `cms merge {name}` first, "
                "or delete with --force to throw them away"
            )
    if record.status.active:
        record = abort_session(project, name)
    if record.worktree and record.branch:
        worktree.remove(project.directory, Path(record.worktree), record.branch)
    project.store.delete(record.name)
    return record


# -- worktrees ------------------------------------------------------------------------


def _worktree_session(project: Project, name: str) -> SessionRecord:
    record = get_session(project, name)
    if not record.worktree or not record.branch or not record.base_commit:
        raise BadInput(f"session {name!r} has no worktree of its own (start one with --worktree)")
    if not Path(record.worktree).exists():
        raise WrongState(f"the worktree of {name!r} at {record.worktree} is gone")
    return record


def diff_session(project: Project, name: str) -> str:
    """The session's changes against where it started, committed or not."""
    record = _worktree_session(project, name)
    assert record.worktree is not None and record.base_commit is not None
    return worktree.diff(Path(record.worktree), record.base_commit)


def merge_session(project: Project, name: str) -> SessionRecord:
    """Bring a worktree session's work into the user's current branch."""
    record = _worktree_session(project, name)
    if _caller(project) is not None:
        raise WrongState("only the user merges a session's work into their branch, not a child")
    assert record.worktree is not None and record.branch is not None
    if record.status.active:
        raise WrongState(
            f"session {name!r} is {record.status.value}; wait for it or abort it first"
        )
    worktree.snapshot(Path(record.worktree), f"cms: work of session {name}")
    head = worktree.merge(project.directory, record.branch, f"Merge work of cms session {name}")
    return project.store.update(record.name, lambda r: setattr(r, "merged_commit", head))


# -- logs ------------------------------------------------------------------------------


def read_log(
    project: Project, name: str, follow: bool = False, poll_s: float = 0.2
) -> Iterator[bytes]:
    """The session's raw stream-json lines; with ``follow``, until its turn ends."""
    record = get_session(project, name)
    path = project.paths.log_file(record.name)
    position = 0
    pending = b""
    while True:
        try:
            with open(path, "rb") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            pending += chunk
            *lines, pending = pending.split(b"\n")
            yield from lines
        if not follow:
            break
        if not get_session(project, record.name).status.active and not chunk:
            break
        time.sleep(poll_s)
    if pending.strip():
        yield pending


# -- reports ---------------------------------------------------------------------------


@dataclass
class CostRow:
    key: str
    cost_usd: float
    sessions: int


@dataclass
class CostReport:
    total_cost_usd: float
    by: str
    rows: list[CostRow]
    cap_usd: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "total_cost_usd": round(self.total_cost_usd, 6),
            "by": self.by,
            "cap_usd": self.cap_usd,
            "rows": [
                {"key": r.key, "cost_usd": round(r.cost_usd, 6), "sessions": r.sessions}
                for r in self.rows
            ],
        }


def cost_report(project: Project, by: str = "session") -> CostReport:
    if by not in ("session", "model", "day"):
        raise BadInput(f"unknown --by {by!r}: choose session, model or day")
    records = list_sessions(project).sessions
    groups: dict[str, CostRow] = {}
    for r in records:
        if by == "session":
            key = r.name
        elif by == "model":
            key = r.model or "default"
        else:
            key = (r.ended_at or r.updated_at).astimezone(UTC).date().isoformat()
        row = groups.setdefault(key, CostRow(key, 0.0, 0))
        row.cost_usd += r.cost_usd
        row.sessions += 1
    rows = sorted(groups.values(), key=lambda row: (-row.cost_usd, row.key))
    if by == "day":
        rows.sort(key=lambda row: row.key)
    cap = project.store.load_project().limits.max_cost_usd
    return CostReport(sum(r.cost_usd for r in records), by, rows, cap)


def project_budget(
    project: Project,
    max_cost_usd: float | None = None,
    max_parallel: int | None = None,
    max_depth: int | None = None,
) -> ProjectConfig:
    """Show the project's limits, or set those given."""
    cost = check_cost(max_cost_usd, "--max-cost")
    if max_parallel is not None and (max_parallel < 1 or max_parallel > 1000):
        raise BadInput(f"invalid --max-parallel {max_parallel}: give 1 to 1000")
    if max_depth is not None and (max_depth < 0 or max_depth > 20):
        raise BadInput(f"invalid --max-depth {max_depth}: give 0 to 20")
    if cost is None and max_parallel is None and max_depth is None:
        return project.store.load_project()
    _refuse_in_child(project, "the project's limits")

    def change(config: ProjectConfig) -> None:
        if cost is not None:
            config.limits.max_cost_usd = cost
        if max_parallel is not None:
            config.limits.max_parallel = max_parallel
        if max_depth is not None:
            config.limits.max_depth = max_depth

    config = project.store.update_project(change)
    if max_parallel is not None:
        _kick_queue(project)
    return config


def _refuse_in_child(project: Project, what: str) -> None:
    name = project.env.get("CMS_SESSION")
    if name:
        raise WrongState(f"a cms child (here {name!r}) must not change {what}; ask the user")


@dataclass
class SandboxReport:
    """``cms sandbox``: whether the sandbox runs here, and the project's network rules."""

    availability: sandbox.Availability
    allowed_domains: list[str]
    denied_domains: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "available": self.availability.ok,
            "detail": self.availability.detail,
            "fix": self.availability.fix,
            "allowed_domains": self.allowed_domains,
            "denied_domains": self.denied_domains,
        }


def sandbox_settings(
    project: Project, allow: Iterable[str] = (), deny: Iterable[str] = ()
) -> SandboxReport:
    """Show the sandbox's state here and the project's network allowlist for ``edit``
    children's commands, or change it: ``allow`` adds domains, ``deny`` takes them off
    the list and blocks them even where another setting allows them."""
    allow, deny = list(dict.fromkeys(allow)), list(dict.fromkeys(deny))
    for domain in [*allow, *deny]:
        if not sandbox.valid_domain(domain):
            raise BadInput(
                f"invalid domain {domain[:80]!r}: give a host name such as example.com "
                "or a wildcard such as *.example.com"
            )
    if set(allow) & set(deny):
        both = ", ".join(sorted(set(allow) & set(deny)))
        raise BadInput(f"{both} given to both --allow-domain and --deny-domain; choose one")
    if allow or deny:
        _refuse_in_child(project, "the project's network allowlist")

        def change(config: ProjectConfig) -> None:
            rules = config.sandbox
            rules.allowed_domains = [d for d in rules.allowed_domains if d not in deny]
            rules.allowed_domains += [d for d in allow if d not in rules.allowed_domains]
            rules.denied_domains = [d for d in rules.denied_domains if d not in allow]
            rules.denied_domains += [d for d in deny if d not in rules.denied_domains]

        config = project.store.update_project(change)
    else:
        config = project.store.load_project()
    return SandboxReport(
        sandbox.check(project.env),
        list(config.sandbox.allowed_domains),
        list(config.sandbox.denied_domains),
    )


# -- doctor ------------------------------------------------------------------------------


@dataclass
class Check:
    """One line of ``cms doctor``: what was checked, whether it passed, what was found,
    and (when it failed, or passed with a ``warning``) what to do about it."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None
    warning: bool = False


#: The oldest Claude Code that has every flag cms starts a child with, from the CLI's
#: changelog: ``--max-budget-usd`` came in 2.0.28, and ``--session-id`` together with
#: ``--resume``/``--fork-session`` (how ``cms fork`` names the new conversation) in
#: 2.0.73. The other flags cms passes (``-p``, ``--output-format stream-json``,
#: ``--verbose``, ``--resume``, ``--max-turns``, ``--model``, ``--permission-mode``,
#: ``--allowedTools``, ``--disallowedTools``, ``--settings``) are older than both.
MIN_CLAUDE_VERSION = (2, 0, 73)
#: Older than this, ``--max-budget-usd`` does not stop background subagents (fixed in
#: 2.1.217), so a child's subagents can spend past its budget: a warning, not a failure.
BUDGET_HALTS_SUBAGENTS_VERSION = (2, 1, 217)
CLAUDE_UPDATE_FIX = (
    "update Claude Code: `claude update`, or npm install -g @anthropic-ai/claude-code@latest"
)


def doctor(project: Project) -> list[Check]:
    """Check the environment, each failure with its fix: claude found and runnable,
    new enough for the flags cms uses, the plugin valid, the state folder writable, the
    root user versus the ``full`` preset, and ``cms setup`` done."""
    binary, found = _check_claude(project)
    checks = [found]
    checks.append(_check_claude_version(binary))
    checks.append(_check_plugin(project, binary))
    checks.append(_check_state(project))
    checks.append(_check_root(project))
    runs = sandbox.check(project.env)
    checks.append(Check("sandbox", runs.ok, runs.detail, runs.fix))
    from cms import setup  # only here: setup is not on any other path of the API

    ok, detail, fix = setup.check(project.env)
    checks.append(Check("setup", ok, detail, fix))
    return checks


def _version_tuple(version: str) -> tuple[int, ...] | None:
    match = re.match(r"v?(\d+)\.(\d+)\.(\d+)", version.strip())
    return tuple(int(part) for part in match.groups()) if match else None


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(str(part) for part in version)


def _check_claude(project: Project) -> tuple[claude.ClaudeBinary | None, Check]:
    try:
        binary = claude.locate(None, project.env)
    except EnvironmentProblem as exc:
        fix = (
            "install Claude Code (npm install -g @anthropic-ai/claude-code) and sign in, "
            "or set CMS_CLAUDE_BIN to its path"
        )
        if project.env.get("CMS_CLAUDE_BIN"):
            fix = "point CMS_CLAUDE_BIN at a working claude, or unset it to use claude on PATH"
        return None, Check("claude", False, exc.message, fix)
    return binary, Check("claude", True, f"{binary.path} (version {binary.version})")


def _check_claude_version(binary: claude.ClaudeBinary | None) -> Check:
    if binary is None:
        return Check("version", False, "not checked: claude was not found", "see the claude check")
    have = _version_tuple(binary.version)
    if have is None:
        return Check(
            "version",
            False,
            f"cannot read a version from `claude --version` ({binary.version!r})",
            f"check that {binary.path} is Claude Code; {CLAUDE_UPDATE_FIX}",
        )
    if have < MIN_CLAUDE_VERSION:
        return Check(
            "version",
            False,
            f"Claude Code {binary.version} is too old: cms needs {_dotted(MIN_CLAUDE_VERSION)} "
            "or later for --max-budget-usd and --session-id with --fork-session",
            CLAUDE_UPDATE_FIX,
        )
    if have < BUDGET_HALTS_SUBAGENTS_VERSION:
        return Check(
            "version",
            True,
            f"Claude Code {binary.version} works, but before "
            f"{_dotted(BUDGET_HALTS_SUBAGENTS_VERSION)} --max-budget-usd does not stop "
            "background subagents, so a session may spend past its budget",
            CLAUDE_UPDATE_FIX,
            warning=True,
        )
    return Check(
        "version",
        True,
        f"{binary.version} has every flag cms uses (needs {_dotted(MIN_CLAUDE_VERSION)}+)",
    )


def plugin_root() -> Path | None:
    """The folder holding the plugin (``.claude-plugin/plugin.json``) that came with this
    cms: the checkout or unpacked tree around the package, or a copy inside it."""
    package = Path(__file__).resolve().parent
    for candidate in (package.parent, package / "plugin", package):
        if (candidate / ".claude-plugin" / "plugin.json").is_file():
            return candidate
    return None


def _check_plugin(project: Project, binary: claude.ClaudeBinary | None) -> Check:
    root = plugin_root()
    if root is None:
        return Check(
            "plugin",
            False,
            f"no .claude-plugin/plugin.json next to the cms package in {Path(__file__).parent}",
            "reinstall cms (pip install --force-reinstall cms) or install the plugin from "
            "its marketplace inside Claude Code",
        )
    if binary is None:
        return Check("plugin", False, f"{root}: not checked, claude was not found", "see above")
    import subprocess

    try:
        done = procs.run([binary.path, "plugin", "validate", str(root)], env=project.env)
    except (OSError, subprocess.SubprocessError) as exc:
        return Check(
            "plugin", False, f"`claude plugin validate {root}` did not run: {exc}", "see above"
        )
    if done.ok:
        return Check("plugin", True, f"{root} passes `claude plugin validate`")
    bullet = "\u276f"  # the validator lists each problem after a heavy right angle quote
    problems = [
        line.strip().lstrip(bullet).strip()
        for line in (done.stdout + "\n" + done.stderr).splitlines()
        if line.strip().startswith(bullet)
    ]
    found = "; ".join(problems[:3]) or done.first_error_line()
    return Check(
        "plugin",
        False,
        f"{root} fails `claude plugin validate`: {found}"[:500],
        f"run `claude plugin validate {root}` for the full report, then fix the files it "
        "names (or reinstall cms)",
    )


def _check_state(project: Project) -> Check:
    home = project.paths.home
    try:
        project.store.ensure_dirs()
        probe = project.paths.root / f".doctor-{os.getpid()}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        probe.unlink()
    except (CmsError, OSError) as exc:
        detail = exc.message if isinstance(exc, CmsError) else f"{home}: {exc.strerror or exc}"
        return Check(
            "state",
            False,
            detail,
            f"make {home} a writable folder of yours, or set CMS_HOME to one",
        )
    return Check("state", True, f"{home} is writable")


def _check_root(project: Project) -> Check:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return Check("root", True, "not running as root: every preset can be used")
    try:
        config = project.store.load_project()
        default = config.defaults.preset
    except (CmsError, OSError):
        default = None  # the state check reports an unreadable project
    if default is Preset.FULL:
        return Check(
            "root",
            False,
            "running as root, and this project's default preset is 'full', which Claude "
            "Code refuses as root (--permission-mode bypassPermissions)",
            'run cms as a normal user, or set preset = "edit" under [defaults] in '
            f"{project.paths.project_file}",
        )
    return Check(
        "root",
        True,
        "running as root: preset 'full' cannot be used (Claude Code refuses "
        "bypassPermissions as root); the other presets work",
        "run cms as a normal user to use preset 'full'",
        warning=True,
    )


def age_seconds(moment: datetime) -> float:
    return (datetime.now(UTC) - moment).total_seconds()


@dataclass
class Overview:
    """The project at a glance (``cms watch``): its sessions and its spend."""

    project: Path
    sessions: list[SessionRecord]
    problems: list[str]
    spent_usd: float
    cap_usd: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "project": str(self.project),
            "spent_usd": round(self.spent_usd, 6),
            "cap_usd": self.cap_usd,
            "sessions": [r.public() for r in self.sessions],
            "problems": self.problems,
        }


def overview(project: Project) -> Overview:
    """Every session of the project (interrupted ones found), the spend and the cap."""
    listing = list_sessions(project)
    cap = project.store.load_project().limits.max_cost_usd
    spent = sum(r.cost_usd for r in listing.sessions)
    return Overview(project.directory, listing.sessions, listing.problems, spent, cap)
