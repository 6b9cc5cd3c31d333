"""JSON and TOML read without the import cost of :mod:`json` and :mod:`tomllib`.

The PreToolUse hook of a child reads one JSON object (the call) and a few TOML files
(its record, the project's file, its siblings' records) before every tool call.
Importing :mod:`json` costs the interpreter ``re`` and its regex compiler (Python),
and :mod:`tomllib` adds ``string``, ``datetime``, ``typing`` and more regexes: together
more than a bare interpreter's start (README, Performance). So:

* :func:`json_loads` decodes with the C scanner :func:`_json.make_scanner` that
  :mod:`json` itself uses, given the same settings as ``json.loads`` (strict, no
  hooks, ``float`` and ``int``, the three constants), so its answer is ``json.loads``'s
  by construction; without ``_json``, or for input that is not plain UTF-8 or does not
  decode, it is ``json.loads`` (which raises what it raises).
* :func:`toml_loads` reads exactly the TOML cms writes (tomli_w's output of a record
  or a project file: ``key = value`` lines with basic strings, integers, floats,
  booleans, datetimes and multi-line arrays of those, and ``[table]`` headers) and
  returns None for anything else; :func:`load_toml` then asks :mod:`tomllib`. What it
  accepts it reads as :mod:`tomllib` does (a property test holds it to that).

Standard library only, and no module-level imports beyond the interpreter's own: the
hook path imports this on every tool call.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


# ------------------------------------------------------------------------------ JSON


class _Settings:
    """What ``json.JSONDecoder()`` gives its scanner (``json.loads`` with no options)."""

    def __init__(self) -> None:
        self.strict = True
        self.object_hook = None
        self.object_pairs_hook = None
        self.parse_float = float
        self.parse_int = int
        constants = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}
        self.parse_constant = constants.__getitem__
        self.memo: dict[str, str] = {}


_scan: Any = None


def _scanner() -> Any:
    global _scan
    if _scan is None:
        import _json

        settings: Any = _Settings()  # what json.JSONDecoder is to the scanner
        _scan = _json.make_scanner(settings)
    return _scan


_JSON_SPACE = " \t\n\r"


def json_loads(raw: bytes | str) -> Any:
    """``json.loads(raw)``: the same value, or the same exception type (ValueError)."""
    text: str | None = None
    if isinstance(raw, str):
        text = raw
    elif not raw[:4].count(0) and not raw.startswith((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")):
        try:  # what json.detect_encoding answers for such a start: UTF-8
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError:
            text = None
    if text is None or text.startswith("\ufeff"):
        return _json_module_loads(raw)
    try:
        scan = _scanner()
    except ImportError:
        return _json_module_loads(raw)
    start = len(text) - len(text.lstrip(_JSON_SPACE))
    try:
        value, end = scan(text, start)
    except StopIteration:
        return _json_module_loads(raw)  # its own message ("Expecting value")
    if text[end:].strip(_JSON_SPACE):
        return _json_module_loads(raw)  # "Extra data"
    return value


def _json_module_loads(raw: bytes | str) -> Any:
    import json

    return json.loads(raw)


# ------------------------------------------------------------------------------ TOML

_BARE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_HEX = frozenset("0123456789abcdefABCDEF")
_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", '"': '"', "\\": "\\"}
#: tomli_w's indent of an array's items (arrays are written one item a line).
_ITEM_INDENT = "    "


def load_toml(path: str) -> dict[str, Any]:
    """The TOML file at ``path`` as :func:`tomllib.load` reads it (and raising what it
    raises: OSError, UnicodeDecodeError, ``tomllib.TOMLDecodeError``)."""
    with open(path, "rb") as handle:
        data = handle.read()
    text = data.decode()
    found = toml_loads(text)
    if found is None:
        import tomllib

        found = tomllib.loads(text)
    return found


def load_records(folder: str) -> list[dict[str, Any]]:
    """Every session record in ``folder`` (``NAME.toml``, by name) as :func:`load_toml`
    reads it; one that cannot be read (gone meanwhile, damaged) is left out."""
    import os

    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return []
    found = []
    for name in names:
        if name.endswith(".toml") and not name.startswith("."):
            try:
                found.append(load_toml(os.path.join(folder, name)))
            except (OSError, ValueError):  # tomllib.TOMLDecodeError, UnicodeDecodeError
                continue
    return found


def toml_loads(text: str) -> dict[str, Any] | None:
    """``tomllib.loads(text)`` for the TOML cms writes; None for anything else (then
    ask :mod:`tomllib`, which reads it or says what is wrong)."""
    if "\r" in text:
        return None
    root: dict[str, Any] = {}
    table = root
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line:
            continue
        if line[0] == "[":
            name = line[1:-1]
            if line[-1] != "]" or not _bare(name) or name in root:
                return None
            table = root[name] = {}
            continue
        key, sep, text_value = line.partition(" = ")
        if not sep or not _bare(key) or key in table:
            return None
        if text_value == "[":
            items: list[Any] = []
            while i < len(lines) and lines[i] != "]":
                item = lines[i]
                i += 1
                if not (item.startswith(_ITEM_INDENT) and item.endswith(",")):
                    return None
                value = _scalar(item[len(_ITEM_INDENT) : -1])
                if value is None:
                    return None
                items.append(value)
            if i == len(lines) or not items:
                return None
            i += 1
            table[key] = items
            continue
        value = [] if text_value == "[]" else _scalar(text_value)
        if value is None:
            return None
        table[key] = value
    return root


def _bare(key: str) -> bool:
    return bool(key) and _BARE.issuperset(key)


def _scalar(text: str) -> Any:
    """The value ``text`` writes, all of it, or None."""
    if not text:
        return None
    first = text[0]
    if first == '"':
        return _string(text)
    if text == "true":
        return True
    if text == "false":
        return False
    if len(text) >= 19 and text[4] == "-":
        return _datetime(text)
    return _number(text)


def _printable(chunk: str) -> bool:
    """No character a basic string may not hold as it is: the ASCII controls but the
    tab (which tomli_w writes as it is), and DEL."""
    return chunk.isprintable() or not any((c < " " and c != "\t") or c == "\x7f" for c in chunk)


def _string(text: str) -> str | None:
    """The basic string ``text`` (quotes included), or None."""
    if text.startswith('"""'):
        return None
    parts: list[str] = []
    at = 1
    while True:
        quote = text.find('"', at)
        if quote < 0:
            return None
        backslash = text.find("\\", at, quote)
        end = quote if backslash < 0 else backslash
        chunk = text[at:end]
        if not _printable(chunk):
            return None
        parts.append(chunk)
        if backslash < 0:
            return "".join(parts) if quote == len(text) - 1 else None
        letter = text[backslash + 1 : backslash + 2]
        if letter in ("u", "U"):
            size = 4 if letter == "u" else 8
            digits = text[backslash + 2 : backslash + 2 + size]
            if len(digits) != size or not _HEX.issuperset(digits):
                return None
            code = int(digits, 16)
            if 0xD800 <= code <= 0xDFFF or code > 0x10FFFF:
                return None
            parts.append(chr(code))
            at = backslash + 2 + size
        elif letter in _ESCAPES:
            parts.append(_ESCAPES[letter])
            at = backslash + 2
        else:
            return None


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _number(text: str) -> int | float | None:
    """A decimal integer or a float as ``str()`` writes it, or None."""
    body = text[1:] if text[0] == "-" else text
    if body in ("inf", "nan"):
        return float(text)
    mantissa, e, exponent = body.replace("E", "e").partition("e")
    whole, dot, fraction = mantissa.partition(".")
    if not _digits(whole) or (whole[0] == "0" and len(whole) > 1):
        return None
    if not dot and not e:
        return int(text)
    if dot and not _digits(fraction):
        return None
    if e and not _digits(exponent[1:] if exponent[:1] in ("+", "-") else exponent):
        return None
    return float(text)


def _two(text: str, low: int, high: int) -> int | None:
    return int(text) if len(text) == 2 and _digits(text) and low <= int(text) <= high else None


def _datetime(text: str) -> Any:
    """An offset or local date-time as ``str()`` or ``isoformat()`` writes it, or None
    (a date alone, a time alone: left to tomllib)."""
    if text[7] != "-" or text[10] not in "Tt " or text[13] != ":" or text[16] != ":":
        return None
    year = int(text[:4]) if _digits(text[:4]) else None
    fields = (
        year, _two(text[5:7], 1, 12), _two(text[8:10], 1, 31),
        _two(text[11:13], 0, 23), _two(text[14:16], 0, 59), _two(text[17:19], 0, 59),
    )  # fmt: skip
    if None in fields:
        return None
    rest = text[19:]
    micros = 0
    if rest.startswith("."):
        count = len(rest) - len(rest[1:].lstrip("0123456789")) - 1
        if not 1 <= count <= 6:
            return None
        micros = int(rest[1 : 1 + count].ljust(6, "0"))
        rest = rest[1 + count :]
    try:  # the C module alone: datetime.py is a large module to load
        clock: Any = __import__("_datetime")
    except ImportError:
        clock = __import__("datetime")
    tz = None
    if rest in ("Z", "z"):
        tz = clock.timezone.utc
    elif rest:
        hours, minutes = _two(rest[1:3], 0, 23), _two(rest[4:], 0, 59)
        if rest[0] not in "+-" or rest[3:4] != ":" or hours is None or minutes is None:
            return None
        sign = 1 if rest[0] == "+" else -1
        tz = clock.timezone(clock.timedelta(hours=sign * hours, minutes=sign * minutes))
    try:
        return clock.datetime(*fields, micros, tzinfo=tz)
    except ValueError:
        return None
