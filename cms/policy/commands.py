"""One simple command as the edit preset's rules see it, and the helpers that read its
words: the program's name, options and operands, git's global options, wrappers and
interpreters.
"""

from __future__ import annotations

import os

from cms.policy.places import Context
from cms.policy.shell import Redirect, Word

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Sequence

# ---------------------------------------------------------------------------- edit


class Call:
    """One simple command as the rules see it: after assignments and wrappers."""

    __slots__ = ("after_download", "argv", "ctx", "cwd", "redirects", "via_xargs")

    def __init__(
        self,
        argv: list[Word],
        redirects: list[Redirect],
        cwd: str | None,
        ctx: Context,
        via_xargs: bool = False,
        after_download: bool = False,
    ) -> None:
        self.argv = argv
        self.redirects = redirects
        self.cwd = cwd
        self.ctx = ctx
        self.via_xargs = via_xargs
        self.after_download = after_download

    @property
    def name(self) -> str:
        return program_name(self.argv[0]) if self.argv else ""

    @property
    def args(self) -> list[str]:
        return [w.text for w in self.argv[1:]]


def program_name(word: Word) -> str:
    text = word.value if word.value is not None else word.text
    return os.path.basename(text)


def options_and_operands(args: Sequence[Word], with_value: str = "") -> tuple[str, list[Word]]:
    """Short option letters (long ones as their words) and the operands of a command.

    ``with_value`` lists short options that take the next word as their value.
    """
    letters: list[str] = []
    operands: list[Word] = []
    it = iter(args)
    for word in it:
        text = word.text
        if text == "--":
            operands.extend(it)
            break
        if text.startswith("--"):
            letters.append(" " + text.split("=")[0] + " ")
        elif text.startswith("-") and len(text) > 1:
            for k, letter in enumerate(text[1:]):
                letters.append(letter)
                if letter in with_value:
                    if k == len(text) - 2:
                        next(it, None)
                    break
        else:
            operands.append(word)
    return "".join(letters), operands


def is_recursive(opts: str) -> bool:
    return "r" in opts or "R" in opts or " --recursive " in opts


# Each rule looks at one simple command and returns None (no match), "" (match: use
# the rule's reason) or a more specific reason.


DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "xh"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})


def interpreter(name: str) -> str | None:
    if name in _SHELLS:
        return "shell"
    if name.startswith("python") or name in ("pypy", "pypy3"):
        return "python"
    if name in ("perl", "ruby", "node", "nodejs", "php", "lua", "deno", "bun"):
        return "other"
    if name in ("source", ".", "eval"):
        return "source"
    return None


def plain_value(text: str) -> str | None:
    return None if "$" in text or "`" in text else text


def find_paths(args: Sequence[Word]) -> list[Word]:
    paths: list[Word] = []
    for word in args:
        if word.text.startswith(("-", "(", "!")) and word.text != "-":
            break
        paths.append(word)
    return paths or [Word(".", ".", ".")]


def below(word: Word) -> Word:
    """A stand-in for "some path below ``word``" (what find passes to -exec and -delete)."""
    value = None if word.value is None else os.path.join(word.value, "{}")
    return Word(word.raw, os.path.join(word.text, "{}"), value)


def split_git(args: Sequence[Word]) -> tuple[list[tuple[str, str]], str | None, list[Word]]:
    """git's global options (with values), its subcommand and the rest."""
    globals_: list[tuple[str, str]] = []
    i = 0
    while i < len(args) and args[i].text.startswith("-"):
        text = args[i].text
        if (
            text
            in (
                "-C",
                "-c",
                "--git-dir",
                "--work-tree",
                "--namespace",
                "--config-env",
                "--exec-path",
                "--super-prefix",
            )
            and "=" not in text
            and i + 1 < len(args)
        ):
            following = args[i + 1]
            globals_.append((text, following.text if following.value is None else following.value))
            i += 2
            continue
        opt, _, value = text.partition("=")
        globals_.append((opt, value))
        i += 1
    sub = None
    if i < len(args):
        sub = args[i].text if args[i].value is not None else "\x00" + args[i].raw
    return globals_, sub, list(args[i + 1 :])
