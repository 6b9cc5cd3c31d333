"""How sessions look to a person: the live view of ``cms watch``, and the tables and
lines that ``list``, ``show`` and the progress display of a blocking command share.

Everything here turns :class:`cms.engine.models.SessionRecord` values into text (or rich
renderables) for a terminal; reading state is :mod:`cms.ops.sessions`'s job. The live view
re-reads :func:`cms.ops.overview` a few times a second and redraws one table with
:class:`rich.live.Live`; on anything that is not a terminal it prints a plain table,
once or every ``--interval`` seconds, so a pipe or a log file gets clean text.
Colour is only ever written to a terminal.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING

import click

from cms.base import vocab
from cms.base.vocab import usd
from cms.engine import dependencies, lifecycle
from cms.engine.models import SUCCESSFUL, SessionRecord, Status

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

    from cms.ops import BudgetReport, CostReport, Overview, Project

#: Seconds between two redraws of the live view (about two a second).
LIVE_INTERVAL_S = 0.5

#: The colour of each status, as rich styles (click.style takes the same names).
STATUS_STYLE: dict[Status, str] = {
    Status.QUEUED: "cyan",
    Status.RUNNING: "yellow",
    Status.COMPLETED: "green",
    Status.FINISHED: "green",
    Status.FAILED: "red",
    Status.INTERRUPTED: "red",
    Status.ABORTED: "red",
    Status.COST_EXCEEDED: "magenta",
    Status.TURNS_EXCEEDED: "magenta",
    Status.TIMED_OUT: "magenta",
}


# -- small formats -----------------------------------------------------------------


def now_utc() -> datetime:
    return datetime.now(UTC)


#: Dollars as cms writes them everywhere (cms.base.vocab.usd).
money = usd


def short(text: str | None, width: int) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    return vocab.one_line(text, width)


def span(seconds: float) -> str:
    """A duration the way a clock shows it: ``0:07``, ``12:30``, ``2:05:09``."""
    total = max(0, int(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def ago(moment: datetime | None, now: datetime) -> str:
    """How long ago, roughly: ``just now``, ``40s ago``, ``3m ago``, ``5h ago``, ``2d ago``;
    a date past a month."""
    if moment is None:
        return "-"
    seconds = (now - moment).total_seconds()
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)}s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)}h ago"
    if seconds < 30 * 86400:
        return f"{int(seconds // 86400)}d ago"
    return moment.astimezone(UTC).date().isoformat()


def budget(value: str, cap: str | None) -> str:
    return f"{value}/{cap}" if cap else value


def cost_cell(record: SessionRecord) -> str:
    cap = money(record.max_cost_usd) if record.max_cost_usd is not None else None
    return budget(money(record.cost_usd), cap)


def turns_cell(record: SessionRecord) -> str:
    cap = str(record.max_turns) if record.max_turns is not None else None
    return budget(str(record.turns), cap)


def elapsed(record: SessionRecord, now: datetime) -> float | None:
    """Seconds of the current turn (running), the wait so far (queued), or how long
    the last turn took (ended); None when the session never ran a turn."""
    started = record.turn_started_at
    if record.status is Status.RUNNING:
        return (now - (started or record.updated_at)).total_seconds()
    if record.status is Status.QUEUED:
        return (now - record.updated_at).total_seconds()
    if started is not None and record.ended_at is not None and record.ended_at >= started:
        return (record.ended_at - started).total_seconds()
    return None


def waits_for(
    record: SessionRecord, others: Mapping[str, SessionRecord], states: bool = True
) -> str:
    """What a session started ``--after`` others still waits for, e.g. ``waits for
    signup (running), reset (queued)`` (without ``states``: the names alone); empty
    when it waits for none of them."""
    if not lifecycle.waiting(record):
        return ""
    pending = [n for n in record.after if n not in others or others[n].status not in SUCCESSFUL]
    if not pending:
        return "ready to start"
    return f"waits for {dependencies.states(pending, others) if states else ', '.join(pending)}"


def activity(record: SessionRecord, others: Mapping[str, SessionRecord] | None = None) -> str:
    """One line of what the session did last: the error of an unsuccessful end, else
    its last tool call or text; for a queued one, what it waits for (``others``: the
    project's sessions by name)."""
    if not record.status.active and record.status not in SUCCESSFUL and record.error:
        return record.error
    if record.last_activity:
        return record.last_activity
    if lifecycle.waiting(record):
        return waits_for(record, others or {})
    if record.status is Status.QUEUED:
        return "waiting for a free slot (cms budget --max-parallel)"
    return ""


def by_name(records: Sequence[SessionRecord]) -> dict[str, SessionRecord]:
    return {r.name: r for r in records}


def ordered(records: Sequence[SessionRecord]) -> list[SessionRecord]:
    """Running and queued sessions first (oldest turn first), then the others,
    most recently changed first: what is happening now stays at the top."""
    active = [r for r in records if r.status.active]
    active.sort(key=lambda r: (r.status is not Status.RUNNING, r.turn_started_at or r.updated_at))
    done = [r for r in records if not r.status.active]
    done.sort(key=lambda r: r.ended_at or r.updated_at, reverse=True)
    return active + done


# -- plain text tables (list, and watch off a terminal) -----------------------------


def _style(text: str, style: str | None, colour: bool) -> str:
    if not colour or not style:
        return text
    return click.style(text, fg=style, bold=True if style == "yellow" else None)


def align(
    rows: Sequence[Sequence[str]],
    styles: Sequence[Sequence[str | None]] | None = None,
    colour: bool = False,
    right: Sequence[int] = (),
) -> list[str]:
    """Rows of cells as lines of aligned columns (two spaces apart). Widths are taken
    from the plain text, so colour codes do not shift the columns."""
    if not rows:
        return []
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for r, row in enumerate(rows):
        cells = []
        for i, cell in enumerate(row):
            padded = cell.rjust(widths[i]) if i in right else cell.ljust(widths[i])
            if i == len(row) - 1 and i not in right:
                padded = cell
            style = styles[r][i] if styles is not None else None
            cells.append(_style(padded, style, colour))
        lines.append("  ".join(cells).rstrip())
    return lines


LIST_HEADER = ("NAME", "STATUS", "PRESET", "MODEL", "COST", "TURNS", "AGE", "TASK")


def preset_cell(record: SessionRecord) -> str:
    """The preset, marked when its sandbox was turned off (``--no-sandbox``), and the
    Docker host its turns run on (``edit @build1``)."""
    where = f" @{record.host}" if record.host != "local" else ""
    if record.sandbox or record.preset.value == "full" or where:
        return record.preset.value + where
    return f"{record.preset.value} (no sandbox)"


def sandbox_cell(record: SessionRecord) -> str:
    if record.host != "local":
        return f"its container on host {record.host} (no root, no capabilities, no network)"
    if record.preset.value == "full":
        return "none (preset full runs without it)"
    if record.sandbox:
        return "on (its commands run in the OS sandbox)"
    return "off (--no-sandbox: the cms hook alone holds the preset)"


def list_table(
    records: Sequence[SessionRecord], now: datetime, width: int | None, colour: bool
) -> str:
    """The table of ``cms list``: one line per session, the task cut to fit ``width``
    (a terminal's width; None: 60 characters)."""
    rows: list[list[str]] = [list(LIST_HEADER)]
    styles: list[list[str | None]] = [[None] * len(LIST_HEADER)]
    others = by_name(records)
    for r in records:
        waiting = waits_for(r, others, states=False)
        rows.append(
            [
                r.name,
                r.status.value,
                preset_cell(r),
                r.model or "default",
                cost_cell(r),
                turns_cell(r),
                ago(r.created_at, now),
                (f"({waiting}) " if waiting else "") + " ".join(r.task.split()),
            ]
        )
        styles.append([None, STATUS_STYLE.get(r.status), None, None, None, None, None, None])
    fixed = sum(max(len(row[i]) for row in rows) + 2 for i in range(len(LIST_HEADER) - 1))
    room = 60 if width is None else max(20, width - fixed - 1)
    for row in rows[1:]:
        row[-1] = short(row[-1], room)
    return "\n".join(align(rows, styles, colour))


def detail_rows(
    record: SessionRecord, now: datetime, others: Mapping[str, SessionRecord] | None = None
) -> list[tuple[str, str]]:
    """``cms show``: the session's fields for a person, most telling first (``others``:
    the sessions it runs after, by name). Empty fields are left out; the response comes
    last (see :func:`cms.ui.cli.show`)."""

    def when(moment: datetime | None) -> str:
        if moment is None:
            return ""
        local = moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")
        return f"{local} ({ago(moment, now)})"

    took = elapsed(record, now)
    rows = [
        ("name", record.name),
        ("status", record.status.value),
        ("task", record.task),
        ("after", dependencies.states(record.after, others or {})),
        ("waits", waits_for(record, others or {})),
        ("preset", record.preset.value),
        ("host", record.host),
        ("sandbox", sandbox_cell(record)),
        (
            "denials",
            f"{record.denials} tool calls refused (cms logs {record.name})"
            if record.denials
            else "",
        ),
        ("model", record.model or "default"),
        ("cost", cost_cell(record) + ("" if record.max_cost_usd is not None else " (no cap)")),
        ("turns", turns_cell(record) + ("" if record.max_turns is not None else " (no cap)")),
        ("timeout", f"{record.timeout_s:g}s per turn" if record.timeout_s else ""),
        ("tokens", f"{record.input_tokens:,} in, {record.output_tokens:,} out"),
        ("error", record.error or ""),
        ("last activity", record.last_activity or ""),
        ("created", when(record.created_at)),
        ("updated", when(record.updated_at)),
        ("turn started", when(record.turn_started_at)),
        ("turn ended", when(record.ended_at) if not record.status.active else ""),
        (
            "this turn" if record.status.active else "last turn took",
            span(took) if took is not None else "",
        ),
        ("exchanges", str(record.exchanges)),
        ("cwd", record.cwd),
        ("worktree", record.worktree or ""),
        ("branch", record.branch or ""),
        ("session_id", record.session_id),
        ("pid", str(record.pid) if record.pid else ""),
        ("depth", str(record.depth)),
        ("notice", record.notice or ""),
    ]
    return [(key, value) for key, value in rows if value]


def cost_lines(report: CostReport) -> list[str]:
    """``cms cost``: spend per session, model or day, its share, the total and the cap."""
    total = report.total_cost_usd

    def share(cost: float) -> str:
        return f"{100 * cost / total:.0f}%" if total > 0 else "-"

    rows = [[report.by.upper(), "COST", "SHARE", "SESSIONS"]]
    rows += [[r.key, money(r.cost_usd), share(r.cost_usd), str(r.sessions)] for r in report.rows]
    rows.append(["total", money(total), share(total), str(sum(r.sessions for r in report.rows))])
    lines = align(rows, right=(1, 2, 3))
    if report.cap_usd is None:
        lines.append("no project spend cap (set one: cms budget --max-cost USD)")
    else:
        left = max(0.0, report.cap_usd - total)
        used = 100 * total / report.cap_usd if report.cap_usd else 100.0
        lines.append(f"project cap {money(report.cap_usd)}: {used:.0f}% used, {money(left)} left")
    if report.unknown_models:
        lines.append(
            f"not in cms's price table, priced at its highest rate: "
            f"{', '.join(report.unknown_models)}"
        )
    return lines


def budget_lines(report: BudgetReport) -> list[str]:
    """``cms budget``: the project's limits, and the caps over all of Claude Code with
    what each has spent so far."""
    limits = report.limits

    def cap(value: float | None) -> str:
        return money(value) if value is not None else "none"

    lines = [
        f"max_cost_usd      {cap(limits.max_cost_usd)}",
        f"max_parallel      {limits.max_parallel}",
        f"max_depth         {limits.max_depth}",
        f"spent             {money(report.spent_usd)}",
    ]
    found = report.caps
    if found is None:
        return lines

    def most(top: tuple[str, float] | None, what: str) -> str:
        return f"  (most by {what} {top[0]}: {money(top[1])})" if top else ""

    lines += [
        f"session_cap_usd   {cap(limits.session_cap_usd)}"
        + most(found.session_spent, "your session"),
        f"subagent_cap_usd  {cap(limits.subagent_cap_usd)}"
        + most(found.subagent_spent, "subagent"),
        f"daily_cap_usd     {cap(limits.daily_cap_usd)}  (today {found.day}, "
        f"{found.timezone} time: {money(found.today_spent)} spent)",
    ]
    return lines


# -- the progress line of a blocking command ------------------------------------------


def progress_line(records: Sequence[SessionRecord], now: datetime, width: int) -> str:
    """One line for stderr while ``delegate``/``send``/``wait`` block: elapsed, turns,
    cost and the last tool call. Empty when nothing is running or queued."""
    active = [r for r in records if r.status.active]
    if not active:
        return ""
    if len(active) == 1:
        r = active[0]
        took = elapsed(r, now) or 0.0
        head = f"{r.name} {r.status.value} {span(took)} · {r.turns} turns · {money(r.cost_usd)}"
        act = r.last_activity or ""
    else:
        running = sum(1 for r in active if r.status is Status.RUNNING)
        longest = max(elapsed(r, now) or 0.0 for r in active)
        cost = sum(r.cost_usd for r in active)
        turns = sum(r.turns for r in active)
        head = f"{running} running"
        if len(active) > running:
            head += f", {len(active) - running} queued"
        head += f" {span(longest)} · {turns} turns · {money(cost)}"
        latest = max(active, key=lambda r: r.updated_at)
        act = f"{latest.name}: {latest.last_activity}" if latest.last_activity else ""
    line = f"{head} · {act}" if act else head
    return short(line, max(10, width))


class ProgressLine:
    """Draws :func:`progress_line` on one terminal line (``\\r`` and erase-line) and
    clears it when nothing is active any more. Redraws at most ``per_second`` times a
    second, and only when the text changed: the waiter polls far more often."""

    def __init__(self, stream: IO[str], per_second: float = 4.0) -> None:
        self.stream = stream
        self.min_gap = 1.0 / per_second
        self.shown = ""
        self.last = 0.0

    def __call__(self, records: list[SessionRecord]) -> None:
        mono = time.monotonic()
        if mono - self.last < self.min_gap and any(r.status.active for r in records):
            return
        self.last = mono
        width = _columns(self.stream) - 1
        text = progress_line(records, now_utc(), width)
        if text == self.shown:
            return
        self.stream.write("\r\033[K" + text)
        self.stream.flush()
        self.shown = text

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = ""


def _columns(stream: IO[str]) -> int:
    """The width of the terminal ``stream`` writes to (80 when it cannot be told)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        return 80


# -- cms watch ---------------------------------------------------------------------


def spend_line(view: Overview) -> str:
    counts = {s: sum(1 for r in view.sessions if r.status is s) for s in Status}
    states = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n) or "no sessions"
    if view.cap_usd is not None:
        share = 100 * view.spent_usd / view.cap_usd if view.cap_usd else 100.0
        spend = f"project spend {money(view.spent_usd)} of cap {money(view.cap_usd)} ({share:.0f}%)"
    else:
        spend = f"project spend {money(view.spent_usd)} (no cap)"
    return f"{spend} · {states}"


WATCH_HEADER = ("NAME", "STATUS", "PRESET", "MODEL", "TURNS", "COST", "ELAPSED", "LAST ACTIVITY")


def watch_rows(
    records: Sequence[SessionRecord],
    now: datetime,
    others: Mapping[str, SessionRecord] | None = None,
) -> list[list[str]]:
    rows = []
    others = by_name(records) if others is None else others
    for r in ordered(records):
        took = elapsed(r, now)
        rows.append(
            [
                r.name,
                r.status.value,
                preset_cell(r),
                r.model or "default",
                turns_cell(r),
                cost_cell(r),
                span(took) if took is not None else "-",
                " ".join(activity(r, others).split()),
            ]
        )
    return rows


def watch_text(view: Overview, now: datetime, width: int = 120) -> str:
    """The plain snapshot printed when stdout is not a terminal."""
    rows = watch_rows(view.sessions, now)
    lines = [f"cms watch · {view.project} · {now.astimezone().strftime('%H:%M:%S')}"]
    if rows:
        fixed = sum(max(len(row[i]) for row in [WATCH_HEADER, *rows]) + 2 for i in range(7))
        room = max(20, width - fixed)
        for row in rows:
            row[-1] = short(row[-1], room)
        lines += align([list(WATCH_HEADER), *rows])
    lines.append(spend_line(view))
    lines += [f"warning: {p}" for p in view.problems]
    return "\n".join(lines)


def watch_table(view: Overview, now: datetime, height: int) -> RenderableType:
    """The live view: a rich table of the sessions and the project's spend."""
    from rich.box import SIMPLE_HEAD
    from rich.table import Table
    from rich.text import Text

    clock = now.astimezone().strftime("%H:%M:%S")
    table = Table(
        title=f"cms watch · {view.project} · {clock} · Ctrl-C to quit",
        title_justify="left",
        caption=spend_line(view),
        caption_justify="left",
        box=SIMPLE_HEAD,
        expand=True,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
    )
    for i, name in enumerate(WATCH_HEADER):
        last = i == len(WATCH_HEADER) - 1
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            ratio=1 if last else None,
            justify="right" if name in ("TURNS", "COST", "ELAPSED") else "left",
        )
    records = ordered(view.sessions)
    room = max(1, height - 7)  # title, header, rule, caption, problems, margins
    shown, hidden = records[:room], records[room:]
    for row, r in zip(watch_rows(shown, now, by_name(records)), shown, strict=True):
        status = Text(row[1], style=STATUS_STYLE.get(r.status, ""))
        if r.status is Status.RUNNING:
            status.stylize("bold")
        act = Text(row[7], style="red" if r.error and not r.status.active else "dim")
        table.add_row(row[0], status, *row[2:7], act)
    if hidden:
        table.add_row(f"… {len(hidden)} more", "", "", "", "", "", "", "cms list shows all")
    if not records:
        table.add_row("(no sessions yet)", "", "", "", "", "", "", "cms delegate starts one")
    for problem in view.problems:
        table.add_row("", Text("warning", style="red"), "", "", "", "", "", problem)
    return table


def reconciling(read: Callable[[Project], Overview]) -> Callable[[Project], Overview]:
    """``read``, after :func:`cms.ops.reconcile` at most every few seconds: the table
    is read a few times a second, reading never repairs, and the command does (its
    start has reconciled once already)."""
    from cms import ops as api
    from cms.ops.sessions import RECONCILE_EVERY_S

    last = time.monotonic()

    def reconciled(project: Project) -> Overview:
        nonlocal last
        if time.monotonic() - last >= RECONCILE_EVERY_S:
            api.reconcile(project)
            last = time.monotonic()
        return read(project)

    return reconciled


def run(
    project: Project,
    *,
    interval: float | None,
    once: bool,
    console: Console | None = None,
    read: Callable[[Project], Overview] | None = None,
) -> None:
    """``cms watch``: keep a table of the project's sessions on screen until Ctrl-C.

    On a terminal the table is redrawn in place every ``interval`` seconds (default
    :data:`LIVE_INTERVAL_S`); Ctrl-C leaves the last table on screen and the cursor
    restored. Off a terminal a plain table is printed once, or every ``interval``
    seconds when given. ``once`` prints a single table either way.
    """
    from rich.console import Console
    from rich.live import Live

    from cms import ops as api

    overview = read or reconciling(api.overview)
    console = console or Console(highlight=False)
    if not console.is_terminal:
        _run_plain(project, overview, interval=None if once else interval)
        return
    if once:
        console.print(watch_table(overview(project), now_utc(), console.height))
        return
    gap = interval or LIVE_INTERVAL_S
    try:
        with (
            _no_echo(),
            _term_as_interrupt(),
            Live(
                watch_table(overview(project), now_utc(), console.height),
                console=console,
                auto_refresh=False,
                redirect_stdout=False,
                redirect_stderr=False,
            ) as live,
        ):
            while True:
                time.sleep(gap)
                live.update(watch_table(overview(project), now_utc(), console.height))
                live.refresh()
    except KeyboardInterrupt:
        pass  # Live's exit has restored the cursor; the last table stays on screen


@contextlib.contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """SIGTERM (``kill``, a closing multiplexer) ends the view like Ctrl-C does, so the
    cursor and the echo are restored then too."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _no_echo() -> Iterator[None]:
    """Turn the terminal's echo off while the table is live, as full-screen programs do:
    keys typed meanwhile would be drawn into the table, and Ctrl-C's echoed ``^C``
    shifts the cursor so the last redraw lands a line off. Restored however it ends."""
    try:
        import termios
    except ImportError:  # not a POSIX system
        yield
        return
    try:
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd)
        # A background job may not change the terminal (SIGTTOU would stop it).
        foreground = os.tcgetpgrp(fd) == os.getpgrp()
    except (termios.error, OSError, ValueError):  # no terminal on stdin: nothing to do
        foreground = False
    if not foreground:
        yield
        return
    quiet = list(saved)
    quiet[3] &= ~termios.ECHO  # lflag
    try:
        termios.tcsetattr(fd, termios.TCSANOW, quiet)
    except termios.error:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(termios.error):
            termios.tcsetattr(fd, termios.TCSANOW, saved)


def _run_plain(
    project: Project, overview: Callable[[Project], Overview], interval: float | None
) -> None:
    width = shutil.get_terminal_size((120, 24)).columns
    try:
        while True:
            click.echo(watch_text(overview(project), now_utc(), width))
            sys.stdout.flush()
            if interval is None:
                return
            time.sleep(interval)
            click.echo("")
    except KeyboardInterrupt:
        pass
