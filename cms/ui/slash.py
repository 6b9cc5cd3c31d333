"""The plugin's argument-taking slash commands (``/cms:delegate``, ``/cms:send``, ...),
run from the UserPromptSubmit hook: ``python -m cms.ui.slash user-prompt-submit``.

The prompt arrives as JSON on stdin, so what the user typed reaches cms as data: no
shell ever sees it (a ``!`` pre-execution line with ``$ARGUMENTS`` would hand it to a
shell). A command that runs a turn (delegate, send, continue, resume, fork) only starts
it and returns at once (:func:`cms.ops.run_and_wait` with no wait): a hook that waited
would hold the user's Claude Code on "running UserPromptSubmit hook", where Esc is the
only way out. The context it returns then tells the parent model to wait in a tool call
of its own (``cms wait NAME`` through the plugin's launcher, in Bash), which the user
sees running and may interrupt, unless ``--background`` was asked.

:func:`parse_command` reads the command and its options; :func:`run` calls :mod:`cms.ops`
exactly as the CLI would and returns the text put into the parent
model's context: what happened, the session's status, cost and response, or the
one-line error and what to do. It never raises; the hook prints nothing for a prompt
that is not a cms command.

This runner needs the whole of cms (the API), so it belongs with the UI, not with the
standard-library hooks of :mod:`cms.hooks`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cms import ops
from cms.base import paths
from cms.base.errors import BadInput, CmsError
from cms.base.vocab import usd
from cms.engine.models import SessionRecord
from cms.hooks import events
from cms.hooks.events import read_event
from cms.hooks.parent import told_of_endings as tell_parent

#: How long one wait call that the parent model makes lasts at most (seconds): under
#: the 120 s after which Claude Code may move a Bash command (or an MCP call) to the
#: background. A wait that runs out says the session still runs, and is made again.
WAIT_CALL_S = 100
#: Longest response text put into the parent's context (characters).
CONTEXT_LIMIT = 20_000

COMMANDS = ("delegate", "send", "continue", "result", "abort", "fork", "resume", "finish")
#: The options a slash command takes, and the session field each one sets.
VALUE_OPTIONS = {
    "--name": "name",
    "--preset": "preset",
    "--model": "model",
    "--max-cost": "max_cost_usd",
    "--max-turns": "max_turns",
    "--timeout": "timeout_s",
    "--cwd": "cwd",
    "--add-cost": "add_cost_usd",
    "--add-turns": "add_turns",
    "--after": "after",
    "--host": "host",
}
#: Options that may be given more than once; their values add up (a,b,c).
REPEATABLE = {"--after"}
FLAG_OPTIONS = {"--background", "--worktree", "--fresh", "--no-sandbox"}
_SESSION_OPTIONS = ("preset", "model", "max_cost_usd", "max_turns", "timeout_s", "cwd", "host")

_TOKEN = re.compile(r"\s*(\S+)")


def parse_command(prompt: str, bare_ok: bool) -> tuple[str, dict[str, str | bool], str] | None:
    """``/cms:delegate --preset x TEXT`` -> ("delegate", {"--preset": "x"}, "TEXT").

    Options are read only before the text, as whitespace-separated words (``--`` ends
    them); the text is the rest of the prompt from its first word on, byte for byte:
    quotes, ``$(...)``, backticks, ``;`` and newlines stay text. None when the prompt
    is not a cms command.
    """
    head = re.match(r"\s*/(\S+)", prompt)
    if head is None:
        return None
    word = head.group(1)
    if word.startswith("cms:"):
        command = word[4:]
    elif bare_ok and word == "delegate":
        command = word
    else:
        return None
    if command not in COMMANDS:
        return None
    options: dict[str, str | bool] = {}
    pos = head.end()
    text = ""
    while True:
        token = _TOKEN.match(prompt, pos)
        if token is None:
            break
        word = token.group(1)
        key, eq, inline = word.partition("=")
        if word == "--":
            text = prompt[token.end() :].lstrip(" \t\n")
            break
        if word in FLAG_OPTIONS:
            options[word] = True
            pos = token.end()
        elif eq and key in VALUE_OPTIONS:
            _set(options, key, inline)
            pos = token.end()
        elif word in VALUE_OPTIONS:
            value = _TOKEN.match(prompt, token.end())
            _set(options, word, value.group(1) if value else "")
            pos = value.end() if value else token.end()
        else:
            text = prompt[token.start(1) :]
            break
    return command, options, text


def _set(options: dict[str, str | bool], option: str, value: str) -> None:
    earlier = options.get(option)
    if option in REPEATABLE and isinstance(earlier, str) and earlier:
        value = f"{earlier},{value}"
    options[option] = value


def _bare_delegate_is_ours(env: Mapping[str, str], cwd: str | None) -> bool:
    """A bare /delegate is cms's only when the command file there is the one setup wrote."""
    marker = "cms-setup: managed"
    homes = [paths.claude_config_dir(env) / "commands"]
    if cwd:
        # Project scope: the project's own .claude/commands, from any folder inside it.
        root = paths.find_project_root(Path(cwd))
        homes[:0] = [Path(cwd) / ".claude" / "commands", root / ".claude" / "commands"]
    for folder in homes:
        try:
            if marker in (folder / "delegate.md").read_text(encoding="utf-8"):
                return True
        except OSError:
            continue
    return False


def wait_command(name: str, env: Mapping[str, str]) -> str:
    """The Bash command that waits for session ``name`` and prints its result: the
    plugin's launcher (which finds cms's Python by itself), so it works without ``cms``
    on PATH."""
    root = paths.plugin_root() or paths.PACKAGE_PARENT
    parts = [str(root / "scripts" / "cms-run")]
    data = env.get("CLAUDE_PLUGIN_DATA")
    if data:
        parts += ["--data", data]
    parts += ["wait", name, "--timeout", str(WAIT_CALL_S)]
    return " ".join(shlex.quote(part) for part in parts)


def describe(
    record: SessionRecord, verb: str, wait: str | None = None, background: bool = False
) -> str:
    """What the parent model reads: the session's state, and for a turn that runs, how
    to wait for it (``wait``: the command) or that it runs in the background."""
    lines = [
        f"cms {verb}: session {record.name} is {record.status.value} "
        f"(preset {record.preset.value}, cost {usd(record.cost_usd)}, turns {record.turns})."
    ]
    waiting = bool(record.after) and not record.after_met
    state = f"It starts once {', '.join(record.after)} have completed. " if waiting else ""
    check = f"/cms:result {record.name} (or `cms wait {record.name}`)"
    if record.status.active and background:
        lines.append(
            f"{state}It runs in the background, as asked: do not wait for it. "
            f"The user can check on it with {check}."
        )
    elif record.status.active and wait is None:
        lines.append(f"{state or 'It is still running. '}Check it later with {check}.")
    elif record.status.active:
        lines.append(
            f"{state or 'It has started and runs now. '}Wait for its result with the Bash "
            f"tool: run `{wait}` (it prints the result when the session ends; the user "
            f"sees it running and may press Esc). If it says the session is still "
            f"running, run it again."
        )
    if record.notice:
        lines.append(f"Note: {record.notice}")
    if record.error:
        lines.append(f"Error: {record.error}")
    if record.response:
        lines.append(f"Response of {record.name}:")
        lines.append(record.response)
    return "\n".join(lines)


def _split_name(text: str) -> tuple[str, str]:
    match = re.match(r"\s*(\S+)\s?", text)
    if match is None:
        raise BadInput("give the session's name first")
    return match.group(1), text[match.end() :]


def _field(options: Mapping[str, str | bool], field: str) -> str | None:
    """The value given for the option that sets ``field`` (None: not given)."""
    for option, name in VALUE_OPTIONS.items():
        value = options.get(option)
        if name == field and isinstance(value, str) and value:
            return value
    return None


def run(
    command: str,
    options: Mapping[str, str | bool],
    text: str,
    event: Mapping[str, Any],
    env: Mapping[str, str],
) -> str:
    """Run one slash command; the outcome (or error) as text for the model."""
    child_env = dict(env)
    parent = event.get("session_id")
    if isinstance(parent, str) and parent:
        child_env["CLAUDE_CODE_SESSION_ID"] = parent
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else os.getcwd()
    try:
        project = ops.open_project(cwd, child_env)
        ops.reconcile(project)
        return _dispatch(command, options, text, project, env)
    except CmsError as exc:
        return f"cms {command} failed: {exc.message}"


def _dispatch(
    command: str,
    options: Mapping[str, str | bool],
    text: str,
    project: ops.Project,
    env: Mapping[str, str],
) -> str:
    background = bool(options.get("--background"))

    def turn(start: Any, verb: str) -> str:
        # Start, and return at once: the parent model waits in a tool call of its own.
        record = ops.run_and_wait(project, start, wait_s=0, background=background)
        return describe(record, verb, wait_command(record.name, env), background)

    if command == "delegate":
        settings: dict[str, Any] = {f: _field(options, f) for f in _SESSION_OPTIONS}
        settings["worktree"] = bool(options.get("--worktree"))
        settings["after"] = _field(options, "after")
        settings["sandbox"] = not options.get("--no-sandbox")
        opts = ops.make_options(settings)
        name = _field(options, "name")
        return turn(lambda p: ops.delegate(p, text, name, opts), "delegate")
    name, rest = _split_name(text)
    if command == "send":
        return turn(lambda p: ops.send_message(p, name, rest), "send")
    if command == "continue":
        add_cost = _number(_field(options, "add_cost_usd"), "--add-cost", float)
        add_turns = _number(_field(options, "add_turns"), "--add-turns", int)
        return turn(lambda p: ops.continue_task(p, name, rest, add_cost, add_turns), "continue")
    if command == "result":
        return describe(ops.get_session(project, name, mark_read=True), "result")
    if command == "abort":
        return describe(ops.abort_session(project, name), "abort")
    if command == "finish":
        return describe(ops.finish_session(project, name), "finish")
    if command == "resume":
        fresh = bool(options.get("--fresh"))
        return turn(lambda p: ops.resume_session(p, name, rest or None, fresh=fresh), "resume")
    if command == "fork":
        new, message = _split_name(rest)
        return turn(lambda p: ops.fork_session(p, name, new, message or None), "fork")
    raise BadInput(f"unknown command {command!r}")


def _number(value: str | None, option: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise BadInput(f"invalid {option} {value!r}: give a number") from None


def user_prompt_submit(raw: bytes, env: Mapping[str, str]) -> str:
    """The hook's output for one prompt: the command's outcome as additional context,
    or nothing when the prompt is not a cms command."""
    event = read_event(raw)
    prompt = event.get("prompt")
    if not isinstance(prompt, str):
        return ""
    cwd = event.get("cwd") if isinstance(event.get("cwd"), str) else None
    parsed = parse_command(prompt, bare_ok=True)
    if parsed is None:
        return tell_parent(event, env)
    command, options, text = parsed
    if not prompt.lstrip().startswith("/cms:") and not _bare_delegate_is_ours(env, cwd):
        return tell_parent(event, env)
    context = run(command, options, text, event, env)
    output = {
        "hookSpecificOutput": {
            "hookEventName": "UserPromptSubmit",
            "additionalContext": context[:CONTEXT_LIMIT],
        }
    }
    return json.dumps(output)


def main(argv: list[str] | None = None) -> int:
    """``python -m cms.ui.slash user-prompt-submit``: the hook JSON on stdin; fails
    open like the other hooks of the user's session."""
    return events.main(argv)


if __name__ == "__main__":
    sys.exit(main())
