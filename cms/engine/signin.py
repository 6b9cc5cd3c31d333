"""Whether Claude Code is signed in, asked before any turn starts (docs/DESIGN.md,
"Commands": not signed in is an environment problem, exit 3, no record).

A child that is not signed in ends at once with "Not logged in · Please run /login",
which would leave a ``failed`` record and use up the session's name. So the start
checks first, without an API call and mostly without starting Claude Code (Node costs
a few hundred milliseconds):

1. the signals Claude Code itself reads, cheapest first: a key or token in the
   environment (``ANTHROPIC_API_KEY``, ``ANTHROPIC_AUTH_TOKEN``,
   ``CLAUDE_CODE_OAUTH_TOKEN``), a third-party provider (Bedrock, Vertex, Foundry:
   their own credentials), ``apiKeyHelper`` or such a variable in the ``env`` of a
   settings file (user, project, managed), the claude.ai sign-in in
   ``<config>/.credentials.json``, or the key ``/login`` keeps in ``.claude.json``;
2. only when none of them is there (macOS keeps the sign-in in the keychain, a newer
   CLI may keep it elsewhere): ``claude auth status``, Claude Code's own answer, whose
   "signed in" is remembered for an hour in the state folder.

Only a definite "no" refuses: a CLI without ``auth status`` (older than 2.1) or an
answer that cannot be read lets the turn start, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cms.base import paths
from cms.base.errors import EnvironmentProblem
from cms.base.files import atomic_write
from cms.engine import procs

#: Variables that hold a credential Claude Code uses as they are.
CREDENTIAL_VARIABLES = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
#: Variables that send Claude Code to a cloud provider with credentials of its own.
PROVIDER_VARIABLES = (
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "CLAUDE_CODE_USE_FOUNDRY",
)
#: Where an administrator's settings live (Linux, then macOS).
MANAGED_SETTINGS = (
    Path("/etc/claude-code/managed-settings.json"),
    Path("/Library/Application Support/ClaudeCode/managed-settings.json"),
)
#: How long a "signed in" from ``claude auth status`` is trusted (seconds).
STATUS_TTL_S = 3600.0
NOT_SIGNED_IN = (
    "Claude Code is not signed in: run `claude` and sign in with /login, or set ANTHROPIC_API_KEY"
)


@dataclass(frozen=True)
class SignIn:
    """What was found: signed in (True), not (False) or cannot tell (None), and how."""

    signed_in: bool | None
    how: str


def _truthy(value: str | None) -> bool:
    return bool(value) and str(value).strip().lower() not in ("0", "false", "no", "")


def _read_json(path: Path, limit: int = 8 * 1024 * 1024) -> Any:
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read(limit))
    except (OSError, ValueError):
        return None


def _from_environment(env: Mapping[str, str], where: str) -> str | None:
    for name in CREDENTIAL_VARIABLES:
        if env.get(name, "").strip():
            return f"{name}{where}"
    for name in PROVIDER_VARIABLES:
        if _truthy(env.get(name)):
            return f"{name}{where} (the provider's own credentials)"
    return None


def _settings_files(env: Mapping[str, str], project: Path | None) -> list[Path]:
    found = [paths.claude_config_dir(env) / "settings.json", *MANAGED_SETTINGS]
    if project is not None:
        found[1:1] = [
            project / ".claude" / "settings.json",
            project / ".claude" / "settings.local.json",
        ]
    return found


def _from_settings(path: Path) -> str | None:
    data = _read_json(path)
    if not isinstance(data, dict):
        return None
    helper = data.get("apiKeyHelper")
    if isinstance(helper, str) and helper.strip():
        return f"apiKeyHelper in {path}"
    variables = data.get("env")
    if isinstance(variables, dict):
        strings = {k: v for k, v in variables.items() if isinstance(v, str)}
        return _from_environment(strings, f" in the env of {path}")
    return None


def _from_stored_login(env: Mapping[str, str]) -> str | None:
    config = paths.claude_config_dir(env)
    credentials = _read_json(config / ".credentials.json")
    oauth = credentials.get("claudeAiOauth") if isinstance(credentials, dict) else None
    if isinstance(oauth, dict) and (oauth.get("accessToken") or oauth.get("refreshToken")):
        return f"the claude.ai sign-in in {config / '.credentials.json'}"
    home = Path(env.get("HOME") or str(Path.home()))
    for state in dict.fromkeys([config / ".claude.json", home / ".claude.json"]):
        data = _read_json(state)
        if isinstance(data, dict) and data.get("primaryApiKey"):
            return f"the key /login keeps in {state}"
    return None


def local_signal(env: Mapping[str, str], project: Path | None = None) -> str | None:
    """How Claude Code is signed in, from what it reads itself (None: nothing found)."""
    found = _from_environment(env, "")
    for path in _settings_files(env, project):
        found = found or _from_settings(path)
    return found or _from_stored_login(env)


def _ask_claude(claude: str, env: Mapping[str, str]) -> SignIn:
    """``claude auth status``: its JSON says ``loggedIn``."""
    try:
        done = procs.run([claude, "auth", "status"], env=env, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return SignIn(None, "`claude auth status` did not run")
    text = done.stdout
    try:
        answer = json.loads(text[text.find("{") :]) if "{" in text else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or not isinstance(answer.get("loggedIn"), bool):
        return SignIn(None, "`claude auth status` gave no answer cms can read")
    if not answer["loggedIn"]:
        return SignIn(False, "`claude auth status` says not logged in")
    method = answer.get("authMethod")
    return SignIn(True, f"`claude auth status` ({method})" if method else "`claude auth status`")


def _cache_key(claude: str, env: Mapping[str, str]) -> str:
    return f"{os.path.realpath(claude)}|{paths.claude_config_dir(env)}"


def status(
    claude: str,
    env: Mapping[str, str],
    project: Path | None = None,
    cache_dir: Path | None = None,
) -> SignIn:
    """Whether the ``claude`` at that path is signed in for this environment."""
    found = local_signal(env, project)
    if found:
        return SignIn(True, found)
    cache = cache_dir / "claude-signin.json" if cache_dir is not None else None
    key = _cache_key(claude, env)
    if cache is not None:
        known = _read_json(cache)
        if (
            isinstance(known, dict)
            and known.get("key") == key
            and isinstance(known.get("at"), int | float)
            and 0 <= time.time() - known["at"] < STATUS_TTL_S
        ):
            return SignIn(True, str(known.get("how", "`claude auth status`")))
    answer = _ask_claude(claude, env)
    if answer.signed_in and cache is not None and cache.parent.is_dir():
        with contextlib.suppress(OSError):  # a cache, nothing more
            record = {"key": key, "at": time.time(), "how": answer.how}
            atomic_write(cache, json.dumps(record), durable=False)
    return answer


def check_signed_in(
    claude: str,
    env: Mapping[str, str],
    project: Path | None = None,
    cache_dir: Path | None = None,
) -> None:
    """Exit-3 error when Claude Code is definitely not signed in."""
    if status(claude, env, project, cache_dir).signed_in is False:
        raise EnvironmentProblem(NOT_SIGNED_IN)
