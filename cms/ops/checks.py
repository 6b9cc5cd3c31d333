"""Checking what a user asks for before anything changes: names, budgets, presets,
models, folders; and the one builder of a new session's options."""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cms.base import vocab
from cms.base.errors import (
    BadInput,
)
from cms.base.paths import valid_name
from cms.engine.models import (
    Preset,
)
from cms.ops.project import Project


def check_name(name: str) -> str:
    if not valid_name(name):
        shown = vocab.one_line(name, 80, "...")
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


def check_model(model: str | None) -> str | None:
    if model is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:\[\]-]{0,99}", model):
        raise BadInput(f"invalid --model {model[:80]!r}: give a model name such as 'sonnet'")
    return model


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
    #: The sessions it runs after (``--after``): it starts once they all completed.
    after: list[str] = field(default_factory=list)
    #: The host its turns run on (``--host``; None: the project's default, else local).
    host: str | None = None


def resolve_cwd(project: Project, cwd: str | None) -> str:
    if cwd is None:
        return str(project.directory)
    path = Path(os.path.expanduser(cwd))
    if not path.is_absolute():
        path = Path(os.getcwd()) / path
    if not path.is_dir():
        raise BadInput(f"--cwd {cwd!r} is not a directory")
    return os.path.realpath(path)


#: The fields of :class:`Options` that hold numbers, and the kind of each.
_NUMBERS: Mapping[str, type] = {"max_cost_usd": float, "max_turns": int, "timeout_s": float}


def make_options(values: Mapping[str, Any]) -> Options:
    """The one builder of a new session's options, from values named as the session's
    fields (``preset``, ``max_cost_usd``, ``worktree``, ``sandbox``, ...), as the CLI,
    the MCP tools and the slash commands give them. Missing and None mean "the
    project's default"; numbers may come as text (a slash command's words)."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise BadInput(f"unknown option {unknown[0]!r}")
    given: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    for key, kind in _NUMBERS.items():
        value = given.get(key)
        if isinstance(value, str):
            try:
                given[key] = kind(value)
            except ValueError:
                shown = "--" + key.removesuffix("_usd").removesuffix("_s").replace("_", "-")
                raise BadInput(f"invalid {shown} {value[:40]!r}: give a number") from None
    for flag in ("worktree", "sandbox"):
        if flag in given:
            given[flag] = bool(given[flag])
    if "after" in given:
        given["after"] = split_names(given["after"])
    return Options(**given)


def split_names(value: str | Iterable[str]) -> list[str]:
    """Session names given as ``--after a --after b,c`` (or a list, or one string with
    commas), each checked, in order, once each."""
    items = [value] if isinstance(value, str) else list(value)
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise BadInput(f"invalid --after {item!r}: give session names")
        names += [part.strip() for part in item.split(",") if part.strip()]
    return [check_name(name) for name in dict.fromkeys(names)]
