"""Starting exchanges: a new session (``delegate``, ``spawn``, ``fork``) or the next
exchange of one (``send``, ``continue``, ``resume``), and "start, then wait up to N
seconds unless in the background", the one way the CLI, the MCP server and the slash
commands run one.

An exchange is started by marking the record ``running`` (or ``queued`` when the
project's parallel limit is reached) and launching its detached supervisor, which
records the outcome. Everything a start needs is checked before the record changes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cms.base import vocab
from cms.base.errors import (
    BadInput,
    BudgetExhausted,
    CmsError,
    EnvironmentProblem,
    NotFound,
    WrongState,
)
from cms.engine import (
    claude,
    dependencies,
    hosts,
    launcher,
    lifecycle,
    sandboxprobe,
    signin,
    worktree,
)
from cms.engine.models import (
    SENDABLE,
    Preset,
    ProjectConfig,
    SessionRecord,
    Status,
    utcnow,
)
from cms.ops.checks import (
    Options,
    check_cost,
    check_model,
    check_name,
    check_preset,
    check_timeout,
    check_turns,
    name_from_task,
    resolve_cwd,
)
from cms.ops.nesting import (
    budget_left,
    calling_session,
    check_depth,
    check_steer,
    nested_limits,
    new_depth,
    owned_by,
)
from cms.ops.project import Project
from cms.ops.sessions import Progress, get_session, kick_queue, wait_sessions
from cms.ops.worktrees import check_worktree_possible, make_worktree
from cms.policy import budget, sandbox


def _locate_claude(project: Project) -> claude.ClaudeBinary:
    """claude found, runnable and signed in (exit 3 otherwise): before any record
    changes, so a start that cannot run leaves nothing behind and takes no name."""
    home = project.paths.home
    cache = home if home.is_dir() else None
    binary = claude.locate(cache, project.env)
    signin.check_signed_in(binary.path, project.env, project.directory, cache)
    return binary


def _check_sandbox(
    project: Project, preset: Preset, wanted: bool, binary: claude.ClaudeBinary
) -> None:
    """A preset that needs the sandbox does not start where it cannot run, nor with a
    Claude Code older than the sandbox's version floor (exit 3)."""
    if not wanted or not sandbox.needed(preset.value):
        return
    home = project.paths.home
    found = sandboxprobe.check(project.env, cache=home if home.is_dir() else None)
    if not found.ok:
        raise EnvironmentProblem(f"{found.detail}: {found.fix}")
    too_old = sandbox.version_problem(binary.version)
    if too_old:
        raise EnvironmentProblem(too_old)


def _judge(project: Project, name: str, fields: Mapping[str, Any], config: ProjectConfig) -> None:
    """May an exchange of ``name`` start, by :func:`cms.policy.budget.judge` (its
    budget and turns, the project's cap), the judgement the supervisor and the hook
    make too; BudgetExhausted with its one line when not."""
    cap = config.limits.max_cost_usd
    verdict = budget.judge(
        name,
        fields,
        project_spend=project.store.spend() if cap is not None else None,
        project_cap=cap,
        now=time.time(),
        starting=True,
    )
    if verdict is not None:
        raise BudgetExhausted(verdict.for_user())


def _check_start(
    project: Project,
    name: str,
    fields: Mapping[str, Any],
    *,
    preset: Preset,
    sandboxed: bool,
    local: bool = True,
    caller: SessionRecord | None = None,
    config: ProjectConfig | None = None,
) -> None:
    """The one precondition pipeline of every start, before any record changes, in
    this order: the judgement (:func:`_judge`); the nesting depth of the child that
    starts a new session (``caller``); the preset runnable as this user, claude there
    and signed in, and (``local``: not on a Docker host) its sandbox available (exit
    3 when not)."""
    config = config or project.store.load_project()
    _judge(project, name, fields, config)
    if caller is not None:
        check_depth(caller, config)
    claude.check_preset_runnable(preset)
    binary = _locate_claude(project)
    if local:
        _check_sandbox(project, preset, sandboxed, binary)


def _check_existing(project: Project, record: SessionRecord) -> None:
    """:func:`_check_start` for the next exchange of ``record``."""
    _check_start(
        project, record.name, record.model_dump(), preset=record.preset, sandboxed=record.sandbox
    )


@dataclass
class _Settings:
    """A new session's settings once checked: the caller's, the project's defaults and
    cms's own, in that order, narrowed to the starting child's when one starts it."""

    preset: Preset
    model: str | None
    max_cost: float | None
    max_turns: int | None
    timeout: float | None
    cwd: str


def _settings(
    project: Project, options: Options, config: ProjectConfig, caller: SessionRecord | None
) -> _Settings:
    defaults = config.defaults

    def given(value: Any, default: Any) -> Any:
        return value if value is not None else default

    asked = check_preset(options.preset)
    preset = asked or defaults.preset or Preset.EDIT
    max_cost = check_cost(given(options.max_cost_usd, defaults.max_cost_usd))
    max_turns = check_turns(given(options.max_turns, defaults.max_turns))
    if caller is not None:
        preset, max_cost, max_turns = nested_limits(
            project, caller, preset, asked is not None, max_cost, max_turns
        )
        if not options.sandbox and caller.sandbox:
            raise BadInput(
                f"session {caller.name!r} runs in the sandbox; a session it starts may not "
                "run without it (--no-sandbox)"
            )
    timeout = check_timeout(given(options.timeout_s, defaults.timeout_s))
    model = check_model(options.model or defaults.model)
    if options.worktree and options.cwd is not None:
        raise BadInput("--worktree and --cwd cannot be combined: the worktree is the cwd")
    if options.worktree:
        check_worktree_possible(project)
    return _Settings(preset, model, max_cost, max_turns, timeout, resolve_cwd(project, options.cwd))


def spawn_session(
    project: Project,
    name: str | None,
    task: str,
    options: Options,
    prompt: str | None = None,
) -> SessionRecord:
    """Create a session; start ``prompt`` as its first exchange when given."""
    config = project.store.load_project()
    caller = calling_session(project)
    host = _host_of_new_session(project, options, config)
    if host is not None:  # a Docker host: the session works in a tree of its own
        options = replace(options, worktree=True, cwd=None)
    chosen = _settings(project, options, config, caller)
    if name is not None:
        check_name(name)
    if not task.strip() and prompt is None and name is None:
        raise BadInput("the task is empty: say what the session should do")
    if prompt is not None and not prompt.strip():
        raise BadInput("the message is empty: say what the session should do")
    if options.after and prompt is None:
        raise BadInput("--after holds back a first turn: give the prompt to run after them")
    new = {"max_cost_usd": chosen.max_cost, "max_turns": chosen.max_turns}
    _check_start(  # exit 3 before any record exists
        project,
        name or "(new)",
        new,
        preset=chosen.preset,
        sandboxed=options.sandbox,
        local=host is None,  # on a Docker host the container is the boundary
        caller=caller,
        config=config,
    )
    project.store.ensure_dirs()
    if name is None:
        name = name_from_task(task, [r.name for r in project.store.list().records])
    _check_after(project, name, options.after, caller)
    parent = project.env.get("CLAUDE_CODE_SESSION_ID") or project.env.get("CMS_PARENT_SESSION")
    record = _new_record(
        name,
        task,
        chosen,
        project=str(project.directory),
        depth=new_depth(caller),
        parent=caller.name if caller is not None else None,
        parent_session_id=parent or None,
        sandbox=options.sandbox and sandbox.needed(chosen.preset.value),
        # A session with no exchange yet is ready for its first `send`.
        status=Status.COMPLETED if prompt is None else Status.QUEUED,
        pending_message=prompt,
        after=options.after,
        turn_started_at=utcnow() if options.after else None,
        host=host.name if host is not None else hosts.LOCAL,
    )
    widening = sandbox.widening_rules(project.env, project.directory) if record.sandbox else []
    if widening:
        record.notice = (
            "your Claude Code settings let the child's commands write beyond its tree "
            f"({'; '.join(widening[:3])}); remove those rules to keep the preset's sandbox tight"
        )
    _create(project, record, lambda: make_worktree(project, record, start=None), options.worktree)
    if prompt is None:
        return record
    if options.after:
        # It waits for them on disk; the queue starts it (maybe at once, when they
        # have all completed already).
        kick_queue(project)
        return project.store.load(record.name)
    return _start_exchange(project, record.name, prompt, seen=record)


def _host_of_new_session(
    project: Project, options: Options, config: ProjectConfig
) -> hosts.Host | None:
    """The Docker host a new session runs on (None: this machine): exit 2 for a name
    that is no host, exit 3 when it cannot be reached or has no image."""
    if (options.host or config.defaults.host or hosts.LOCAL) == hosts.LOCAL:
        return None  # this machine: the Docker side of cms stays unloaded
    from cms.ops.hosts import host_for_new_session

    return host_for_new_session(project.paths.home, options.host, config)


def _check_after(
    project: Project, name: str, after: list[str], caller: SessionRecord | None
) -> None:
    """The sessions a new one runs after exist (and, for a child, are its own), and
    running after them closes no cycle (exit 2 otherwise, before anything is made)."""
    if not after:
        return
    if name in after:
        raise BadInput(f"session {name!r} cannot run after itself; leave it out of --after")
    records = {r.name: r for r in project.store.list().records}
    for predecessor in after:
        if predecessor not in records:
            raise NotFound(
                f"--after {predecessor}: no session named {predecessor!r} in project "
                f"{project.directory}; see `cms list`"
            )
        if caller is not None:
            owned_by(project, caller, records[predecessor])
    loop = dependencies.cycle(name, after, records)
    if loop:
        raise BadInput(
            f"session {name!r} cannot run after {loop[1]!r}: that would make a cycle "
            f"({' -> '.join(loop)}); choose other sessions for --after"
        )


def _new_record(name: str, task: str, chosen: _Settings, **fields: Any) -> SessionRecord:
    """A new session's record: a new Claude session id, nothing to read yet."""
    return SessionRecord(
        name=name,
        task=task,
        preset=chosen.preset,
        model=chosen.model,
        max_cost_usd=chosen.max_cost,
        max_turns=chosen.max_turns,
        timeout_s=chosen.timeout,
        cwd=chosen.cwd,
        session_id=str(uuid.uuid4()),
        result_read=True,
        **fields,
    )


def _create(
    project: Project, record: SessionRecord, make_tree: Callable[[], None], in_worktree: bool
) -> None:
    """Write the new record (with its worktree, made by ``make_tree``, when asked);
    nothing is left of a refused one."""
    if project.store.exists(record.name):
        raise BadInput(
            f"a session named {record.name!r} already exists; choose another --name or "
            f"`cms delete {record.name}`"
        )
    if in_worktree:
        make_tree()
    try:
        project.store.create(record)
    except CmsError:
        if record.worktree and record.branch:
            worktree.remove(project.directory, Path(record.worktree), record.branch)
        raise


def _start_exchange(
    project: Project, name: str, message: str, *, seen: SessionRecord
) -> SessionRecord:
    """Run the next exchange now, or queue it when the project has no free slot.

    ``seen`` is the record as the caller checked it. The queue lock may take a while
    to get; meanwhile another cms may have started this very exchange (a finishing
    supervisor or a listing starts a new session's queued first one) or another one
    (a concurrent ``send``). Starting it again would run it twice.
    """
    limit = project.store.load_project().limits.max_parallel
    with launcher.queue_locked(project.store):
        current = project.store.load(name)
        if (current.status, current.exchanges) != (seen.status, seen.exchanges):
            if seen.status is Status.QUEUED and seen.exchanges == 0:
                return current  # the queue started this new session's first turn
            raise WrongState(
                f"session {name!r} is {current.status.value}: another cms command started "
                f"a turn meanwhile; see `cms show {name}`"
            )
        records = project.store.list().records
        busy = launcher.running_per_host(records)
        if launcher.running(records) >= limit or launcher.host_full(
            project.store, current.host, busy
        ):
            return lifecycle.apply(project.store, name, lambda r: lifecycle.queue(r, message))
        record = lifecycle.apply(project.store, name, lambda r: lifecycle.begin(r, message))
    # Outside the lock (as launcher.start_queued does): the turn marked running holds
    # its slot until its supervisor's pid is recorded.
    launcher.spawn_supervisor(project.store, name)
    return project.store.load(record.name)


def delegate(project: Project, task: str, name: str | None, options: Options) -> SessionRecord:
    """Create a session and start the task as its first turn (does not wait)."""
    if not task.strip():
        raise BadInput("the task is empty: say what the session should do")
    return spawn_session(project, name, task, options, prompt=task)


def _check_sendable(record: SessionRecord) -> None:
    """The states ``send`` and ``continue`` start the next exchange from."""
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
    if record.after and not record.after_met:
        raise WrongState(
            f"session {name!r} never started: it runs after {', '.join(record.after)}; "
            f"once they have completed, start it with `cms resume {name}`"
        )
    assert record.status in SENDABLE


def send_message(project: Project, name: str, message: str) -> SessionRecord:
    """Run the next turn of a session in the same conversation (does not wait)."""
    if not message.strip():
        raise BadInput("the message is empty: say what the session should do next")
    record = get_session(project, name)
    check_steer(project, record)
    _check_sendable(record)
    _check_existing(project, record)
    return _start_exchange(project, record.name, message, seen=record)


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
    caller = calling_session(project)
    if caller is not None:
        owned_by(project, caller, record)
        left = budget_left(project, caller, exclude=None)
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
    # A cap that does not exist has nothing to raise: the correction is still sent
    # (a script or a parent model that always passes --add-cost must not lose it), the
    # session stays uncapped, and the notice says so.
    unraised: list[tuple[str, str]] = []  # (the limit, the option given)
    if add_cost is not None and record.max_cost_usd is None:
        unraised.append(("cost", f"--add-cost {vocab.usd(add_cost)}"))
        add_cost = None
    if more_turns is not None and record.max_turns is None:
        unraised.append(("turn", f"--add-turns {more_turns}"))
        more_turns = None
    if add_cost is not None or more_turns is not None:
        trial = record.model_copy()
        if add_cost is not None and trial.max_cost_usd is not None:
            trial.max_cost_usd = max(trial.max_cost_usd, trial.cost_usd) + add_cost
        if more_turns is not None and trial.max_turns is not None:
            trial.max_turns = max(trial.max_turns, trial.turns) + more_turns
        _check_sendable(trial)  # refuse before changing anything
        _judge(project, trial.name, trial.model_dump(), project.store.load_project())

        def raise_budget(r: SessionRecord) -> None:
            r.max_cost_usd = trial.max_cost_usd
            r.max_turns = trial.max_turns

        project.store.update(record.name, raise_budget)
    started = send_message(project, name, message)
    if unraised:
        kinds = " or ".join(kind for kind, _ in unraised)
        given = " and ".join(option for _, option in unraised)
        note = (
            f"session {name!r} has no {kinds} limit, so {given} raised nothing: the "
            "correction was sent and the session stays uncapped"
        )
        started.notice = f"{started.notice}; {note}" if started.notice else note
    return started


def resume_session(
    project: Project, name: str, message: str | None = None, fresh: bool = False
) -> SessionRecord:
    """Continue an interrupted or finished session from its Claude conversation; or
    start one that runs after others and did not start (see :func:`_resume_after`)."""
    record = get_session(project, name)
    if record.after and not record.after_met and not record.status.active:
        return _resume_after(project, record, message)
    if record.status not in (Status.INTERRUPTED, Status.FINISHED) and not fresh:
        if record.status.active:
            raise WrongState(f"session {name!r} is {record.status.value}; nothing to resume")
        raise WrongState(
            f"session {name!r} is {record.status.value}, not interrupted or finished; "
            f"use `cms send {name} MESSAGE`"
        )
    if record.status.active:
        raise WrongState(f"session {name!r} is {record.status.value}; nothing to resume")
    saved = record.has_conversation or claude.transcript_exists(record.session_id, project.env)
    if not saved and not fresh:
        raise WrongState(
            f"session {name!r} has no saved Claude conversation to resume (its turn was "
            f"stopped before Claude Code saved it); start over from its task with "
            f"`cms resume {name} --fresh`"
        )
    check_steer(project, record)
    _check_existing(project, record)
    if fresh:
        text = message or record.task

        new_id = str(uuid.uuid4())
        lifecycle.apply(
            project.store, record.name, lambda r: lifecycle.fresh_conversation(r, new_id)
        )
    else:
        text = message or (
            "Your previous turn was interrupted before it finished. Continue the task "
            "where you left off."
            if record.status is Status.INTERRUPTED
            else "Continue."
        )
        if record.status is Status.INTERRUPTED:
            lifecycle.apply(project.store, record.name, lifecycle.conversation_found)
    return _start_exchange(project, record.name, text, seen=record)


def _resume_after(project: Project, record: SessionRecord, message: str | None) -> SessionRecord:
    """A session that runs after others and did not start (one of them had not
    completed, or it was aborted while it waited): it waits for them again, and starts
    once they all completed; refused while one of them still ended otherwise."""
    check_steer(project, record)
    by_name = {r.name: r for r in project.store.list().records}
    verdict = dependencies.judge(record, by_name, project.store.exists)
    if verdict.state == dependencies.BLOCKED:
        raise WrongState(f"session {record.name!r} cannot start: {verdict.why}; {verdict.fix}")
    _check_existing(project, record)
    text = message or record.pending_message or record.task
    with launcher.queue_locked(project.store):
        current = project.store.load(record.name)
        if current.status.active or current.after_met:
            raise WrongState(f"session {record.name!r} is {current.status.value} already")
        lifecycle.apply(project.store, record.name, lambda r: lifecycle.queue(r, text))
    kick_queue(project)
    return project.store.load(record.name)


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
        check_worktree_possible(project)
    if not (src.has_conversation or claude.transcript_exists(src.session_id, project.env)):
        raise WrongState(f"session {source!r} has no saved conversation to fork yet")
    if project.store.exists(name):
        raise BadInput(f"a session named {name!r} already exists; choose another name")
    config = project.store.load_project()
    caller = calling_session(project)
    preset, max_cost, max_turns = src.preset, src.max_cost_usd, src.max_turns
    if caller is not None:
        owned_by(project, caller, src)
        preset, max_cost, max_turns = nested_limits(
            project, caller, preset, True, max_cost, max_turns
        )
    _check_start(
        project,
        name,
        {"max_cost_usd": max_cost, "max_turns": max_turns},
        preset=src.preset,
        sandboxed=src.sandbox,
        caller=caller,
        config=config,
    )
    chosen = _Settings(preset, src.model, max_cost, max_turns, src.timeout_s, src.cwd)
    record = _new_record(
        name,
        src.task,
        chosen,
        project=src.project,
        depth=src.depth,
        parent=src.parent,
        parent_session_id=project.env.get("CLAUDE_CODE_SESSION_ID") or src.parent_session_id,
        sandbox=src.sandbox,
        status=Status.COMPLETED,
        fork_from=src.session_id,
        host=src.host,
    )

    def fork_tree() -> None:
        assert src.worktree is not None and src.branch is not None
        tree = Path(src.worktree)
        worktree.snapshot(tree, f"cms: work of session {src.name} (before fork)")
        make_worktree(project, record, start=worktree.tip(tree, src.branch), source=tree)
        record.base_commit = src.base_commit

    _create(project, record, fork_tree, bool(src.worktree and src.branch))
    if message is None:
        return record
    return _start_exchange(project, name, message, seen=record)


def run_and_wait(
    project: Project,
    start: Callable[[Project], SessionRecord],
    *,
    wait_s: float | None,
    background: bool = False,
    on_progress: Progress | None = None,
) -> SessionRecord:
    """Start an exchange (``start`` is one of the starts above), then, unless in the
    background, wait for its outcome up to ``wait_s`` seconds (None: as long as it
    takes). A wait that runs out is no error: the session comes back ``running``.

    The one shape of "run a turn" for every caller, each with its own wait: the CLI
    waits as long as it takes, the MCP tools under the client's call limit, the slash
    commands not at all (the parent model waits in a visible tool call instead)."""
    started = start(project)
    if background or not started.status.active or (wait_s is not None and wait_s <= 0):
        return started
    [record] = wait_sessions(
        project, [started.name], wait_s, on_progress=on_progress, reconciled=True
    )
    if started.notice and record.notice != started.notice:
        record.notice = started.notice  # what the start said (not kept on the record)
    return record
