"""The edit preset's Bash: follow a command line through wrappers, nested shells,
``cd`` and substitutions, and ask the rules of :mod:`cms.policy.rules` of each simple
command.
"""

from __future__ import annotations

import os

from cms.policy.commands import DOWNLOADERS, Call, below, find_paths, interpreter, program_name
from cms.policy.places import Context
from cms.policy.rules import DESTRUCTIVE
from cms.policy.shell import BashSyntaxError, Script, Word, is_assignment, parse_bash, path_value

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping

#: Wrappers that run the rest of their arguments as a command: the short options that
#: take a value, and how many operands come before the command.
_WRAPPERS: Mapping[str, tuple[str, int]] = {
    "env": ("uCS", 0),
    "nice": ("n", 0),
    "nohup": ("", 0),
    "setsid": ("", 0),
    "time": ("fo", 0),
    "timeout": ("sk", 1),
    "stdbuf": ("ioe", 0),
    "ionice": ("cnp", 0),
    "chronic": ("", 0),
    "exec": ("a", 0),
    "command": ("", 0),
    "builtin": ("", 0),
    "xargs": ("ILnPsdEa", 0),
    "unbuffer": ("", 0),
    "busybox": ("", 0),
    "toybox": ("", 0),
}
_KEYWORDS = frozenset(
    {"{", "}", "!", "if", "then", "else", "elif", "fi", "while", "until", "do", "done", "esac"}
)
_MAX_NESTING = 4


def _unwrap(words: list[Word]) -> tuple[list[Word], bool, list[str]]:
    """The command a chain of wrappers finally runs, whether xargs feeds it, and
    strings the wrappers run as shell code (``env -S``)."""
    argv = list(words)
    via_xargs = False
    code: list[str] = []
    while argv:
        while argv and argv[0].text in _KEYWORDS and not argv[0].quoted:
            argv = argv[1:]
        while argv and is_assignment(argv[0]):
            argv = argv[1:]
        if not argv:
            break
        name = program_name(argv[0])
        if name not in _WRAPPERS:
            break
        with_value, skip = _WRAPPERS[name]
        via_xargs = via_xargs or name == "xargs"
        i = 1
        while i < len(argv):
            text = argv[i].text
            if text == "--":
                i += 1
                break
            if name == "env" and is_assignment(argv[i]):
                i += 1
                continue
            if not text.startswith("-") or text == "-":
                break
            if name == "command" and text in ("-v", "-V"):
                return [], via_xargs, code  # looks a program up, runs nothing
            if not text.startswith("--"):
                letters = text[1:]
                for k, letter in enumerate(letters):
                    if letter in with_value:
                        value = letters[k + 1 :]
                        if not value and i + 1 < len(argv):
                            i += 1
                            value = argv[i].text
                        if name == "env" and letter == "S":
                            code.append(value)
                        break
            i += 1
        argv = argv[i + skip :]
    return argv, via_xargs, code


def bash_problem_edit(command: str, ctx: Context, cwd: str) -> str | None:
    """Why the edit preset refuses a Bash command (None: allowed)."""
    if "(" in command and "{" in command:  # only then pay for the regex
        import re

        if re.search(r"([\w:.-]+)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1", command):
            return "a fork bomb"
    return _check_text(command, ctx, os.path.realpath(cwd), 0)


def _check_text(command: str, ctx: Context, cwd: str | None, level: int) -> str | None:
    if level > _MAX_NESTING:
        return _unreadable(command, ctx, "shell code nested too deeply to check")
    try:
        script = parse_bash(command, ctx.variables)
    except BashSyntaxError as exc:
        return _unreadable(command, ctx, f"cannot parse the command: {exc}")
    return _check_script(script, ctx, cwd, level)


_OBVIOUS = (
    ("sudo", "sudo/su/doas: privilege escalation is not allowed"),
    ("push", "git push publishes beyond the session; the parent pushes"),
)


def _unreadable(command: str, ctx: Context, why: str) -> str | None:
    """A command the reader cannot follow: refused, unless the sandbox holds the
    child's commands; then only the words of what the sandbox does not judge (a
    privilege switch, a push) still refuse it."""
    if not ctx.sandboxed:
        return why
    words = set(command.replace("(", " ").replace(")", " ").replace(";", " ").split())
    for word, reason in _OBVIOUS:
        if word in words:
            return f"{reason}; {why}"
    return None


def _check_script(script: Script, ctx: Context, cwd: str | None, level: int) -> str | None:
    stack: list[str | None] = [cwd]
    download = False
    for cmd in script.commands:
        del stack[cmd.depth + 1 :]
        while len(stack) < cmd.depth + 1:
            stack.append(stack[-1])
        here = stack[-1]
        for word in [*cmd.words, *(r.target for r in cmd.redirects)]:
            for sub in word.subs:
                why = _check_script(sub, ctx, here, level + 1)
                if why:
                    return why
        if not cmd.piped:
            download = False
        argv, via_xargs, code = _unwrap(cmd.words)
        for text in code:
            why = _check_text(text, ctx, here, level + 1)
            if why:
                return why
        if argv and argv[0].text in ("for", "select", "case", "function") and not argv[0].quoted:
            continue  # only words and patterns; the body is separate commands
        call = Call(argv, cmd.redirects, here, ctx, via_xargs, download)
        why = _check_call(call, level)
        if why:
            return why
        if call.name in DOWNLOADERS:
            download = True
        if call.name in ("cd", "pushd"):
            stack[-1] = _changed_dir(call, ctx)
        elif call.name == "popd":
            stack[-1] = None
    return None


def _changed_dir(call: Call, ctx: Context) -> str | None:
    operands = [w for w in call.argv[1:] if not w.text.startswith("-") or w.text == "-"]
    if not operands:
        return ctx.home
    value = path_value(operands[0], call.cwd)
    if value is None or operands[0].text == "-":
        return None
    base = call.cwd
    if base is None and not value.startswith("/"):
        return None
    return os.path.realpath(os.path.join(base or "/", value))


def _check_call(call: Call, level: int) -> str | None:
    if call.argv and call.argv[0].value is None:
        if call.ctx.sandboxed:
            return None  # the sandbox holds whatever it turns out to be
        return f"cannot tell which program {call.argv[0].raw} runs; write its name"
    for rule in DESTRUCTIVE:
        why = rule.check(call)
        if why is not None:
            return why or rule.reason
    # Commands that run other commands: look inside one level at a time.
    name, args = call.name, call.argv[1:]
    if interpreter(name) == "shell":
        for k, word in enumerate(args):
            if word.text.startswith("-") and not word.text.startswith("--") and "c" in word.text:
                if k + 1 < len(args):
                    return _check_text(args[k + 1].text, call.ctx, call.cwd, level + 1)
                break
            if not word.text.startswith("-"):
                break
    elif name == "eval":
        return _check_text(" ".join(w.text for w in args), call.ctx, call.cwd, level + 1)
    elif name == "watch":  # watch [-n SECS] [options] COMMAND...: runs it with sh -c
        k = 0
        while k < len(args) and args[k].text.startswith("-"):
            k += 2 if args[k].text in ("-n", "--interval", "-d") else 1
        code = " ".join(w.text for w in args[k:])
        return _check_text(code, call.ctx, call.cwd, level + 1) if code else None
    elif name == "find":
        paths = find_paths(args)
        for k, word in enumerate(args):
            if word.text in ("-exec", "-execdir", "-ok", "-okdir"):
                inner: list[Word] = []
                for w in args[k + 1 :]:
                    if w.text in (";", "+"):
                        break
                    inner.extend([below(p) for p in paths] if w.text == "{}" else [w])
                argv, via_xargs, _ = _unwrap(inner)
                nested = Call(argv, [], call.cwd, call.ctx, via_xargs)
                why = _check_call(nested, level + 1) if argv else None
                if why:
                    return why
    return None
