"""The review preset's Bash: read-only git, optionally piped into plain text filters.

Anything the checker cannot prove harmless (variables, substitutions, redirections,
globs, subshells, config switches, options that write or run programs) is refused.
"""

from __future__ import annotations

from cms.policy.shell import BashSyntaxError, is_assignment, parse_bash

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

#: git subcommands that only read (review preset; and in edit, git on a repository
#: outside the tree is allowed only for these).
GIT_READ = frozenset(
    {
        "diff",
        "log",
        "show",
        "status",
        "blame",
        "shortlog",
        "rev-parse",
        "rev-list",
        "ls-files",
        "ls-tree",
        "cat-file",
        "merge-base",
        "describe",
    }
)
#: git global options that change nothing but where or how git reads.
_GIT_SAFE_GLOBALS = frozenset(
    {
        "--no-pager",
        "-P",
        "--no-optional-locks",
        "--literal-pathspecs",
        "--glob-pathspecs",
        "--noglob-pathspecs",
        "--icase-pathspecs",
        "--no-replace-objects",
    }
)
#: Options of the read subcommands that write files or run programs. git accepts any
#: unambiguous prefix of a long option, so a prefix of these is refused too.
_GIT_BAD_OPTIONS: Mapping[str, str] = {
    "--output": "it writes a file",
    "--ext-diff": "it runs an external diff program",
    "--textconv": "it runs a conversion program",
    "--filters": "it runs filter programs",
    "--open-files-in-pager": "it runs a program",
}
#: Real options that happen to be prefixes of the ones above.
_GIT_EXACT_OPTIONS = frozenset({"--text", "--filter"})
#: Filters a review may pipe git's output into (none can write a file or run a program
#: with the options the checker lets through).
REVIEW_FILTERS = frozenset(
    {"head", "tail", "wc", "grep", "egrep", "fgrep", "cut", "tr", "sort", "uniq", "cat", "nl"}
)


# Plain classes with __slots__ rather than dataclasses: this module is imported on every
# tool call of every child, and each @dataclass costs a fraction of a millisecond there.


# -------------------------------------------------------------------------- review


def bash_problem_review(command: str) -> str | None:
    """Why a Bash command is not read-only git (None: it is)."""
    if "\n" in command or "\r" in command:
        return "one command per call: newlines are not allowed"
    try:
        script = parse_bash(command)
    except BashSyntaxError as exc:
        return f"cannot parse the command: {exc}"
    if not script.commands:
        return "empty command"
    for cmd in script.commands:
        if cmd.depth:
            return "subshells are not allowed"
        if cmd.background:
            return "background jobs are not allowed"
        for word in cmd.words:
            if word.subs:
                return "command substitution is not allowed"
            if word.expanded:
                return f"variable expansion {word.raw} is not allowed"
            if word.glob or word.brace:
                return f"unquoted pattern {word.raw} is not allowed; quote it"
        for redirect in cmd.redirects:
            harmless = not redirect.writes and redirect.op in (">&", "<&")
            to_null = redirect.op in (">", "&>") and redirect.target.text == "/dev/null"
            if not (harmless or to_null) or redirect.target.expanded:
                return f"redirection {redirect.fd}{redirect.op} is not allowed"
        if not cmd.words:
            return "a redirection alone is not allowed"
        if is_assignment(cmd.words[0]):
            return "environment-variable prefixes are not allowed"
        args = [w.text for w in cmd.words]
        if cmd.piped and args[0] in REVIEW_FILTERS:
            why = _filter_problem(args)
        elif args[0] == "git":
            why = _git_read_problem(args[1:])
        else:
            why = (
                f"{args[0]} is not read-only git; allowed: git "
                + "/".join(sorted(("diff", "log", "show", "status", "blame")))
                + " and similar, optionally piped into head/grep/wc/..."
            )
        if why:
            return why
    return None


def _filter_problem(args: Sequence[str]) -> str | None:
    name = args[0]
    if name == "sort":
        for arg in args[1:]:
            if arg.startswith(("--output", "--compress-program")) or (
                arg.startswith("-") and not arg.startswith("--") and "o" in arg
            ):
                return "sort -o writes a file"
    if name == "uniq" and len([a for a in args[1:] if a == "-" or a[:1] != "-"]) > 1:
        return "uniq with an output file writes it"
    return None


def _git_read_problem(args: Sequence[str]) -> str | None:
    i = 0
    while i < len(args) and args[i].startswith("-"):
        arg = args[i]
        if arg == "-C" and i + 1 < len(args):
            i += 2
            continue
        if arg not in _GIT_SAFE_GLOBALS:
            return f"git option {arg.split('=')[0]} is not allowed (it can change what git runs)"
        i += 1
    if i >= len(args):
        return "git needs a read-only subcommand"
    sub = args[i]
    if sub not in GIT_READ:
        return f"git {sub} is not read-only (allowed: {', '.join(sorted(GIT_READ))})"
    for arg in args[i + 1 :]:
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        if name in _GIT_EXACT_OPTIONS:
            continue
        for bad, why in _GIT_BAD_OPTIONS.items():
            if name == bad or (len(name) > 3 and bad.startswith(name)):
                return f"git {sub} {name} is not allowed: {why}"
    return None
