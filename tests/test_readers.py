"""The hook's readers (cms.base.readers) against json and tomllib.

What the TOML reader accepts it must read exactly as tomllib does, and it must never
accept what tomllib reads differently or refuses: over records and project files the
real store writes (hypothesis builds them, the store writes them to disk), over
arbitrary strings (escapes, unicode, quotes, controls) in every place a string goes,
and over hostile texts. The JSON reader must give json.loads's value, or raise where
it raises.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cms.base import paths, readers
from cms.base.paths import ProjectPaths
from cms.engine.models import Defaults, Limits, ProjectConfig, SandboxConfig, SessionRecord
from cms.engine.store import Store


def same(a: Any, b: Any) -> bool:
    """Equal, NaN equal to NaN, and of the same types throughout (1 is not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        both_nan = math.isnan(a) and math.isnan(b)
        return both_nan or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, datetime):
        return a == b and a.utcoffset() == b.utcoffset() and a.tzinfo == b.tzinfo
    return bool(a == b)


def agrees(text: str) -> bool:
    """The reader's answer is tomllib's, or None (it left the text to tomllib)."""
    found = readers.toml_loads(text)
    if found is None:
        return True
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return False
    return same(found, expected)


# -- what the store writes ---------------------------------------------------------

floats = st.floats(min_value=0, max_value=1e12, allow_nan=False) | st.sampled_from([1e-7, 1e16])
maybe_floats = st.none() | floats
ints = st.integers(min_value=0, max_value=2**62)
texts = st.text(max_size=40)
names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True).filter(
    lambda n: n not in {".", ".."}
)
times = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
records = st.builds(
    SessionRecord,
    name=names,
    model=st.none() | texts,
    task=texts,
    response=st.none() | texts,
    error=st.none() | texts,
    cost_usd=floats,
    settled_cost_usd=floats,
    turns=ints,
    input_tokens=ints,
    max_cost_usd=maybe_floats,
    max_turns=st.none() | ints,
    timeout_s=maybe_floats,
    session_id=texts,
    cwd=texts,
    project=texts,
    pid=st.none() | ints,
    deadline=maybe_floats,
    depth=st.integers(0, 5),
    sandbox=st.booleans(),
    temp_dir=st.none() | texts,
    abort_requested=st.booleans(),
    after=st.lists(names, max_size=3),
    created_at=times,
    updated_at=times,
    turn_started_at=st.none() | times,
)
projects = st.builds(
    ProjectConfig,
    project=texts,
    limits=st.builds(
        Limits, max_cost_usd=maybe_floats, max_parallel=st.integers(1, 50), session_cap_usd=floats
    ),
    defaults=st.builds(Defaults, model=st.none() | texts, timeout_s=maybe_floats),
    sandbox=st.builds(
        SandboxConfig, allowed_domains=st.lists(texts, max_size=3), denied_domains=st.lists(texts)
    ),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records, project=projects)
def test_the_toml_reader_reads_what_the_store_writes_as_tomllib_does(
    tmp_path_factory: pytest.TempPathFactory, record: SessionRecord, project: ProjectConfig
) -> None:
    root = tmp_path_factory.mktemp("p")
    store = Store(ProjectPaths.for_project(root, root / "home"))
    store.ensure_dirs()
    store.save(record)
    store.update_project(lambda config: project)
    for path in (store.paths.session_file(record.name), store.paths.project_file):
        text = Path(path).read_text(encoding="utf-8")
        found = readers.toml_loads(text)
        assert found is not None, text  # what cms writes is read without tomllib
        assert same(found, tomllib.loads(text)), text
        assert same(readers.load_toml(str(path)), tomllib.loads(text))


# -- arbitrary strings and values in what tomli_w writes ------------------------------

scalars = (
    st.text()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.datetimes(timezones=st.none() | st.just(UTC) | st.timezones())
    | st.lists(st.text() | st.integers() | st.floats(allow_nan=False), max_size=4)
)
keys = st.text(min_size=1, max_size=8)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(keys, scalars | st.dictionaries(keys, scalars, max_size=4), max_size=6))
def test_the_toml_reader_agrees_with_tomllib_on_any_tomli_w_output(data: dict[str, Any]) -> None:
    try:
        text = tomli_w.dumps(data)
    except (TypeError, ValueError):  # what TOML cannot hold (an offset time...)
        return
    assert agrees(text), text
    plain = all(isinstance(k, str) for k in data)
    if (
        plain
        and all(isinstance(v, str | bool | int) for v in data.values())
        and all(k.isascii() and k.replace("_", "").replace("-", "").isalnum() for k in data)
    ):
        assert readers.toml_loads(text) is not None, text  # flat and bare: read here


TRICKY = "\"\\ubtnfrU0123456789aAfFdD=[]\n .-+:eEZTxz#'\t\x7f\x00é"


@settings(max_examples=600, deadline=None)
@given(st.text(alphabet=st.sampled_from(TRICKY), max_size=30))
def test_the_toml_reader_never_accepts_what_tomllib_reads_otherwise(tail: str) -> None:
    for text in (f"key = {tail}", f'key = "{tail}"', f"key = {tail}\n", f"[t]\nkey = {tail}"):
        assert agrees(text), text


HOSTILE = [
    'a = "x"\na = "y"\n',  # a key twice
    "[limits]\nx = 1\n[limits]\ny = 2\n",  # a table twice
    "limits = 1\n[limits]\n",
    'a = "\\ud800"\n',  # a surrogate escape
    'a = "\\U00110000"\n',
    'a = "\\x41"\n',
    'a = "\\e"\n',
    'a = "tab\there"\n',  # accepted: tomli_w writes a tab as it is
    'a = "nul\x00"\n',
    'a = "del\x7f"\n',
    'a = "open\n',
    'a = """multi"""\n',
    "a = 'literal'\n",
    "a = 01\n",
    "a = 1_000\n",
    "a = +1\n",
    "a = 0x10\n",
    "a = 1.\n",
    "a = .5\n",
    "a = 1e\n",
    "a = Infinity\n",
    "a = NaN\n",
    "a = 2026-02-30 10:00:00+00:00\n",
    "a = 2026-01-01 24:00:00\n",
    "a = 2026-01-01 10:00:00+24:00\n",
    "a = 2026-01-01 10:00:00.1234567+00:00\n",
    "a = 2026-01-01\n",
    "a = 10:00:00\n",
    "a = [\n    1,\n",  # an array never closed
    "a = [\n    [1],\n]\n",
    "a = [\n]\n",
    'a = ["x", "y"]\n',
    "a = { b = 1 }\n",
    "a.b = 1\n",
    '"a" = 1\n',
    "a=1\n",
    "a = 1 # comment\n",
    "a = 1 \n",
    " a = 1\n",
    "[a.b]\nc = 1\n",
    "[[a]]\nc = 1\n",
    "\ufeffa = 1\n",
    "a = 1\r\n",
    'a = "\\u00e9\\U0001F600\\"\\\\\\b\\t\\n\\f\\r"\n',  # accepted: every escape tomli_w writes
    "a = -0\nb = -0.0\nc = 1E5\nd = -inf\ne = nan\nf = 1.5e-05\n",
    "a = 2026-01-01T10:00:00Z\nb = 2026-01-01t10:00:00.5-05:30\nc = 2026-01-01 10:00:00\n",
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_toml_is_left_to_tomllib_or_read_as_tomllib_reads_it(text: str) -> None:
    assert agrees(text)


def test_the_toml_reader_reads_every_value_cms_writes() -> None:
    text = (
        'name = "a"\ncost_usd = 0.25\nturns = 3\nsandbox = true\nafter = [\n    "x",\n    "y",\n]\n'
        "created_at = 2026-01-01 10:00:00.500000+00:00\n\n[limits]\nmax_cost_usd = 25.0\n"
    )
    assert readers.toml_loads(text) == {
        "name": "a", "cost_usd": 0.25, "turns": 3, "sandbox": True, "after": ["x", "y"],
        "created_at": datetime(2026, 1, 1, 10, 0, 0, 500000, tzinfo=timezone(timedelta(0))),
        "limits": {"max_cost_usd": 25.0},
    }  # fmt: skip


# -- JSON ---------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def json_agrees(raw: bytes | str) -> bool:
    try:
        expected: Any = json.loads(raw)
    except ValueError as exc:
        expected = exc
    try:
        found: Any = readers.json_loads(raw)
    except ValueError as exc:
        return isinstance(expected, ValueError) and type(exc) is type(expected)
    return not isinstance(expected, ValueError) and same(found, expected)


@settings(max_examples=300, deadline=None)
@given(json_values, st.booleans())
def test_the_json_reader_gives_what_json_loads_gives(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert json_agrees(text) and json_agrees(text.encode())
    assert json_agrees(f" \n{text}\t ".encode())


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=24) | st.text(max_size=24).map(str.encode))
def test_the_json_reader_fails_where_json_loads_fails(raw: bytes) -> None:
    assert json_agrees(raw)
    assert json_agrees(b'{"a": ' + raw + b"}")


@pytest.mark.parametrize(
    "raw",
    [b"", b"   ", b"{}", b"{} x", b"\xef\xbb\xbf{}", '{"a": 1}'.encode("utf-16"), b'"\xed\xa0\x80"',
     b'"\\ud800"', b"NaN", b"[Infinity, -Infinity]", b"\xff", b'{"a": 1, "a": 2}', "\ufeff{}"],
)  # fmt: skip
def test_the_json_reader_on_odd_input(raw: bytes | str) -> None:
    assert json_agrees(raw)


# -- the hook's paths, without re and pathlib ------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=70) | st.from_regex(r"[a-z0-9][a-z0-9._-]{0,70}", fullmatch=True))
def test_names_and_keys_as_the_regexes_had_them(text: str) -> None:
    expected = bool(re.fullmatch(paths.NAME_PATTERN, text)) and text not in {".", ".."}
    assert paths.valid_name(text) is expected
    home = Path("/h")
    session_id = bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}", text))
    assert (paths.notices_dir(home, text) is not None) is session_id
    real = os.path.realpath(Path("/x") / text.replace("/", "_").replace("\0", "_"))
    stem = re.sub(r"[^a-z0-9._-]+", "-", os.path.basename(real).lower()).strip("-.") or "root"
    assert paths.project_key(real).rsplit("-", 1)[0] == stem[:40]


def test_the_project_and_home_as_strings_are_the_paths(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    (repo / "a" / "b").mkdir(parents=True)
    (repo / ".git").mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    for start in (repo / "a" / "b", repo, outside, Path("/")):
        assert paths.find_project_root(start) == Path(paths.project_root(str(start)))
        assert paths.resolve_project(env={"CMS_PROJECT": str(start)}) == Path(
            paths.project_dir(env={"CMS_PROJECT": str(start)})
        )
    assert paths.project_root(str(repo / "a" / "b")) == str(repo)
    homes = ("~/x/../y", "rel/./dir/", "//net/a", "///a//b/", "/")
    for env in [{"CMS_HOME": home} for home in homes] + [{"HOME": str(tmp_path) + "/"}]:
        value = env.get("CMS_HOME")
        old = (
            Path(value).expanduser().absolute()
            if value
            else Path(env["HOME"]).expanduser().absolute() / ".claude" / "cms"
        )
        assert paths.cms_home(env) == old and paths.home_dir(env) == str(old)
    assert Path(paths.__file__).resolve().parent.parent == paths.PACKAGE_DIR
    assert paths.PACKAGE_DIR.parent == paths.PACKAGE_PARENT
