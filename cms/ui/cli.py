"""The ``cms`` command line: parse, call :mod:`cms.ops`, render text or JSON.

No logic lives here. Every command takes ``--json`` and ``--project`` before or after
its name. Errors are :class:`cms.base.errors.CmsError`, caught once in :func:`main` and
printed as one line on stderr with the exit code of docs/DESIGN.md; data goes to stdout.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from cms import __version__
from cms.base.errors import EXIT_ENVIRONMENT, EXIT_TASK_FAILED, CmsError
from cms.base.vocab import usd
from cms.ui import hostcli as host_commands

F = TypeVar("F", bound=Callable[..., Any])


class State:
    def __init__(self) -> None:
        self.json = False
        self.project: str | None = None


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        ctx.ensure_object(State).json = True
    return value


def _set_project(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        ctx.ensure_object(State).project = value
    return value


def common(func: F) -> F:
    """``--json`` and ``--project`` on a command, so they work after its name too."""
    func = click.option(
        "--json", "json_", is_flag=True, expose_value=False, callback=_set_json,
        is_eager=True, help="Machine output (JSON) on stdout.",
    )(func)  # fmt: skip
    func = click.option(
        "--project", metavar="DIR", expose_value=False, callback=_set_project,
        is_eager=True, help="The project directory (default: git top-level of the cwd).",
    )(func)  # fmt: skip
    return func


def _state() -> State:
    return click.get_current_context().ensure_object(State)


def _project(reconcile: bool = True) -> Any:
    """The project of this command, reconciled first (:func:`cms.ops.reconcile`) unless
    the command does not work on sessions (``doctor``, ``sandbox``)."""
    from cms import ops as api

    project = api.open_project(_state().project)
    if reconcile:
        api.reconcile(project)
    return project


def _emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _warn(lines: Sequence[str]) -> None:
    for line in lines:
        click.echo(f"cms: warning: {line}", err=True)


# -- rendering -------------------------------------------------------------------------


def _stdout_tty() -> bool:
    return sys.stdout.isatty()


def _stdout_width() -> int | None:
    """The terminal's width when stdout is one, else None (a pipe gets full columns)."""
    if not _stdout_tty():
        return None
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except OSError:
        return None


def _render_result(record: Any) -> None:
    """A finished turn for a person: status line, then the response."""
    cost = usd(record.cost_usd)
    click.echo(f"{record.name}: {record.status.value}  cost {cost}  turns {record.turns}")
    if record.error:
        click.echo(f"error: {record.error}")
    if record.response:
        click.echo("")
        click.echo(record.response)


def _echo_status(record: Any) -> None:
    """A record after a state change: JSON, or one line with its new status."""
    if _state().json:
        _emit_json(record.public())
    else:
        click.echo(f"{record.name}: {record.status.value}")


def _notice(record: Any) -> None:
    if record.notice:
        click.echo(f"cms: note: {record.notice}", err=True)


def _progress_printer() -> Any:
    """The one-line progress display on stderr (:class:`cms.ui.watch.ProgressLine`), only
    for a person at a terminal: never with ``--json``, never into a pipe or file."""
    if _state().json or not sys.stderr.isatty():
        return None
    from cms.ui.watch import ProgressLine

    return ProgressLine(sys.stderr)


def _wait_with_progress(
    project: Any, names: list[str] | None, timeout: float | None, first: bool = False
) -> Any:
    """``api.wait_sessions`` with the progress line, cleared however the wait ends."""
    from cms import ops as api

    progress = _progress_printer()
    try:
        return api.wait_sessions(project, names, timeout, on_progress=progress, first=first)
    finally:
        if progress is not None:
            progress.clear()


def _run_turn(start: Callable[[Any], Any], background: bool) -> None:
    """delegate/spawn/send/continue/resume/fork: start, then wait for the outcome as
    long as it takes unless --background (:func:`cms.ops.run_and_wait`), with the
    progress line at a terminal; print the result; exit 1 when it did not succeed."""
    from cms import ops as api

    project = _project()
    started: list[Any] = []

    def start_and_note(p: Any) -> Any:
        record = start(p)
        started.append(record)
        _notice(record)
        return record

    progress = None if background else _progress_printer()
    try:
        record = api.run_and_wait(
            project, start_and_note, wait_s=None, background=background, on_progress=progress
        )
    except KeyboardInterrupt:
        name = started[0].name if started else "the session"
        click.echo(
            f"cms: stopped waiting; {name} keeps running (cms wait {name}, cms abort {name})",
            err=True,
        )
        raise SystemExit(130) from None
    finally:
        if progress is not None:
            progress.clear()
    if _state().json:
        _emit_json(record.public())
    elif record.status.active:
        after = f" after {', '.join(record.after)}" if record.after and not record.after_met else ""
        click.echo(f"{record.name}: {record.status.value}{after} (cms wait {record.name})")
    else:
        _render_result(record)
    if not record.status.active and not api.all_successful([record]):
        raise SystemExit(EXIT_TASK_FAILED)


# -- commands ---------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--json",
    "json_",
    is_flag=True,
    expose_value=False,
    callback=_set_json,
    is_eager=True,
    help="Machine output (JSON) on stdout.",
)
@click.option(
    "--project",
    metavar="DIR",
    expose_value=False,
    callback=_set_project,
    is_eager=True,
    help="The project directory (default: git top-level of the cwd).",
)
@click.version_option(__version__, prog_name="cms")
def cli() -> None:
    """cms: launch and steer child Claude Code sessions."""


def session_options(func: F) -> F:
    for decorator in reversed(
        [
            click.option(
                "--preset", type=str, help="read-only, review, plan, edit (default), full."
            ),
            click.option("--model", type=str, help="Model for the child (e.g. sonnet, opus)."),
            click.option(
                "--max-cost",
                "max_cost_usd",
                type=float,
                metavar="USD",
                help="Spend cap of the session.",
            ),
            click.option("--max-turns", type=int, metavar="N", help="Turn cap of the session."),
            click.option(
                "--timeout", "timeout_s", type=float, metavar="S", help="Time limit of each turn."
            ),
            click.option("--cwd", type=str, metavar="DIR", help="Working directory of the child."),
            click.option("--worktree", is_flag=True, help="Run in a git worktree of its own."),
            click.option(
                "--after",
                multiple=True,
                metavar="NAME",
                help="Start only once session NAME completed (repeatable, or a,b,c).",
            ),
            click.option(
                "--host",
                type=str,
                metavar="NAME",
                help="Run its turns on Docker host NAME (`cms host list`; default local).",
            ),
            click.option(
                "--no-sandbox",
                is_flag=True,
                help="Run this session's commands without the OS sandbox (the hook alone).",
            ),
        ]
    ):
        func = decorator(func)
    return func


def _options(kw: dict[str, Any]) -> Any:
    """The session's options from the command's (one builder: cms.ops.make_options)."""
    from cms import ops as api

    fields = (
        "preset",
        "model",
        "max_cost_usd",
        "max_turns",
        "timeout_s",
        "cwd",
        "worktree",
        "host",
    )
    chosen = {f: kw.get(f) for f in fields}
    return api.make_options({**chosen, "after": kw["after"], "sandbox": not kw["no_sandbox"]})


@cli.command()
@click.argument("task")
@click.option("--name", type=str, help="Session name (default: made from the task).")
@session_options
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def delegate(task: str, name: str | None, background: bool, **kw: Any) -> None:
    """Create a session and run TASK as its first turn."""
    from cms import ops as api

    options = _options(kw)
    _run_turn(lambda p: api.delegate(p, task, name, options), background)


@cli.command()
@click.argument("name")
@click.argument("prompt", required=False)
@session_options
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def spawn(name: str, prompt: str | None, background: bool, **kw: Any) -> None:
    """Create session NAME; run PROMPT as its first turn if given."""
    from cms import ops as api

    options = _options(kw)
    _run_turn(
        lambda p: api.spawn_session(p, name, prompt or "", options, prompt=prompt),
        background or prompt is None,
    )


@cli.command()
@click.argument("name")
@click.argument("message")
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def send(name: str, message: str, background: bool) -> None:
    """Run the next turn of NAME with MESSAGE."""
    from cms import ops as api

    _run_turn(lambda p: api.send_message(p, name, message), background)


@cli.command("continue")
@click.argument("name")
@click.argument("message")
@click.option("--add-cost", type=float, metavar="USD", help="Raise the spend cap by USD first.")
@click.option("--add-turns", type=int, metavar="N", help="Raise the turn cap by N first.")
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def continue_(
    name: str, message: str, add_cost: float | None, add_turns: int | None, background: bool
) -> None:
    """Correct a session: raise its budget if asked, then send MESSAGE."""
    from cms import ops as api

    _run_turn(lambda p: api.continue_task(p, name, message, add_cost, add_turns), background)


@cli.command()
@click.argument("names", nargs=-1)
@click.option("--timeout", type=float, metavar="S", help="Stop waiting after S seconds.")
@click.option("--any", "first", is_flag=True, help="Return as soon as the first of them stops.")
@common
def wait(names: tuple[str, ...], timeout: float | None, first: bool) -> None:
    """Block until the named (default: all running) sessions stop, or with --any the
    first of them; print each result (exit 0 only when each completed)."""
    from cms import ops as api

    project = _project()
    try:
        records = _wait_with_progress(project, list(names) or None, timeout, first)
    except KeyboardInterrupt:
        click.echo("cms: stopped waiting; the sessions keep running", err=True)
        raise SystemExit(130) from None
    if _state().json:
        _emit_json([r.public() for r in records])
    else:
        if not records:
            click.echo("no running sessions")
        for i, r in enumerate(records):
            if i:
                click.echo("")
            _render_result(r)
    if not api.all_successful(records):
        raise SystemExit(EXIT_TASK_FAILED)


@cli.command()
@click.argument("name")
@common
def result(name: str) -> None:
    """The last response and outcome of NAME."""
    from cms import ops as api

    record = api.get_session(_project(), name, mark_read=True)
    if _state().json:
        _emit_json(record.public())
    else:
        _render_result(record)
    if not api.all_successful([record]):
        raise SystemExit(EXIT_TASK_FAILED)


@cli.command("list")
@click.option("--status", type=str, help="Only sessions with this status.")
@common
def list_(status: str | None) -> None:
    """The project's sessions."""
    from cms import ops as api

    listing = api.list_sessions(_project(), status)
    _warn(listing.problems)
    if _state().json:
        _emit_json([r.public() for r in listing.sessions])
    elif listing.sessions:
        from cms.ui import watch as view

        table = view.list_table(listing.sessions, view.now_utc(), _stdout_width(), _stdout_tty())
        click.echo(table)
    else:
        click.echo("no sessions in this project")


@cli.command()
@click.argument("name")
@common
def show(name: str) -> None:
    """One session in full."""
    from cms import ops as api
    from cms.ui import watch as view

    project = _project()
    record = api.get_session(project, name)
    if _state().json:
        _emit_json(record.public())
        return
    rows = view.detail_rows(record, view.now_utc(), api.predecessors(project, record))
    width = max(len(key) for key, _ in rows)
    colour = _stdout_tty()
    for key, value in rows:
        style = view.STATUS_STYLE.get(record.status) if key == "status" else None
        text = " ".join(value.split()) if key != "task" else value
        text = text.replace("\n", "\n" + " " * (width + 2))
        if style and colour:
            text = click.style(text, fg=style)
        click.echo(f"{key.ljust(width)}  {text}")
    if record.response:
        click.echo("")
        click.echo("response:")
        for line in record.response.rstrip().splitlines():
            click.echo(f"  {line}".rstrip())


@cli.command()
@click.argument("name")
@click.option("--follow", "-f", is_flag=True, help="Keep showing events until the turn ends.")
@click.option("--raw", is_flag=True, help="The stream-json lines as Claude Code wrote them.")
@common
def logs(name: str, follow: bool, raw: bool) -> None:
    """NAME's events: tool calls, text, denials, results."""
    from cms import ops as api
    from cms.ui import logview

    lines = api.read_log(_project(), name, follow=follow)
    shown = 0
    try:
        if raw or _state().json:
            for line in lines:
                click.echo(line.decode("utf-8", "replace"))
                shown += 1
        else:
            colour = _stdout_tty()
            for text in logview.render_lines(lines):
                click.echo(_log_colour(text) if colour else text)
                shown += 1
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if not shown and not (raw or _state().json):
        click.echo(f"cms: {name} has no events yet", err=True)


_LOG_STYLES = (("  ⛔", "red"), ("  ✗", "yellow"), ("→ ", "cyan"), ("──", "blue"))


def _log_colour(line: str) -> str:
    for prefix, colour in _LOG_STYLES:
        if line.startswith(prefix):
            return click.style(line, fg=colour)
    return line


@cli.command()
@click.option("--interval", type=float, metavar="S", help="Seconds between redraws.")
@click.option("--once", is_flag=True, help="Show the table once and exit.")
@common
def watch(interval: float | None, once: bool) -> None:
    """A live table of the project's sessions (Ctrl-C to quit).

    On a terminal it redraws about twice a second. Into a pipe or file it prints a
    plain table once, or every --interval seconds."""
    from cms import ops as api
    from cms.ui import watch as view

    if interval is not None and not (0.05 <= interval <= 3600):
        raise click.BadParameter(
            f"{interval:g}: give 0.05 to 3600 seconds", param_hint="--interval"
        )
    project = _project()
    if _state().json:
        if once or interval is None:
            _emit_json(api.overview(project).as_json())
            return
        try:  # one JSON object a line, every interval
            for snapshot in api.overviews(project, interval):
                click.echo(json.dumps(snapshot.as_json(), ensure_ascii=False))
        except KeyboardInterrupt:
            return
    view.run(project, interval=interval, once=once)


@cli.command()
@click.argument("name")
@common
def abort(name: str) -> None:
    """Stop NAME's running turn and its whole process tree."""
    from cms import ops as api

    _echo_status(api.abort_session(_project(), name))


@cli.command()
@click.argument("name")
@common
def finish(name: str) -> None:
    """Close NAME; it stays on record (resume reopens it)."""
    from cms import ops as api

    _echo_status(api.finish_session(_project(), name))


@cli.command()
@click.argument("name")
@click.option("--force", is_flag=True, help="Abort it if running; drop unmerged worktree changes.")
@common
def delete(name: str, force: bool) -> None:
    """Remove NAME's record and logs."""
    from cms import ops as api

    deleted = api.delete_session(_project(), name, force=force)
    if _state().json:
        _emit_json(deleted.as_json())
    else:
        click.echo(f"{deleted.record.name}: deleted")


@cli.command()
@click.argument("name")
@click.argument("message", required=False)
@click.option("--fresh", is_flag=True, help="Start over from the task in a new conversation.")
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def resume(name: str, message: str | None, fresh: bool, background: bool) -> None:
    """Continue an interrupted or finished session."""
    from cms import ops as api

    _run_turn(lambda p: api.resume_session(p, name, message, fresh), background)


@cli.command()
@click.argument("source")
@click.argument("name")
@click.argument("message", required=False)
@click.option("--background", is_flag=True, help="Return once the turn has started.")
@common
def fork(source: str, name: str, message: str | None, background: bool) -> None:
    """A new session NAME that starts from SOURCE's conversation."""
    from cms import ops as api

    _run_turn(lambda p: api.fork_session(p, source, name, message), background or message is None)


@cli.command()
@click.option("--by", "by", type=str, default="session", help="session, model, day or agent.")
@common
def cost(by: str) -> None:
    """Spend report of the project: cms's sessions, your own and their subagents."""
    from cms import ops as api

    report = api.cost_report(_project(), by)
    if _state().json:
        _emit_json(report.as_json())
        return
    from cms.ui import watch as view

    click.echo("\n".join(view.cost_lines(report)))


def _cap_option(name: str, what: str) -> Callable[[F], F]:
    return click.option(name, type=str, metavar="USD|none", help=what)


@cli.command()
@click.option("--max-cost", type=float, metavar="USD", help="Spend cap over cms's sessions.")
@_cap_option("--daily-cap", "All the project's spend in one day (local time).")
@_cap_option("--session-cap", "Each of your own Claude Code sessions in the project.")
@_cap_option("--subagent-cap", "Each native subagent in any session of the project.")
@click.option("--max-parallel", type=int, metavar="N", help="Sessions running at once.")
@click.option("--max-depth", type=int, metavar="N", help="Nesting depth of delegation.")
@common
def budget(
    max_cost: float | None,
    daily_cap: str | None,
    session_cap: str | None,
    subagent_cap: str | None,
    max_parallel: int | None,
    max_depth: int | None,
) -> None:
    """Show or set the project's limits."""
    from cms import ops as api

    caps = {"daily_cap_usd": daily_cap, "session_cap_usd": session_cap}
    caps["subagent_cap_usd"] = subagent_cap
    report = api.project_budget(_project(), max_cost, max_parallel, max_depth, caps)
    if _state().json:
        _emit_json(report.as_json())
        return
    from cms.ui import watch as view

    click.echo("\n".join(view.budget_lines(report)))


@cli.command()
def statusline() -> None:
    """One line for Claude Code's statusLine setting: this session's spend and cap,
    today's project spend and the daily cap (its JSON on stdin)."""
    from cms.hooks import caps

    raise SystemExit(caps.main(["statusline"]))


@cli.command()
@click.option(
    "--allow-domain",
    "allow",
    multiple=True,
    metavar="D",
    help="Let edit children's commands reach D (repeatable; *.example.com works).",
)
@click.option(
    "--deny-domain",
    "deny",
    multiple=True,
    metavar="D",
    help="Take D off the list and block it (repeatable).",
)
@common
def sandbox(allow: tuple[str, ...], deny: tuple[str, ...]) -> None:
    """The project's network allowlist for children's commands, and whether the
    sandbox can run here."""
    from cms import ops as api

    report = api.sandbox_settings(_project(reconcile=False), allow, deny)
    if _state().json:
        _emit_json(report.as_json())
        return
    found = report.availability
    click.echo(f"sandbox          {'works' if found.ok else 'UNAVAILABLE'}: {found.detail}")
    if found.fix and not found.ok:
        click.echo(f"                 fix: {found.fix}")
    allowed = ", ".join(report.allowed_domains) or "none (no network for children's commands)"
    click.echo(f"allowed domains  {allowed}")
    if report.denied_domains:
        click.echo(f"denied domains   {', '.join(report.denied_domains)}")


@cli.command()
@common
def doctor() -> None:
    """Check claude, the state folder and the setup."""
    from cms import ops as api

    checks = api.doctor(_project(reconcile=False))
    if _state().json:
        _emit_json([c.as_json() for c in checks])
    else:
        width = max(len(c.name) for c in checks)
        colour = _stdout_tty()
        for c in checks:
            if not c.ok:
                mark, style = "FAIL", "red"
            elif c.warning:
                mark, style = "warn", "yellow"
            else:
                mark, style = "ok", "green"
            shown = click.style(mark.ljust(4), fg=style, bold=not c.ok) if colour else mark.ljust(4)
            click.echo(f"{shown}  {c.name.ljust(width)}  {c.detail}")
            if c.fix and (not c.ok or c.warning):
                click.echo(f"{'':4}  {'':{width}}  fix: {c.fix}")
    if not all(c.ok for c in checks):
        raise SystemExit(EXIT_ENVIRONMENT)  # every check is of the environment


@cli.command()
@click.option(
    "--scope",
    type=click.Choice(["user", "project"]),
    default="user",
    show_default=True,
    help="user: ~/.claude; project: this project's .claude (and a project-scope plugin).",
)
@click.option("--uninstall", is_flag=True, help="Remove exactly what setup added.")
@click.option("--force", is_flag=True, help="Replace a delegate.md/sessions.md it did not write.")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@common
def setup(scope: str, uninstall: bool, force: bool, yes: bool) -> None:
    """Put cms into Claude Code: the marketplace and plugin, and /delegate and /sessions."""
    from cms.base.errors import BadInput
    from cms.ops import setup as setup_module

    if not yes and not sys.stdin.isatty():
        raise BadInput("cms setup changes Claude Code's set-up: run it at a terminal, or add --yes")
    plan = setup_module.plan(os.environ, scope, _state().project, uninstall=uninstall, force=force)
    if plan.changes and not yes:
        for line in plan.notes + [f"will {line}" for line in plan.will]:
            click.echo(f"cms setup: {line}", err=True)
        if not click.confirm("Go ahead?", default=True, err=True):
            raise BadInput("cms setup cancelled; nothing was changed")
    outcome = setup_module.apply(plan)
    if _state().json:
        _emit_json(outcome.as_json())
        return
    for line in outcome.notes + outcome.steps:
        click.echo(f"cms setup: {line}")
    if not outcome.changed:
        done = "nothing to undo" if uninstall else "cms is set up already"
        click.echo(f"cms setup: {done} ({scope} scope); nothing changed")


@cli.command()
@click.argument("name")
@common
def diff(name: str) -> None:
    """A --worktree session's changes against where it started."""
    from cms import ops as api

    text = api.diff_session(_project(), name)
    if _state().json:
        _emit_json({"name": name, "diff": text})
    else:
        click.echo(text, nl=False)


@cli.command()
@click.argument("name")
@common
def merge(name: str) -> None:
    """Bring a --worktree session's changes into your current branch."""
    from cms import ops as api

    record = api.merge_session(_project(), name)
    if _state().json:
        _emit_json(record.public())
    else:
        click.echo(f"{record.name}: merged {record.branch} ({(record.merged_commit or '')[:12]})")


@cli.command()
def mcp() -> None:
    """The MCP server (stdio): every operation as a tool for the parent model."""
    from cms.ui import mcp_server

    mcp_server.serve()


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("event")
def hook(event: str) -> None:
    """Hook entry point (pre-tool-use, stop, session-start, user-prompt-submit):
    the hook's JSON on stdin. (The ``cms`` console script, cms.ui.entry, runs these
    without loading this command line; this is ``python -m cms.ui.cli hook``.)"""
    from cms.ui.hookrun import run_hook

    raise SystemExit(run_hook(event))


cli.add_command(host_commands.host)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: run the CLI; render CmsError as one line and its exit code."""
    # What a child wrote can hold text no encoding takes (a lone surrogate): shown as
    # an escape, it never stops a command that prints it.
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        cli.main(
            args=list(argv) if argv is not None else None, prog_name="cms", standalone_mode=False
        )
    except CmsError as exc:
        click.echo(f"cms: error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("cms: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        click.echo(f"cms: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("cms: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(
            f"cms: error: {exc.strerror or exc} ({getattr(exc, 'filename', '') or ''})", err=True
        )
        sys.exit(EXIT_ENVIRONMENT)


if __name__ == "__main__":
    main()
