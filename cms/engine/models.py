"""Typed records of what cms keeps on disk: a session and a project's settings.

The field names here are the on-disk contract: the hook entry points read the same
TOML files with :mod:`cms.base.readers` alone (they never load this module), through the
keys of :class:`cms.base.vocab.Record`, which a test holds equal to these fields.
``schema_version`` lets a later cms migrate older records; a record from a newer cms
is refused by name rather than misread.

The records are plain classes on :class:`Model`, in the standard library alone: every
``cms`` command imports them, and pydantic cost that start-up some 80 ms (its import,
building the models, what it drags in). :class:`Model` keeps the part of pydantic's
interface cms uses (``model_validate``, ``model_dump``, ``model_copy``,
``model_fields``) and its lax coercion, on construction and on every assignment:
``record.status = "running"`` stores ``Status.RUNNING``, an int for a float is a float,
an ISO string or a TOML datetime a datetime; a value it cannot take raises
:class:`InvalidRecord` (a ``ValueError``) naming the field.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from enum import Enum, StrEnum
from typing import Any, ClassVar, Literal, Self, TypeVar, cast, dataclass_transform

from cms.base import vocab

SCHEMA_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class Status(StrEnum):
    QUEUED = vocab.QUEUED
    RUNNING = vocab.RUNNING
    COMPLETED = vocab.COMPLETED
    FAILED = vocab.FAILED
    COST_EXCEEDED = vocab.COST_EXCEEDED
    TURNS_EXCEEDED = vocab.TURNS_EXCEEDED
    TIMED_OUT = vocab.TIMED_OUT
    ABORTED = vocab.ABORTED
    INTERRUPTED = vocab.INTERRUPTED
    FINISHED = vocab.FINISHED

    @property
    def active(self) -> bool:
        """An exchange is in progress or waiting to start."""
        return self.value in vocab.ACTIVE


#: Statuses after which ``send``/``continue`` may run the next exchange directly.
SENDABLE = frozenset(Status(s) for s in vocab.ENDED)
#: `wait` succeeds (exit 0) only when every session it waited for ended in one of these.
SUCCESSFUL = frozenset(Status(s) for s in vocab.SUCCESSFUL)


class Preset(StrEnum):
    READ_ONLY = "read-only"
    REVIEW = "review"
    PLAN = "plan"
    EDIT = "edit"
    FULL = "full"


# -- the records' machinery ---------------------------------------------------------------

T = TypeVar("T")
_MISSING: Any = object()


class InvalidRecord(ValueError):
    """A value a record's field cannot take. ``loc`` is where (``("after", 1)``: the
    second item of ``after``), ``msg`` what is wrong, in the words pydantic used, so a
    record on disk is reported as it always was: ``turns: Input should be ...``."""

    def __init__(self, loc: tuple[str | int, ...], msg: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc) or 'record'}: {msg}")
        self.loc = loc
        self.msg = msg


def _refuse(should: str) -> InvalidRecord:
    return InvalidRecord((), f"Input should be {should}")


_Coerce = Callable[[Any], Any]


def _str(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, str):  # a StrEnum member: its plain text, as pydantic kept it
        return str(value)
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise _refuse("a valid string, unable to parse raw data as a unicode string") from None
    raise _refuse("a valid string")


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if isinstance(value, int):  # bool, IntEnum
        return int(value)
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        if math.isnan(value) or math.isinf(value):
            raise _refuse("a finite number")
        raise _refuse("a valid integer, got a number with a fractional part")
    if isinstance(value, str | bytes | bytearray):
        try:
            return int(value.strip())
        except ValueError:
            raise _refuse("a valid integer, unable to parse string as an integer") from None
    raise _refuse("a valid integer")


def _float(value: Any) -> float:
    if type(value) is float:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str | bytes | bytearray):
        try:
            return float(value.strip())
        except ValueError:
            raise _refuse("a valid number, unable to parse string as a number") from None
    raise _refuse("a valid number")


_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})


def _bool(value: Any) -> bool:
    if value is True or value is False:
        return bool(value)
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, bytes | bytearray):
        value = value.decode(errors="replace")
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    if isinstance(value, int | str) or (isinstance(value, float) and value.is_integer()):
        raise _refuse("a valid boolean, unable to interpret input")
    raise _refuse("a valid boolean")


def _datetime(value: Any) -> datetime:
    """A datetime, an ISO 8601 string (``Z`` for UTC), a date (its midnight) or epoch
    seconds (UTC, also as a string), as pydantic took them."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day)
    if isinstance(value, bytes | bytearray):
        value = value.decode(errors="replace")
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        try:  # epoch seconds as text, without spaces around (pydantic took those too)
            value = float(value) if value == value.strip() else math.nan
        except ValueError:
            value = math.nan
        if math.isnan(value):
            raise _refuse("a valid datetime or date, not ISO 8601")
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _refuse("a valid datetime, dates after 9999 are not supported") from None
    raise _refuse("a valid datetime")


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list | tuple | set | frozenset):
        raise _refuse("a valid list")
    items: list[str] = []
    for index, item in enumerate(value):
        try:
            items.append(_str(item))
        except InvalidRecord as exc:
            raise InvalidRecord((index, *exc.loc), exc.msg) from None
    return items


def _enum(kind: type[Enum]) -> _Coerce:
    words = [repr(member.value) for member in kind]
    message = "Input should be " + (
        f"{', '.join(words[:-1])} or {words[-1]}" if len(words) > 1 else words[0]
    )

    def coerce(value: Any) -> Enum:
        try:
            return kind(value)
        except (ValueError, TypeError):
            raise InvalidRecord((), message) from None

    return coerce


def _nested(kind: type[Model]) -> _Coerce:
    def coerce(value: Any) -> Model:
        if isinstance(value, kind):
            return value
        if isinstance(value, dict):
            return kind.model_validate(value)
        raise _refuse(f"a valid dictionary or instance of {kind.__name__}")

    return coerce


_SCALARS: dict[str, _Coerce] = {
    "str": _str,
    "int": _int,
    "float": _float,
    "bool": _bool,
    "datetime": _datetime,
    "list[str]": _str_list,
}


def _coercer(annotation: str, namespace: dict[str, Any], check: _Coerce | None) -> _Coerce:
    """The function that takes a value other than None for a field annotated
    ``annotation`` (a string: ``from __future__ import annotations``), then ``check``."""
    base = annotation.removesuffix(" | None")
    coerce = _SCALARS.get(base)
    if coerce is None:
        kind = namespace.get(base)
        if not (isinstance(kind, type) and issubclass(kind, Enum | Model)):
            raise TypeError(f"a record's field cannot be {annotation!r}: see _coercer")
        coerce = _enum(kind) if issubclass(kind, Enum) else _nested(kind)
    if check is None:
        return coerce
    inner, then = coerce, check
    return lambda value: then(inner(value))


def at_least(low: float) -> _Coerce:
    def check(value: Any) -> Any:
        if value < low:
            raise _refuse(f"greater than or equal to {low}")
        return value

    return check


def more_than(low: float) -> _Coerce:
    def check(value: Any) -> Any:
        if not value > low:
            raise _refuse(f"greater than {low}")
        return value

    return check


def _finite_non_negative(what: str) -> _Coerce:
    """A budget or a spend: a NaN or negative one (a record edited by hand) would hide
    every other session's spend from the project's cap, and NaN is not JSON."""

    def check(value: float) -> float:
        if math.isnan(value) or math.isinf(value) or value < 0:
            raise InvalidRecord(
                (), f"Value error, {what} must be a finite number >= 0, got {value}"
            )
        return value

    return check


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A default made anew for each record (a list, nested settings)."""
    return cast(T, _Factory(default_factory))


class _Field:
    """How a field takes a value: ``coerce`` (for a value other than None; None only
    where ``optional``), and its default or the ``factory`` that makes one."""

    __slots__ = ("coerce", "default", "factory", "optional")

    def __init__(self, annotation: str, coerce: _Coerce, default: Any) -> None:
        self.coerce = coerce
        self.optional = annotation.endswith(" | None")
        self.factory = default.make if isinstance(default, _Factory) else None
        self.default = _MISSING if self.factory else default

    def take(self, name: str, value: Any) -> Any:
        if value is None and self.optional:
            return None
        try:
            return self.coerce(value)
        except InvalidRecord as exc:
            raise InvalidRecord((name, *exc.loc), exc.msg) from None


def _dump(value: Any, json: bool, exclude_none: bool) -> Any:
    if isinstance(value, Model):
        return value.model_dump(mode="json" if json else "python", exclude_none=exclude_none)
    if isinstance(value, list):
        return [_dump(item, json, exclude_none) for item in value]
    if json and isinstance(value, Enum):
        return value.value
    if json and isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    return value


@dataclass_transform(kw_only_default=True, field_specifiers=(field,))
class Model:
    """A record of typed fields: each subclass's annotations are its fields, in order;
    a class attribute is a field's default (``field(default_factory=...)`` for one made
    anew), ``checks`` names further checks of some fields' values. Unknown keys are
    ignored, as a record from a newer cms may have some."""

    model_fields: ClassVar[dict[str, _Field]] = {}

    def __init_subclass__(cls, checks: dict[str, _Coerce] | None = None, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        namespace = sys.modules[cls.__module__].__dict__
        fields: dict[str, _Field] = {}
        # Its own annotations only (inspect.get_annotations would cost inspect's import).
        own = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, annotation in own.items():
            if not isinstance(annotation, str):
                raise TypeError(f"{cls.__name__}: a record's module must start with "
                                "`from __future__ import annotations`")  # fmt: skip
            if annotation.startswith("ClassVar"):
                continue
            default = cls.__dict__.get(name, _MISSING)
            if isinstance(default, _Factory):
                delattr(cls, name)  # each record gets its own (``_fill``)
            coerce = _coercer(annotation, namespace, (checks or {}).get(name))
            fields[name] = _Field(annotation, coerce, default)
        cls.model_fields = fields

    def __init__(self, **data: Any) -> None:
        self._fill(data)

    def _fill(self, data: dict[str, Any]) -> None:
        values: dict[str, Any] = {}
        for name, spec in self.model_fields.items():
            value = data.get(name, _MISSING)
            if value is None and spec.optional:
                values[name] = None
            elif value is not _MISSING:
                values[name] = spec.take(name, value)
            elif spec.factory is not None:
                values[name] = spec.factory()
            elif spec.default is not _MISSING:
                values[name] = spec.default
            else:
                raise InvalidRecord((name,), "Field required")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        spec = self.model_fields.get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        self.__dict__[name] = spec.take(name, value)

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        """A record from a mapping (a TOML table, a JSON object) or the record itself."""
        if isinstance(data, cls):
            return data
        if not isinstance(data, dict):
            raise _refuse(f"a valid dictionary or instance of {cls.__name__}")
        record = cls.__new__(cls)
        record._fill(data)
        return record

    def model_dump(
        self,
        *,
        mode: Literal["python", "json"] = "python",
        exclude: Iterable[str] = (),
        exclude_none: bool = False,
    ) -> dict[str, Any]:
        """The fields by name; ``json``: enums as their values, datetimes as ISO text
        (``Z`` for UTC), as pydantic wrote them."""
        json = mode == "json"
        skip = frozenset(exclude)
        out: dict[str, Any] = {}
        for name, value in self.__dict__.items():
            if name in skip or (value is None and exclude_none):
                continue
            out[name] = value if type(value) in _PLAIN else _dump(value, json, exclude_none)
        return out

    def model_copy(self, *, update: dict[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (nested records and lists shared unless ``deep``), with ``update``'s
        values taken as assignments are."""
        copied = type(self).__new__(type(self))
        values = dict(self.__dict__)
        if deep:
            import copy

            values = copy.deepcopy(values)
        copied.__dict__.update(values)
        for name, value in (update or {}).items():
            setattr(copied, name, value)
        return copied

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable: equal by value, not hashable

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({fields})"


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _turns(value: int) -> int:
    if value < 0:
        raise InvalidRecord((), f"Value error, max_turns must be >= 0, got {value}")
    return value


# -- the records ---------------------------------------------------------------------------

_BUDGET = _finite_non_negative("budget")
_SPEND = _finite_non_negative("spend")


class SessionRecord(
    Model,
    checks={
        "max_cost_usd": _BUDGET,
        "timeout_s": _BUDGET,
        "cost_usd": _SPEND,
        "settled_cost_usd": _SPEND,
        "max_turns": _turns,
    },
):
    """One session: its settings, budgets, progress and last outcome."""

    schema_version: int = SCHEMA_VERSION
    name: str
    status: Status = Status.QUEUED
    preset: Preset = Preset.EDIT
    model: str | None = None
    task: str = ""
    response: str | None = None
    error: str | None = None
    #: What the user sees: settled spend plus, while a turn runs, its live estimate.
    cost_usd: float = 0.0
    #: The sum of the CLI's own ``total_cost_usd`` over finished turns.
    settled_cost_usd: float = 0.0
    #: Agentic turns (API round trips) over the whole session, live while running.
    turns: int = 0
    settled_turns: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    max_cost_usd: float | None = None
    max_turns: int | None = None
    timeout_s: float | None = None
    session_id: str = ""
    #: Claude session id to fork from on the first turn (``cms fork``).
    fork_from: str | None = None
    #: True once Claude Code has a saved conversation that ``--resume`` can load.
    has_conversation: bool = False
    cwd: str = ""
    project: str = ""
    pid: int | None = None
    pid_started: int | None = None
    child_pid: int | None = None
    child_started: int | None = None
    #: Epoch seconds at which the running turn must stop (timeout), if any.
    deadline: float | None = None
    depth: int = 1
    #: The cms session this one was started from (by a child), if any.
    parent: str | None = None
    #: Claude's session id of the parent that started this one, when known.
    parent_session_id: str | None = None
    #: False when started with --no-sandbox (the hook alone holds the preset), and for
    #: preset full, which runs without the sandbox.
    sandbox: bool = True
    #: The running turn's private temp folder (its commands' TMPDIR), if any.
    temp_dir: str | None = None
    #: Tool calls refused over all turns: by the cms hook, by Claude Code's permission
    #: system, or by the sandbox (a write to a read-only place, a blocked connection).
    denials: int = 0
    settled_denials: int = 0
    #: Message the next turn sends (held while queued).
    pending_message: str | None = None
    abort_requested: bool = False
    result_read: bool = False
    exchanges: int = 0
    last_activity: str | None = None
    outcome: str | None = None
    worktree: str | None = None
    branch: str | None = None
    base_commit: str | None = None
    merged_commit: str | None = None
    #: Something the user should know about how the session was set up.
    notice: str | None = None
    #: The sessions this one runs after (``--after``): it stays ``queued`` until all
    #: of them ended, and starts only when all completed (or finished).
    after: list[str] = field(default_factory=list)
    #: True once they all had and its first exchange was given their results.
    after_met: bool = False
    #: Where its turns run: ``local`` (this machine) or a Docker host's name
    #: (``$CMS_HOME/hosts.toml``); it keeps its host for all its turns.
    host: str = "local"
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    turn_started_at: datetime | None = None
    ended_at: datetime | None = None

    def public(self) -> dict[str, Any]:
        """The JSON object of docs/DESIGN.md for this session (plus a few extra fields)."""
        data = self.model_dump(mode="json")
        for internal in (
            "settled_cost_usd",
            "settled_turns",
            "pid_started",
            "child_started",
            "pending_message",
            "settled_denials",
            "temp_dir",
        ):
            data.pop(internal, None)
        return data


def spend(records: Iterable[SessionRecord], exclude: str | None = None) -> float:
    """What the sessions spent, together (the project's spend against its cap); the
    hook, which cannot load these models, sums the same field itself."""
    return sum(r.cost_usd for r in records if r.name != exclude)


_COST = {
    name: _finite_non_negative(name)
    for name in ("max_cost_usd", "session_cap_usd", "subagent_cap_usd", "daily_cap_usd")
}


class Limits(
    Model,
    # max_parallel 0 would queue every session forever.
    checks={**_COST, "max_parallel": at_least(1), "max_depth": at_least(0)},
):
    max_cost_usd: float | None = None
    max_parallel: int = 4
    max_depth: int = 2
    #: Caps over all of Claude Code in the project (cms.hooks.caps holds them).
    session_cap_usd: float | None = None
    subagent_cap_usd: float | None = None
    daily_cap_usd: float | None = None


class Defaults(Model):
    preset: Preset | None = None
    model: str | None = None
    max_cost_usd: float | None = None
    max_turns: int | None = None
    timeout_s: float | None = None
    #: The host new sessions run on when ``--host`` is not given (None: ``local``).
    host: str | None = None


class SandboxConfig(Model):
    """The project's network rules for its ``edit`` children's commands."""

    allowed_domains: list[str] = field(default_factory=list)
    denied_domains: list[str] = field(default_factory=list)


class ProjectConfig(Model):
    schema_version: int = SCHEMA_VERSION
    project: str = ""
    limits: Limits = field(default_factory=Limits)
    defaults: Defaults = field(default_factory=Defaults)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
