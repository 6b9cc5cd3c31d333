"""The edit preset's destructive-command rules: one table (:data:`DESTRUCTIVE`), each
rule a function of one simple command with the reason the child reads.

A rule returns None (no match), "" (match: the rule's reason) or a more specific
reason. Where the OS sandbox holds the child's commands (``Context.sandboxed``), a
rule that cannot tell what a command touches leaves it to the sandbox.
"""

from __future__ import annotations

import os

from cms.policy.commands import (
    DOWNLOADERS,
    Call,
    below,
    find_paths,
    interpreter,
    is_recursive,
    options_and_operands,
    plain_value,
    program_name,
    split_git,
)
from cms.policy.places import HARMLESS_DEVICES, inside
from cms.policy.review import GIT_READ
from cms.policy.shell import Word, expand_braces, path_value

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence


def _privilege(call: Call) -> str | None:
    return "" if call.name in {"sudo", "su", "doas", "pkexec", "runuser"} else None


def _git_push(call: Call) -> str | None:
    if call.name != "git":
        return None
    globals_, sub, _ = split_git(call.argv[1:])
    if sub in ("push", "send-pack"):
        return ""
    if sub is not None and "\x00" in sub:
        return "cannot tell which git command runs; write it literally"
    for opt, value in globals_:
        if opt == "-c" and value.split("=", 1)[0].startswith("alias."):
            return "a git alias defined on the command line can hide a push"
    return None


def _short_flag(args: Sequence[str], letters: str) -> bool:
    """Any of ``letters`` among the short options in ``args`` (``-fdx`` counts)."""
    return any(
        a.startswith("-") and not a.startswith("--") and any(c in letters for c in a[1:])
        for a in args
    )


def _git_destructive(call: Call) -> str | None:
    """git commands that throw away work the user may not have kept elsewhere:
    uncommitted changes, branches, stashes, reflogs, history."""
    if call.name != "git":
        return None
    _, sub, rest = split_git(call.argv[1:])
    args = [w.text for w in rest]
    long = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    if sub == "reset" and long & {"--hard", "--merge", "--keep"}:
        return "git reset --hard throws away uncommitted changes; commit or stash them instead"
    if sub == "clean" and (_short_flag(args, "f") or "--force" in long):
        return "git clean -f deletes untracked files for good"
    if sub == "checkout" and (_short_flag(args, "f") or "--force" in long):
        return "git checkout --force throws away uncommitted changes"
    # Whether the branch holds work found nowhere else, the hook cannot tell (one made
    # a moment ago at HEAD holds none); under the sandbox its deletion touches only the
    # tree's own repository, so it is left to the sandbox.
    if (
        sub == "branch"
        and not call.ctx.sandboxed
        and (
            _short_flag(args, "D")
            or (
                (_short_flag(args, "d") or "--delete" in long)
                and (_short_flag(args, "f") or "--force" in long)
            )
        )
    ):
        return "git branch -D deletes a branch with unmerged work"
    if sub == "stash" and args[:1] in (["drop"], ["clear"]):
        return "git stash drop/clear deletes stashed work"
    if sub == "reflog" and args[:1] in (["expire"], ["delete"]):
        return "expiring the reflog removes the way back to lost commits"
    if sub == "update-ref" and ("-d" in args or "--stdin" in args):
        return "git update-ref -d deletes a ref"
    if sub in ("filter-branch", "filter-repo", "prune") or (sub == "gc" and "--prune" in long):
        return f"git {sub} rewrites or prunes history"
    if (
        sub == "worktree"
        and args[:1] == ["remove"]
        and (_short_flag(args, "f") or "--force" in long)
    ):
        return "git worktree remove --force deletes a worktree with its changes"
    return None


def _reads_program_from_stdin(call: Call) -> bool:
    kind = interpreter(call.name)
    if kind is None or kind == "source":
        return kind == "source" and call.args[:1] in ([], ["/dev/stdin"], ["-"])
    inline = {"shell": "c", "python": "cm", "other": "eEpr"}[kind]
    for arg in call.args:
        if arg == "-" or arg == "/dev/stdin":
            return True
        if arg.startswith("--"):
            if arg.split("=")[0] in ("--eval", "--print", "--command"):
                return False
            continue
        if arg.startswith("-"):
            if kind == "shell" and "s" in arg[1:]:
                return True
            if any(letter in inline for letter in arg[1:]):
                return False
            continue
        return False  # a script file: stdin is only its data
    return True


def _mentions_download(words: Iterable[Word]) -> bool:
    for word in words:
        for sub in word.subs:
            for cmd in sub.commands:
                names = {program_name(w) for w in cmd.words[:3]}
                if names & DOWNLOADERS or _mentions_download([*cmd.words]):
                    return True
    return False


def _download_exec(call: Call) -> str | None:
    if interpreter(call.name) is None:
        return None
    if call.after_download and _reads_program_from_stdin(call):
        return ""
    if _mentions_download(call.argv[1:]) or _mentions_download(r.target for r in call.redirects):
        return ""
    return None


_DISK_TOOLS = frozenset({"mke2fs", "mkswap", "fdisk", "sfdisk", "cfdisk", "parted", "wipefs"})


def _disk(call: Call) -> str | None:
    if call.name in _DISK_TOOLS or call.name.startswith("mkfs"):
        return ""
    if call.name == "dd":
        for arg in call.argv[1:]:
            if arg.text.startswith("of=") and (arg.value or arg.text)[3:].startswith("/dev/"):
                target = (arg.value or arg.text)[3:]
                if target not in HARMLESS_DEVICES:
                    return ""
    return None


_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff", "kexec"})


def _power(call: Call) -> str | None:
    if call.name in _POWER:
        return ""
    if call.name in ("init", "telinit") and call.args[:1] in (["0"], ["6"]):
        return ""
    if call.name == "systemctl" and set(call.args) & {
        "poweroff",
        "reboot",
        "halt",
        "suspend",
        "hibernate",
        "kexec",
        "emergency",
        "rescue",
    }:
        return ""
    return None


def _broad_kill(call: Call) -> str | None:
    # A child may stop a process it started (kill PID) but not every process of the
    # user, whole process groups, or processes picked by name: those can hit the
    # parent session, other children or cms's own supervisors.
    if call.name in ("killall", "pkill", "killall5", "skill", "slay"):
        return ""
    if call.name != "kill":
        return None
    args = call.args
    pids: list[str] = []
    signal_seen = False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            pids += args[i + 1 :]
            break
        if arg.startswith("-") and not signal_seen and not pids:
            signal_seen = True  # -9, -TERM, -s SIG, -n NUM, -l
            i += 2 if arg in ("-s", "-n") else 1
            continue
        pids.append(arg)
        i += 1
    if any(p == "0" or (p.startswith("-") and p[1:].isdigit()) for p in pids):
        return "kill 0 and negative pids hit whole process groups (-1: every process)"
    return None


#: The modules that are cms's command line (today's and an older cms's).
_CMS_MODULES = frozenset({"cms.ui.cli", "cms.ui.entry", "cms.cli"})


def _cms_limits(call: Call) -> str | None:
    args = call.args
    if interpreter(call.name) == "python":  # python -m cms.ui.cli budget ...: cms itself
        module = [i for i, a in enumerate(args) if a.removeprefix("-m") in _CMS_MODULES]
        args = args[module[0] + 1 :] if module else []
    elif call.name not in ("cms", "cms-run"):
        return None
    if "budget" in args:
        after = args[args.index("budget") + 1 :]
        if any(a.startswith(("--max-cost", "--max-parallel", "--max-depth")) for a in after):
            return ""
    if "sandbox" in args:
        after = args[args.index("sandbox") + 1 :]
        if any(a.startswith(("--allow-domain", "--deny-domain")) for a in after):
            return ""
    return None


#: Commands that only read what they are given; they may name cms state.
_READERS = frozenset(
    {
        "cat",
        "head",
        "tail",
        "less",
        "more",
        "ls",
        "stat",
        "file",
        "wc",
        "grep",
        "egrep",
        "fgrep",
        "rg",
        "jq",
        "du",
        "tree",
        "realpath",
        "readlink",
        "basename",
        "dirname",
        "echo",
        "printf",
        "test",
        "[",
        "[[",
        "cd",
        "pushd",
        "diff",
        "cmp",
        "md5sum",
        "sha1sum",
        "sha256sum",
        "true",
        "false",
    }
)
_FIND_ACTIONS = frozenset(
    {"-delete", "-exec", "-execdir", "-ok", "-okdir", "-fprint", "-fprint0", "-fprintf", "-fls"}
)


def _names_state(call: Call) -> str | None:
    if not call.argv:
        return None
    if call.name in _READERS or (
        call.name == "find" and not any(a in _FIND_ACTIONS for a in call.args)
    ):
        return None
    ctx = call.ctx
    cwd_in_state = call.cwd is not None and ctx.kind(call.cwd) == "state"
    for word in call.argv[1:]:
        if "CMS_HOME" in word.raw:
            return ""
        known = path_value(word, call.cwd)
        value = word.text if known is None else known
        if any(_contains_path(value, spelling) for spelling in ctx.state_spellings):
            return ""
        if word.text.startswith("-") and "=" not in word.text:
            continue
        value = value.split("=", 1)[1] if word.text.startswith("-") else value
        if cwd_in_state and not value.startswith("/") and value:
            return ""
        if "/" in value and known is not None:
            base = call.cwd or ctx.worktree
            if ctx.kind(os.path.realpath(os.path.join(base, value))) == "state":
                return ""
    return None


def _contains_path(text: str, path: str) -> bool:
    start = text.find(path)
    while start >= 0:
        end = start + len(path)
        if end == len(text) or not (text[end].isalnum() or text[end] in "._-"):
            return True
        start = text.find(path, start + 1)
    return False


_HAS_VALUE: Mapping[str, str] = {
    "rm": "",
    "rmdir": "",
    "unlink": "",
    "shred": "ns",
    "touch": "rdt",
    "mkdir": "m",
    "truncate": "sr",
    "tee": "",
    "cp": "tS",
    "mv": "tS",
    "install": "mogtS",
    "ln": "tS",
    "chmod": "",
    "chown": "",
    "chgrp": "",
    "rsync": "efT",
    "scp": "cFiJloPS",
}


#: What a command writes, each with "is it a recursive delete".
Targets = list[tuple[Word, bool]]


def _file_command_targets(call: Call) -> Targets:
    """rm, cp, mv, touch, mkdir, chmod, ... (see :data:`_HAS_VALUE`)."""
    name, args = call.name, call.argv[1:]
    opts, operands = options_and_operands(args, _HAS_VALUE[name])
    target_dir = [
        w
        for w, prev in zip(args, [None, *args], strict=False)
        if w.text.startswith("--target-directory=") or (prev is not None and prev.text == "-t")
    ]
    if name in ("rm", "rmdir", "unlink", "shred", "touch", "mkdir", "truncate", "tee", "mv"):
        deletes_tree = name == "rm" and is_recursive(opts)
        return [(w, deletes_tree) for w in operands + target_dir]
    if name in ("cp", "install", "ln", "rsync", "scp"):
        if target_dir:
            return [(w, False) for w in target_dir]
        if name == "install" and "d" in opts:
            return [(w, False) for w in operands]  # install -d DIR...
        return [(operands[-1], False)] if len(operands) >= 2 else []
    # chmod, chown, chgrp: the first operand is the mode or owner, unless --reference
    reference = any(a.text.startswith("--reference") for a in args)
    return [(w, False) for w in operands[0 if reference else 1 :]]


def _in_place_targets(call: Call) -> Targets:
    """sed -i and perl -i rewrite the files they are given."""
    opts, operands = options_and_operands(call.argv[1:], "efl" if call.name == "sed" else "eElIMmx")
    if "i" not in opts and " --in-place " not in opts:
        return []
    inline_script = "e" in opts or "f" in opts or "E" in opts
    return [(w, False) for w in operands[0 if inline_script else 1 :]]


def _tar_targets(call: Call) -> Targets:
    """tar -x writes into -C DIR (default: the current folder)."""
    args = call.argv[1:]
    first = args[0].text if args else ""
    extracting = (
        any(a.text in ("-x", "--extract", "--get") for a in args)
        or (not first.startswith("-") and "x" in first)
        or (first.startswith("-") and not first.startswith("--") and "x" in first)
    )
    if not extracting:
        return []
    folders: list[Word] = []
    for k, word in enumerate(args):
        if word.text in ("-C", "--directory") and k + 1 < len(args):
            folders.append(args[k + 1])
        elif word.text.startswith("--directory="):
            value = None if word.value is None else word.value.split("=", 1)[1]
            folders.append(Word(word.raw, word.text.split("=", 1)[1], value))
    return [(w, False) for w in folders or [Word(".", ".", ".")]]


def _unzip_targets(call: Call) -> Targets:
    args = call.argv[1:]
    return [(args[k + 1], False) for k, word in enumerate(args[:-1]) if word.text == "-d"]


def _dd_targets(call: Call) -> Targets:
    return [
        (Word(w.raw, w.text[3:], None if w.value is None else w.value[3:], glob=w.glob), False)
        for w in call.argv[1:]
        if w.text.startswith("of=")
    ]


def _find_targets(call: Call) -> Targets:
    """find -delete deletes below its paths; -fprint and the like write a file."""
    args = call.argv[1:]
    targets: Targets = []
    if "-delete" in [a.text for a in args]:
        targets += [(below(w), False) for w in find_paths(args)]
    for k, word in enumerate(args[:-1]):
        if word.text in ("-fprint", "-fprint0", "-fprintf", "-fls"):
            targets.append((args[k + 1], False))
    return targets


def _git_targets(call: Call) -> Targets:
    """git on another repository (-C, --git-dir), clone and worktree add."""
    globals_, sub, rest = split_git(call.argv[1:])
    targets: Targets = []
    if sub not in GIT_READ:
        for opt, value in globals_:
            if opt in ("-C", "--git-dir", "--work-tree"):
                targets.append((Word(value, value, plain_value(value)), False))
    operands = [w for w in rest if not w.text.startswith("-")]
    if sub == "clone" and len(operands) >= 2:
        targets.append((operands[-1], False))
    if sub == "worktree" and operands[:1] and operands[0].text == "add" and operands[1:]:
        targets.append((operands[1], False))
    return targets


#: The commands whose operands the reader follows to what they write.
_TARGETS: Mapping[str, Callable[[Call], Targets]] = {
    **dict.fromkeys(_HAS_VALUE, _file_command_targets),
    "sed": _in_place_targets,
    "perl": _in_place_targets,
    "tar": _tar_targets,
    "unzip": _unzip_targets,
    "dd": _dd_targets,
    "find": _find_targets,
    "git": _git_targets,
}


def _write_targets(call: Call) -> Targets:
    """The paths a command writes: its redirections and what its operands name."""
    targets: Targets = [(r.target, False) for r in call.redirects if r.writes]
    extract = _TARGETS.get(call.name) if call.argv else None
    return targets + extract(call) if extract is not None else targets


def _target_problem(word: Word, recursive: bool, call: Call) -> str | None:
    """Why writing (or with ``recursive``, deleting a tree at) ``word`` is refused."""
    ctx = call.ctx
    full = path_value(word, call.cwd)
    if full is None:
        if ctx.sandboxed:
            return None  # the sandbox decides what it may write
        return f"cannot tell where {word.raw} points; write the path literally"
    values = expand_braces(full) if word.brace else [full]
    for value in values:
        if call.name in ("rsync", "scp") and ":" in value.split("/", 1)[0]:
            return "it copies to another machine"
        normal = os.path.normpath(value) if value.startswith("/") else ""
        if normal in HARMLESS_DEVICES or normal.startswith("/dev/fd/"):
            continue
        pattern = False
        glob_part = ""
        if word.glob:
            # A pattern writes only below the folder before its first wildcard.
            parts = value.split("/")
            for k, part in enumerate(parts):
                if any(g in part for g in "*?["):
                    if part.startswith(".") and _fnmatch("..", part):
                        return f"{word.raw} also matches '..' in some shells"
                    value = "/".join(parts[:k]) or ("/" if value.startswith("/") else ".")
                    pattern, glob_part = True, part
                    break
        if not value.startswith("/"):
            if call.cwd is None:
                if ctx.sandboxed:
                    return None
                return f"cannot tell which folder {word.raw} is in after cd"
            value = os.path.join(call.cwd, value)
        path = os.path.realpath(value)
        kind = ctx.kind(path)
        if kind == "state":
            return "it writes into cms state; a child must not edit its own record or budget"
        if kind == "settings":
            return "Claude Code settings could switch the cms hook off"
        if kind == "git-internal":
            return "git hooks and config run code in the user's next git command"
        # rm -f /tmp/build-*.log: files directly in a temp folder are fine; rm -r is not
        if kind == "outside" or (kind == "temp-root" and (recursive or not pattern)):
            what = "rm -r" if recursive else "it writes"
            return f"{what} outside the working tree {ctx.worktree}"
        if pattern and _pattern_reaches(path, glob_part, ctx.state):
            return "the pattern can match cms state"
        if kind == "tree-root" and not pattern and (recursive or call.name == "mv"):
            return "it would remove the whole working tree"
        if kind == "git-dir" and recursive and not pattern:
            return "it would delete the repository's .git"
    return None


def _pattern_reaches(folder: str, glob_part: str, roots: Iterable[str]) -> bool:
    """Can ``folder/<glob_part>`` name a folder on the way to one of ``roots``?"""
    for root in roots:
        if inside(root, folder) and root != folder:
            first = os.path.relpath(root, folder).split(os.sep)[0]
            if _fnmatch(first, glob_part):
                return True
    return False


def _fnmatch(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _writes(call: Call) -> str | None:
    if (
        call.via_xargs
        and not call.ctx.sandboxed
        and call.name == "rm"
        and is_recursive(options_and_operands(call.argv[1:])[0])
    ):
        return "cannot see which paths xargs passes to rm -r"
    for word, recursive in _write_targets(call):
        why = _target_problem(word, recursive, call)
        if why is not None:
            return why
    return None


class Rule:
    """One destructive-command rule: ``check`` returns None (no match), "" (match:
    deny with ``reason``) or a more specific reason."""

    __slots__ = ("check", "name", "reason")

    def __init__(self, name: str, check: Callable[[Call], str | None], reason: str) -> None:
        self.name = name
        self.check = check
        self.reason = reason


#: The edit preset's destructive commands: the one list, each with the reason the child
#: reads. A rule sees one simple command at a time, after `VAR=x`, `env`, `nohup`,
#: `timeout`, `xargs` and similar wrappers are taken off.
DESTRUCTIVE: tuple[Rule, ...] = (
    Rule("privilege", _privilege, "sudo/su/doas: privilege escalation is not allowed"),
    Rule("git-push", _git_push, "git push publishes beyond the session; the parent pushes"),
    Rule("git-destructive", _git_destructive, "it throws away work git keeps"),
    Rule("download-exec", _download_exec, "it runs code downloaded from the network"),
    Rule("disk", _disk, "it formats or overwrites a disk"),
    Rule("power", _power, "it shuts down or reboots the machine"),
    Rule("kill", _broad_kill, "it kills processes by name; use kill PID of a process you started"),
    Rule("cms-limits", _cms_limits, "a child must not change the project's cms limits"),
    Rule("cms-state", _names_state, "a child must not touch cms state (its record and budget)"),
    Rule("writes", _writes, "it writes outside the working tree"),
)
