"""The safety presets: which tool calls a child session may make.

This module owns the one decision "may this tool call run under this preset?"
(DESIGN.md, "Safety presets"). :func:`decide` is a pure function of the preset, the
tool call and a few directories; the only system call it makes is
:func:`os.path.realpath` (to see through symlinks and ``..``). Budgets, deadlines and
aborts are not decided here but in :mod:`cms.hook`, which reads the session record.

Presets:

* ``read-only`` and ``plan``: only the tools in :data:`READ_TOOLS` (plan mode also may
  call ``ExitPlanMode``). Everything else is denied, unknown and MCP tools included.
* ``review``: ``read-only`` plus Bash limited to read-only git (:data:`GIT_READ`),
  optionally piped into plain text filters (:data:`REVIEW_FILTERS`). Anything the
  checker cannot prove harmless (variables, substitutions, redirections, globs,
  subshells, config switches) is denied.
* ``edit``: file tools may write only inside the working tree (after symlinks and
  ``..``), or below a temp folder, never into cms state or Claude Code's settings;
  Bash runs unless a rule of :data:`DESTRUCTIVE` matches one of its simple commands:
  privilege escalation, git push, downloaded code run by a shell, disk and power
  tools, killing by name or process group, changing cms limits, touching cms state,
  and writes outside the tree by the common file commands (redirections, rm, cp, mv,
  tee, touch, mkdir, sed -i, chmod/chown, dd, tar -x, ...). The command is split on
  ``;``, ``&&``, ``||``, ``|``, ``&`` and newlines; ``$(...)``, backticks, ``<(...)``,
  heredoc bodies, ``sh -c``/``eval`` strings, ``find -exec`` and ``xargs`` are looked
  through, and ``cd`` is followed. A write whose target cannot be told (an unknown
  variable, a ``cd`` to one) is denied, with a reason that says to spell it out.
  Other tools are allowed.
* ``full``: everything.

Reading is allowed everywhere in every preset (a child may read outside its tree; the
parent's files and docs are often what it needs). The Bash checks are a guard against
accidents and against the obvious ways of doing damage, not a sandbox: a program the
child runs (``python -c ...``) can still do what the user's account can.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

# --------------------------------------------------------------------------- tools

#: Tools that only read or search, or only touch the child's own conversation. Task
#: and Agent start a subagent inside the same process: every tool call the subagent
#: makes goes through this same hook, so starting one is harmless. WebFetch and
#: WebSearch read the web and change nothing on this machine.
READ_TOOLS = frozenset(
    {
        "Read",
        "Grep",
        "Glob",
        "LS",
        "NotebookRead",
        "TodoWrite",
        "TodoRead",
        "ToolSearch",
        "WebFetch",
        "WebSearch",
        "Task",
        "Agent",
        "ListAgents",
        "BashOutput",
    }
)
#: Plan mode ends by presenting the plan; even when the CLI then leaves plan mode,
#: this hook still enforces the plan preset (read only).
PLAN_TOOLS = READ_TOOLS | {"ExitPlanMode"}
#: Tools that write the file named in their input (the key holding the path).
WRITE_TOOLS: Mapping[str, str] = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}
PRESETS = ("read-only", "review", "plan", "edit", "full")

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


class Decision:
    """Allow or deny, and the one line the child model reads when denied."""

    __slots__ = ("allow", "reason")

    def __init__(self, allow: bool, reason: str = "") -> None:
        self.allow = allow
        self.reason = reason

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and (self.allow, self.reason) == (
            other.allow,
            other.reason,
        )

    def __hash__(self) -> int:
        return hash((self.allow, self.reason))

    def __repr__(self) -> str:
        return f"Decision(allow={self.allow!r}, reason={self.reason!r})"


ALLOW = Decision(True)


def decide(
    preset: str,
    tool_name: str,
    tool_input: Mapping[str, Any],
    worktree: str,
    state_dir: str,
    *,
    cwd: str | None = None,
    home: str | None = None,
    temp_dirs: Sequence[str] | None = None,
    sandboxed: bool = False,
) -> Decision:
    """May ``tool_name`` run with ``tool_input`` under ``preset``?

    ``worktree`` is the session's working tree, ``state_dir`` the cms state root
    (``$CMS_HOME``), never writable by a child. ``cwd`` is the shell's current folder
    for Bash (default: the tree); ``home`` the user's home (``~``, ``$HOME``);
    ``temp_dirs`` the folders below which edit may also write (default ``/tmp``,
    ``/var/tmp``). ``sandboxed``: the child's commands run in the OS sandbox, so a
    command whose effect the reader cannot tell is left to it rather than refused.
    An unknown preset is treated as read-only.
    """
    if preset == "full":
        return ALLOW
    if tool_name in READ_TOOLS:
        return ALLOW
    if preset == "plan" and tool_name == "ExitPlanMode":
        return ALLOW
    if preset == "edit":
        if tool_name in WRITE_TOOLS:
            ctx = _Context.make(worktree, state_dir, home, temp_dirs, sandboxed)
            return _decide_file_write(tool_name, tool_input, ctx)
        if tool_name == "Bash":
            command = tool_input.get("command")
            if not isinstance(command, str):
                return Decision(False, "cms: preset edit denies Bash without a command string")
            ctx = _Context.make(worktree, state_dir, home, temp_dirs, sandboxed)
            why = bash_problem_edit(command, ctx, cwd or ctx.worktree)
            if why:
                return Decision(False, f"cms: preset edit denies `{_snippet(command)}` ({why})")
        return ALLOW
    if preset == "review" and tool_name == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return Decision(False, "cms: preset review denies Bash without a command string")
        why = bash_problem_review(command)
        if why:
            return Decision(False, f"cms: preset review denies `{_snippet(command)}` ({why})")
        return ALLOW
    if preset == "review":
        what = "read and search, and read-only git in Bash"
    elif preset in PRESETS:
        what = "read and search only"
    else:
        return Decision(
            False,
            f"cms: unknown preset {preset!r} is treated as read-only; {tool_name} denied",
        )
    return Decision(False, f"cms: preset {preset} denies {tool_name} ({what})")


def _snippet(command: str, limit: int = 80) -> str:
    one_line = " ".join(command.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 3] + "..."


# ------------------------------------------------------------------------ places


class _Context:
    """The folders a decision in the edit preset is made against, resolved once."""

    __slots__ = (
        "home", "sandboxed", "state", "state_spellings", "temps", "variables", "worktree",
    )  # fmt: skip

    def __init__(
        self,
        worktree: str,
        state: tuple[str, ...],
        state_spellings: tuple[str, ...],
        home: str,
        temps: tuple[str, ...],
        variables: Mapping[str, str],
        sandboxed: bool = False,
    ) -> None:
        self.worktree = worktree
        #: The child's commands run in the OS sandbox: where the reader cannot tell what
        #: a command touches, the sandbox decides (no refusal for "cannot tell").
        self.sandboxed = sandboxed
        self.state = state
        #: Ways a command line may spell the state folder (for "names cms state").
        self.state_spellings = state_spellings
        self.home = home
        self.temps = temps
        self.variables = variables

    @classmethod
    def make(
        cls,
        worktree: str,
        state_dir: str,
        home: str | None,
        temp_dirs: Sequence[str] | None,
        sandboxed: bool = False,
    ) -> _Context:
        home = home or os.path.expanduser("~")
        tree = os.path.realpath(worktree)
        state_abs = os.path.abspath(os.path.expanduser(state_dir))
        state = tuple(dict.fromkeys((os.path.realpath(state_abs), state_abs)))
        spellings = set(state)
        for base in {home, os.path.realpath(home)}:
            for root in state:
                rel = os.path.relpath(root, base) if _inside(root, base) else None
                if rel and rel != "." and not rel.startswith(".."):
                    spellings.update({f"~/{rel}", f"$HOME/{rel}", f"${{HOME}}/{rel}"})
        temps = tuple(
            dict.fromkeys(
                os.path.realpath(t)
                for t in (temp_dirs if temp_dirs is not None else ("/tmp", "/var/tmp"))
                if t and os.path.isabs(t) and t != "/"
            )
        )
        variables = {"HOME": home, "CMS_HOME": state_abs, "PWD": PWD_MARK}
        return cls(
            tree,
            state,
            tuple(sorted(spellings, key=len, reverse=True)),
            home,
            temps,
            variables,
            sandboxed,
        )

    def kind(self, path: str) -> str:
        """Where an absolute, resolved path lies: state, tree-root, git-dir, settings,
        tree, temp-root, temp or outside (state wins even inside the tree)."""
        if any(_inside(path, s) for s in self.state):
            return "state"
        if _inside(path, self.worktree):
            if path == self.worktree:
                return "tree-root"
            rel = os.path.relpath(path, self.worktree)
            parts = rel.split(os.sep)
            if parts == [".git"]:
                return "git-dir"
            if parts[0] == ".git" and parts[1] in _GIT_INTERNALS:
                return "git-internal"
            if _is_claude_settings(parts):
                return "settings"
            return "tree"
        for temp in self.temps:
            if path == temp:
                return "temp-root"
            if _inside(path, temp):
                return "temp"
        return "outside"


#: What in a repository's .git folder runs code or changes how git runs: a child that
#: wrote a hook or the config would run code in the user's next git command.
_GIT_INTERNALS = frozenset({"hooks", "config", "config.worktree", "info", "modules"})


def _inside(path: str, root: str) -> bool:
    if root == os.sep:
        return path.startswith(os.sep)
    return path == root or path.startswith(root + os.sep)


def _is_claude_settings(parts: Sequence[str]) -> bool:
    # Claude Code reads hooks and `disableAllHooks` from .claude/settings*.json: a child
    # that rewrote them could switch this hook off for its next turn.
    return (
        len(parts) >= 2
        and parts[-2] == ".claude"
        and parts[-1].startswith("settings")
        and parts[-1].endswith(".json")
    )


#: Paths under /dev that a shell may write to without harm (checked before realpath,
#: which would follow /dev/stdout to whatever the hook's own stdout is).
_HARMLESS_DEVICES = frozenset({"/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", "/dev/zero"})


def _decide_file_write(tool_name: str, tool_input: Mapping[str, Any], ctx: _Context) -> Decision:
    key = WRITE_TOOLS[tool_name]
    path = tool_input.get(key)
    if not isinstance(path, str) or not path:
        return Decision(False, f"cms: preset edit denies {tool_name} without a {key}")
    if path == "~" or path.startswith("~/"):
        path = ctx.home + path[1:]
    full = os.path.join(ctx.worktree, path)
    kind = ctx.kind(os.path.realpath(full))
    if kind in ("tree", "temp"):
        return ALLOW
    why = {
        "state": f"it is inside cms state {ctx.state[-1]}; a child must not edit its own record",
        "settings": "Claude Code settings could switch the cms hook off",
        "tree-root": "it is the working tree itself",
        "git-dir": "it is the .git folder itself",
        "git-internal": "git hooks and config run code in the user's next git command",
    }.get(kind, f"outside the working tree {ctx.worktree}")
    return Decision(False, f"cms: preset edit denies {tool_name} to {path} ({why})")


# ------------------------------------------------------------------------- lexer
#
# A small lexer for the subset of bash that matters here. It splits a command line into
# simple commands (words and redirections), remembers how they are joined (pipes,
# background, subshell depth) and parses every command substitution, process
# substitution and backtick into a nested script, because those run too. Words keep
# their text without quotes; a word's `value` also has `~`, $HOME and $CMS_HOME
# expanded, and is None when it depends on anything else (unknown variables, command
# output), which callers treat as "cannot tell".


def _has_brace_expansion(plain: str) -> bool:
    """``a{b,c}`` or ``{1..3}`` (not ``@{u}``, ``${x}`` or a quoted brace)."""
    start = plain.find("{")
    while start >= 0:
        end = plain.find("}", start)
        if end < 0:
            return False
        inner = plain[start + 1 : end].rsplit("{", 1)[-1]
        low, dots, high = inner.partition("..")
        if "," in inner or (dots and low and high):
            return True
        start = plain.find("{", start + 1)
    return False


#: Stands for the current folder in a word's value ($PWD, $(pwd)); replaced by the
#: folder the command runs in, which only the checker knows (it follows cd).
PWD_MARK = "\x00PWD\x00"


def _path_value(word: Word, cwd: str | None) -> str | None:
    """The word's value with the current folder filled in (None: unknown)."""
    value = word.value
    if value is None or PWD_MARK not in value:
        return value
    return None if cwd is None else value.replace(PWD_MARK, cwd)


class BashSyntaxError(ValueError):
    """The command is not complete shell syntax (bash would refuse it too)."""


class Word:
    """One shell word: ``raw`` as written, ``text`` without quotes, ``value`` with
    ``~``/$HOME/$CMS_HOME expanded (None: depends on something unknown)."""

    __slots__ = ("brace", "expanded", "glob", "quoted", "raw", "subs", "text", "value")

    def __init__(
        self,
        raw: str,
        text: str,
        value: str | None,
        *,
        quoted: bool = False,
        glob: bool = False,
        brace: bool = False,
        expanded: bool = False,
        subs: list[Script] | None = None,
    ) -> None:
        self.raw = raw
        self.text = text
        self.value = value
        self.quoted = quoted
        self.glob = glob
        self.brace = brace
        self.expanded = expanded
        #: Scripts that run to produce this word: $(...), `...`, <(...), >(...).
        self.subs: list[Script] = subs if subs is not None else []

    def __repr__(self) -> str:
        return f"Word({self.raw!r})"


class Redirect:
    __slots__ = ("fd", "op", "target")

    def __init__(self, op: str, fd: str, target: Word) -> None:
        self.op = op
        self.fd = fd
        self.target = target

    @property
    def writes(self) -> bool:
        if self.op in (">&", "<&") and (self.target.text.isdigit() or self.target.text == "-"):
            return False  # a descriptor copy (2>&1), not a file
        return self.op in (">", ">>", ">|", "&>", "&>>", "<>", ">&")


class Command:
    """A simple command; ``piped``: its stdin is the previous command's stdout;
    ``depth``: how many subshell parentheses it is inside."""

    __slots__ = ("background", "depth", "piped", "redirects", "words")

    def __init__(self, piped: bool = False, depth: int = 0) -> None:
        self.words: list[Word] = []
        self.redirects: list[Redirect] = []
        self.piped = piped
        self.background = False
        self.depth = depth


class Script:
    __slots__ = ("commands", "newline")

    def __init__(self) -> None:
        self.commands: list[Command] = []
        self.newline = False


class _WordBuf:
    def __init__(self) -> None:
        self.text: list[str] = []
        self.value: list[str] | None = []
        self.quoted = False
        self.glob = False
        #: The word with quoted characters blanked out: brace expansion sees only these.
        self.plain: list[str] = []
        self.expanded = False
        self.subs: list[Script] = []

    def literal(self, chars: str, quoted: bool = True) -> None:
        self.text.append(chars)
        self.plain.append(chars if not quoted else "\0" * len(chars))
        if self.value is not None:
            self.value.append(chars)

    def unknown(self, raw: str) -> None:
        self.text.append(raw)
        self.value = None
        self.expanded = True


_OPERATORS = ("&&", "||", ";;&", ";;", ";&", "|&", ";", "&", "|", "\n")
_REDIRECTS = ("&>>", "&>", "<<<", "<<-", "<<", "<>", "<&", ">&", ">>", ">|", "<", ">")
_WORD_END = frozenset(" \t\n;&|()<>")


#: Substitutions nested deeper than this are refused (and Python's recursion limit is
#: never reached: a RecursionError would reach the hook's catch-all, which allows).
_MAX_LEXER_NESTING = 32


class _Lexer:
    def __init__(
        self, src: str, variables: Mapping[str, str], pos: int = 0, level: int = 0
    ) -> None:
        if level > _MAX_LEXER_NESTING:
            raise BashSyntaxError("substitutions nested too deeply")
        self.s = src
        self.n = len(src)
        self.i = pos
        self.variables = variables
        self.level = level

    # -- scripts

    def script(self, closing: str | None = None) -> Script:
        s = self.s
        out = Script()
        cmd = Command()
        depth = 0
        cases = 0
        heredocs: list[tuple[str, bool, bool, Word]] = []

        def finish(next_piped: bool = False) -> None:
            nonlocal cmd, cases
            if not (cmd.words or cmd.redirects):
                # `a | (b)`: the subshell's first command still reads the pipe
                cmd.piped = cmd.piped or next_piped
                cmd.depth = depth
                return
            first = cmd.words[0].text if cmd.words else ""
            if first == "case":
                cases += 1
            elif first == "esac":
                cases = max(0, cases - 1)
            out.commands.append(cmd)
            cmd = Command(piped=next_piped, depth=depth)

        while self.i < self.n:
            c = s[self.i]
            if c in " \t":
                self.i += 1
            elif c == "\\" and s.startswith("\\\n", self.i):
                self.i += 2
            elif c == "#":  # at a word boundary (inside a word, word() keeps it)
                end = s.find("\n", self.i)
                self.i = self.n if end < 0 else end
            elif c == "\n":
                out.newline = True
                finish()
                self.i += 1
                for delim, quoted, strip, word in heredocs:
                    self._heredoc(delim, quoted, strip, word)
                heredocs.clear()
            elif c == ")":
                self.i += 1
                if depth > 0:
                    finish()
                    depth -= 1
                    cmd.depth = depth
                elif cases or (cmd.words and cmd.words[0].text == "case"):
                    finish()  # the end of a case pattern
                elif closing == ")":
                    finish()
                    return out
                else:
                    raise BashSyntaxError("unbalanced ')'")
            elif c == "(" and not s.startswith("((", self.i):
                self.i += 1
                finish()
                depth += 1
                cmd.depth = depth
            elif c == "(":
                # (( arithmetic )): may hold substitutions, changes nothing on disk
                end = self._matching_parens(self.i)
                subs = self._scan_text(s[self.i + 2 : end - 2])
                cmd.words.append(Word(s[self.i : end], "((", None, expanded=True, subs=subs))
                self.i = end
            elif self._at_redirect():
                redirect = self._redirect()
                cmd.redirects.append(redirect)
                if redirect.op in ("<<", "<<-"):
                    heredocs.append(
                        (
                            redirect.target.text,
                            redirect.target.quoted,
                            redirect.op == "<<-",
                            redirect.target,
                        )
                    )
            elif c in ";&|":
                op = next(o for o in _OPERATORS if s.startswith(o, self.i))
                self.i += len(op)
                if op == "&":
                    cmd.background = True
                finish(next_piped=op in ("|", "|&"))
            else:
                cmd.words.append(self.word())
        if closing == ")":
            raise BashSyntaxError("unterminated $(")
        if depth:
            raise BashSyntaxError("unbalanced '('")
        finish()
        return out

    def _at_redirect(self) -> bool:
        s, i = self.s, self.i
        j = i
        while j < self.n and s[j].isdigit():
            j += 1
        if j < self.n and s[j] in "<>":
            return not s.startswith("(", j + 1)  # <( >( are process substitutions
        return s.startswith("&>", i)

    def _redirect(self) -> Redirect:
        s = self.s
        start = self.i
        while self.i < self.n and s[self.i].isdigit():
            self.i += 1
        fd = s[start : self.i]
        op = next(o for o in _REDIRECTS if s.startswith(o, self.i))
        self.i += len(op)
        while self.i < self.n and s[self.i] in " \t":
            self.i += 1
        if self.i >= self.n or s[self.i] in _WORD_END:
            raise BashSyntaxError(f"redirection {op} without a target")
        return Redirect(op, fd, self.word())

    def _heredoc(self, delim: str, quoted: bool, strip: bool, word: Word) -> None:
        body: list[str] = []
        while self.i < self.n:
            end = self.s.find("\n", self.i)
            line = self.s[self.i : self.n if end < 0 else end]
            self.i = self.n if end < 0 else end + 1
            if (line.lstrip("\t") if strip else line) == delim:
                break
            body.append(line)
        if not quoted:  # an unquoted heredoc expands $(...) and backticks in its body
            word.subs.extend(self._scan_text("\n".join(body)))

    def _matching_parens(self, start: int) -> int:
        """The index after the `)` matching the `(` at ``start`` (quotes respected)."""
        level = 0
        i = start
        s = self.s
        while i < self.n:
            c = s[i]
            if c == "\\":
                i += 2
                continue
            if c in "'\"":
                end = s.find(c, i + 1)
                if end < 0:
                    break
                i = end + 1
                continue
            if c == "(":
                level += 1
            elif c == ")":
                level -= 1
                if level == 0:
                    return i + 1
            i += 1
        raise BashSyntaxError("unbalanced '('")

    # -- words

    def word(self) -> Word:
        s = self.s
        start = self.i
        buf = _WordBuf()
        while self.i < self.n:
            c = s[self.i]
            if c in "<>" and s.startswith("(", self.i + 1):
                sub = self._nested(self.i + 2)
                buf.subs.append(sub)
                buf.unknown(c + "(...)")
            elif c in _WORD_END:
                break
            elif c == "\\":
                nxt = s[self.i + 1 : self.i + 2]
                if nxt != "\n":
                    buf.literal(nxt)
                    buf.quoted = True
                self.i += 2
            elif c == "'":
                end = s.find("'", self.i + 1)
                if end < 0:
                    raise BashSyntaxError("unterminated single quote")
                buf.literal(s[self.i + 1 : end])
                buf.quoted = True
                self.i = end + 1
            elif c == '"':
                self.i += 1
                buf.quoted = True
                self._double_quoted(buf, '"')
            elif c == "$":
                self._dollar(buf, in_quotes=False)
            elif c == "`":
                self._backtick(buf)
            elif c == "~" and self.i == start:
                end = self.i + 1
                while end < self.n and s[end] not in _WORD_END and s[end] != "/":
                    end += 1
                if end == self.i + 1:
                    buf.text.append("~")
                    if buf.value is not None:
                        buf.value.append(self.variables.get("HOME", "~"))
                else:
                    buf.unknown(s[self.i : end])  # ~user, ~+ ...
                self.i = end
            else:
                if c in "*?[":
                    buf.glob = True
                buf.literal(c, quoted=False)
                self.i += 1
        raw = s[start : self.i]
        brace = _has_brace_expansion("".join(buf.plain))
        return Word(
            raw,
            "".join(buf.text),
            None if buf.value is None else "".join(buf.value),
            quoted=buf.quoted,
            glob=buf.glob,
            brace=brace,
            expanded=buf.expanded,
            subs=buf.subs,
        )

    def _double_quoted(self, buf: _WordBuf, terminator: str | None) -> None:
        s = self.s
        while self.i < self.n:
            c = s[self.i]
            if terminator is not None and c == terminator:
                self.i += 1
                return
            if c == "\\":
                nxt = s[self.i + 1 : self.i + 2]
                if nxt in ('"', "\\", "$", "`"):
                    buf.literal(nxt)
                elif nxt != "\n":
                    buf.literal(c + nxt)
                self.i += 2
            elif c == "$":
                self._dollar(buf, in_quotes=True)
            elif c == "`":
                self._backtick(buf)
            else:
                buf.literal(c)
                self.i += 1
        if terminator is not None:
            raise BashSyntaxError("unterminated double quote")

    def _scan_text(self, text: str) -> list[Script]:
        """The substitutions of ``text`` read as if inside double quotes."""
        buf = _WordBuf()
        _Lexer(text, self.variables, level=self.level + 1)._double_quoted(buf, None)
        return buf.subs

    def _dollar(self, buf: _WordBuf, in_quotes: bool) -> None:
        s, i = self.s, self.i
        nxt = s[i + 1 : i + 2]
        if s.startswith("$((", i):
            end = self._matching_parens(i + 1)
            buf.subs.extend(self._scan_text(s[i + 3 : end - 2]))
            buf.unknown(s[i:end])
            self.i = end
        elif nxt == "(":
            sub = self._nested(i + 2)
            words = [w.text for w in sub.commands[0].words] if len(sub.commands) == 1 else []
            if words in (["pwd"], ["pwd", "-P"], ["pwd", "-L"]):
                buf.text.append(s[i : self.i])
                if buf.value is not None:
                    buf.value.append(PWD_MARK)
                buf.expanded = True
            else:
                buf.subs.append(sub)
                buf.unknown("$(...)")
        elif nxt == "{":
            end = self._closing_brace(i + 2)
            inner = s[i + 2 : end]
            if inner in self.variables:
                buf.text.append(s[i : end + 1])
                if buf.value is not None:
                    buf.value.append(self.variables[inner])
                buf.expanded = True
            else:
                buf.subs.extend(self._scan_text(inner))
                buf.unknown(s[i : end + 1])
            self.i = end + 1
        elif nxt == "'" and not in_quotes:
            self.i = i + 2
            buf.literal(self._ansi_c())
            buf.quoted = True
        elif nxt == '"' and not in_quotes:
            self.i = i + 2
            buf.quoted = True
            self._double_quoted(buf, '"')
        elif nxt and (nxt.isalpha() or nxt == "_"):
            end = i + 1
            while end < self.n and (s[end].isalnum() or s[end] == "_"):
                end += 1
            name = s[i + 1 : end]
            if name in self.variables:
                buf.text.append(s[i:end])
                if buf.value is not None:
                    buf.value.append(self.variables[name])
                buf.expanded = True
            else:
                buf.unknown(s[i:end])
            self.i = end
        elif nxt and nxt in "@*#?$!-0123456789":
            buf.unknown(s[i : i + 2])
            self.i = i + 2
        else:
            buf.literal("$")
            self.i = i + 1

    def _closing_brace(self, start: int) -> int:
        level = 1
        i = start
        while i < self.n:
            c = self.s[i]
            if c == "\\":
                i += 2
                continue
            if c == "{":
                level += 1
            elif c == "}":
                level -= 1
                if level == 0:
                    return i
            i += 1
        raise BashSyntaxError("unterminated ${")

    def _ansi_c(self) -> str:
        """$'...' strings: decode the escapes (so $'\\x73udo' is seen as sudo)."""
        s = self.s
        i = self.i
        while i < self.n and s[i] != "'":
            i += 2 if s[i] == "\\" else 1
        if i >= self.n:
            raise BashSyntaxError("unterminated $'")
        raw = s[self.i : i]
        self.i = i + 1
        try:
            return raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
        except UnicodeDecodeError:
            return raw

    def _backtick(self, buf: _WordBuf) -> None:
        s = self.s
        i = self.i + 1
        inner: list[str] = []
        while i < self.n and s[i] != "`":
            if s[i] == "\\" and i + 1 < self.n and s[i + 1] in "`\\$":
                inner.append(s[i + 1])
                i += 2
            else:
                inner.append(s[i])
                i += 1
        if i >= self.n:
            raise BashSyntaxError("unterminated backtick")
        buf.subs.append(_Lexer("".join(inner), self.variables, level=self.level + 1).script())
        buf.unknown("`...`")
        self.i = i + 1

    def _nested(self, pos: int) -> Script:
        lexer = _Lexer(self.s, self.variables, pos, self.level + 1)
        script = lexer.script(closing=")")
        self.i = lexer.i
        return script


def parse_bash(command: str, variables: Mapping[str, str] | None = None) -> Script:
    """Split a shell command line into simple commands (raises BashSyntaxError)."""
    return _Lexer(command, variables or {}).script()


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
        if _is_assignment(cmd.words[0]):
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


def _is_assignment(word: Word) -> bool:
    name, eq, _ = word.raw.partition("=")
    return bool(eq) and name.isidentifier()


# ---------------------------------------------------------------------------- edit


class _Call:
    """One simple command as the rules see it: after assignments and wrappers."""

    __slots__ = ("after_download", "argv", "ctx", "cwd", "redirects", "via_xargs")

    def __init__(
        self,
        argv: list[Word],
        redirects: list[Redirect],
        cwd: str | None,
        ctx: _Context,
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
        return _program(self.argv[0]) if self.argv else ""

    @property
    def args(self) -> list[str]:
        return [w.text for w in self.argv[1:]]


def _program(word: Word) -> str:
    text = word.value if word.value is not None else word.text
    return os.path.basename(text)


def _options_and_operands(args: Sequence[Word], with_value: str = "") -> tuple[str, list[Word]]:
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


def _recursive(opts: str) -> bool:
    return "r" in opts or "R" in opts or " --recursive " in opts


# Each rule looks at one simple command and returns None (no match), "" (match: use
# the rule's reason) or a more specific reason.


def _privilege(call: _Call) -> str | None:
    return "" if call.name in {"sudo", "su", "doas", "pkexec", "runuser"} else None


def _git_push(call: _Call) -> str | None:
    if call.name != "git":
        return None
    globals_, sub, _ = _split_git(call.argv[1:])
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


def _git_destructive(call: _Call) -> str | None:
    """git commands that throw away work the user may not have kept elsewhere:
    uncommitted changes, branches, stashes, reflogs, history."""
    if call.name != "git":
        return None
    _, sub, rest = _split_git(call.argv[1:])
    args = [w.text for w in rest]
    long = {a.split("=", 1)[0] for a in args if a.startswith("--")}
    if sub == "reset" and long & {"--hard", "--merge", "--keep"}:
        return "git reset --hard throws away uncommitted changes; commit or stash them instead"
    if sub == "clean" and (_short_flag(args, "f") or "--force" in long):
        return "git clean -f deletes untracked files for good"
    if sub == "checkout" and (_short_flag(args, "f") or "--force" in long):
        return "git checkout --force throws away uncommitted changes"
    if sub == "branch" and (
        _short_flag(args, "D")
        or (
            (_short_flag(args, "d") or "--delete" in long)
            and (_short_flag(args, "f") or "--force" in long)
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


_DOWNLOADERS = frozenset({"curl", "wget", "fetch", "aria2c", "http", "https", "xh"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "csh", "tcsh"})


def _interpreter(name: str) -> str | None:
    if name in _SHELLS:
        return "shell"
    if name.startswith("python") or name in ("pypy", "pypy3"):
        return "python"
    if name in ("perl", "ruby", "node", "nodejs", "php", "lua", "deno", "bun"):
        return "other"
    if name in ("source", ".", "eval"):
        return "source"
    return None


def _reads_program_from_stdin(call: _Call) -> bool:
    kind = _interpreter(call.name)
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
                names = {_program(w) for w in cmd.words[:3]}
                if names & _DOWNLOADERS or _mentions_download([*cmd.words]):
                    return True
    return False


def _download_exec(call: _Call) -> str | None:
    if _interpreter(call.name) is None:
        return None
    if call.after_download and _reads_program_from_stdin(call):
        return ""
    if _mentions_download(call.argv[1:]) or _mentions_download(r.target for r in call.redirects):
        return ""
    return None


_DISK_TOOLS = frozenset({"mke2fs", "mkswap", "fdisk", "sfdisk", "cfdisk", "parted", "wipefs"})


def _disk(call: _Call) -> str | None:
    if call.name in _DISK_TOOLS or call.name.startswith("mkfs"):
        return ""
    if call.name == "dd":
        for arg in call.argv[1:]:
            if arg.text.startswith("of=") and (arg.value or arg.text)[3:].startswith("/dev/"):
                target = (arg.value or arg.text)[3:]
                if target not in _HARMLESS_DEVICES:
                    return ""
    return None


_POWER = frozenset({"shutdown", "reboot", "halt", "poweroff", "kexec"})


def _power(call: _Call) -> str | None:
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


def _broad_kill(call: _Call) -> str | None:
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


def _cms_limits(call: _Call) -> str | None:
    args = call.args
    if _interpreter(call.name) == "python":  # python -m cms.cli budget ...: cms itself
        module = [i for i, a in enumerate(args) if a in ("cms.cli", "-mcms.cli")]
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


def _names_state(call: _Call) -> str | None:
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
        known = _path_value(word, call.cwd)
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


def _write_targets(call: _Call) -> list[tuple[Word, bool]]:
    """The paths a command writes, each with "is it a recursive delete"."""
    name, argv = call.name, call.argv
    targets: list[tuple[Word, bool]] = [(r.target, False) for r in call.redirects if r.writes]
    if not argv:
        return targets
    args = argv[1:]
    if name in _HAS_VALUE:
        opts, operands = _options_and_operands(args, _HAS_VALUE[name])
        target_dir = [
            w
            for w, prev in zip(args, [None, *args], strict=False)
            if w.text.startswith("--target-directory=") or (prev is not None and prev.text == "-t")
        ]
        if name in ("rm", "rmdir", "unlink", "shred", "touch", "mkdir", "truncate", "tee", "mv"):
            recursive = name == "rm" and _recursive(opts)
            targets += [(w, recursive) for w in operands + target_dir]
        elif name in ("cp", "install", "ln", "rsync", "scp"):
            if target_dir:
                targets += [(w, False) for w in target_dir]
            elif name == "install" and "d" in opts:
                targets += [(w, False) for w in operands]  # install -d DIR...
            elif len(operands) >= 2:
                targets.append((operands[-1], False))
        elif name in ("chmod", "chown", "chgrp"):
            reference = any(a.text.startswith("--reference") for a in args)
            targets += [(w, False) for w in operands[0 if reference else 1 :]]
    elif name in ("sed", "perl"):
        opts, operands = _options_and_operands(args, "efl" if name == "sed" else "eElIMmx")
        if "i" in opts or " --in-place " in opts:
            inline_script = "e" in opts or "f" in opts or "E" in opts
            targets += [(w, False) for w in operands[0 if inline_script else 1 :]]
    elif name == "tar":
        first = args[0].text if args else ""
        extracting = (
            any(a.text in ("-x", "--extract", "--get") for a in args)
            or (not first.startswith("-") and "x" in first)
            or (first.startswith("-") and not first.startswith("--") and "x" in first)
        )
        if extracting:
            folders: list[Word] = []
            for k, word in enumerate(args):
                if word.text in ("-C", "--directory") and k + 1 < len(args):
                    folders.append(args[k + 1])
                elif word.text.startswith("--directory="):
                    value = None if word.value is None else word.value.split("=", 1)[1]
                    folders.append(Word(word.raw, word.text.split("=", 1)[1], value))
            targets += [(w, False) for w in folders or [Word(".", ".", ".")]]
    elif name == "unzip":
        for k, word in enumerate(args[:-1]):
            if word.text == "-d":
                targets.append((args[k + 1], False))
    elif name == "dd":
        for word in args:
            if word.text.startswith("of="):
                value = None if word.value is None else word.value[3:]
                targets.append((Word(word.raw, word.text[3:], value, glob=word.glob), False))
    elif name == "find":
        if "-delete" in [a.text for a in args]:
            targets += [(_below(w), False) for w in _find_paths(args)]
        for k, word in enumerate(args[:-1]):
            if word.text in ("-fprint", "-fprint0", "-fprintf", "-fls"):
                targets.append((args[k + 1], False))
    elif name == "git":
        globals_, sub, rest = _split_git(args)
        if sub not in GIT_READ:
            for opt, value in globals_:
                if opt in ("-C", "--git-dir", "--work-tree"):
                    targets.append((Word(value, value, _plain(value)), False))
        operands = [w for w in rest if not w.text.startswith("-")]
        if sub == "clone" and len(operands) >= 2:
            targets.append((operands[-1], False))
        if sub == "worktree" and operands[:1] and operands[0].text == "add" and operands[1:]:
            targets.append((operands[1], False))
    return targets


def _plain(text: str) -> str | None:
    return None if "$" in text or "`" in text else text


def _find_paths(args: Sequence[Word]) -> list[Word]:
    paths: list[Word] = []
    for word in args:
        if word.text.startswith(("-", "(", "!")) and word.text != "-":
            break
        paths.append(word)
    return paths or [Word(".", ".", ".")]


def _below(word: Word) -> Word:
    """A stand-in for "some path below ``word``" (what find passes to -exec and -delete)."""
    value = None if word.value is None else os.path.join(word.value, "{}")
    return Word(word.raw, os.path.join(word.text, "{}"), value)


def _split_git(args: Sequence[Word]) -> tuple[list[tuple[str, str]], str | None, list[Word]]:
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


def _expand_braces(text: str) -> list[str]:
    """Brace expansion of ``a{b,c}d`` (nested, and ``{x..y}`` as its two ends)."""
    start = text.find("{")
    while start >= 0:
        level = 0
        for end in range(start, len(text)):
            if text[end] == "{":
                level += 1
            elif text[end] == "}":
                level -= 1
                if level == 0:
                    break
        else:
            return [text]
        inner = text[start + 1 : end]
        parts: list[str] = []
        level, last = 0, 0
        for k, ch in enumerate(inner):
            if ch == "{":
                level += 1
            elif ch == "}":
                level -= 1
            elif ch == "," and level == 0:
                parts.append(inner[last:k])
                last = k + 1
        parts.append(inner[last:])
        if len(parts) == 1 and ".." in inner:
            parts = inner.split("..", 1)
        if len(parts) > 1:
            head, tail = text[:start], text[end + 1 :]
            return [x for part in parts for x in _expand_braces(head + part + tail)][:64]
        start = text.find("{", end)
    return [text]


def _target_problem(word: Word, recursive: bool, call: _Call) -> str | None:
    """Why writing (or with ``recursive``, deleting a tree at) ``word`` is refused."""
    ctx = call.ctx
    full = _path_value(word, call.cwd)
    if full is None:
        if ctx.sandboxed:
            return None  # the sandbox decides what it may write
        return f"cannot tell where {word.raw} points; write the path literally"
    values = _expand_braces(full) if word.brace else [full]
    for value in values:
        if call.name in ("rsync", "scp") and ":" in value.split("/", 1)[0]:
            return "it copies to another machine"
        normal = os.path.normpath(value) if value.startswith("/") else ""
        if normal in _HARMLESS_DEVICES or normal.startswith("/dev/fd/"):
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
        if _inside(root, folder) and root != folder:
            first = os.path.relpath(root, folder).split(os.sep)[0]
            if _fnmatch(first, glob_part):
                return True
    return False


def _fnmatch(name: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(name, pattern)


def _writes(call: _Call) -> str | None:
    if (
        call.via_xargs
        and not call.ctx.sandboxed
        and call.name == "rm"
        and _recursive(_options_and_operands(call.argv[1:])[0])
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

    def __init__(self, name: str, check: Callable[[_Call], str | None], reason: str) -> None:
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
        while argv and _is_assignment(argv[0]):
            argv = argv[1:]
        if not argv:
            break
        name = _program(argv[0])
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
            if name == "env" and _is_assignment(argv[i]):
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


def bash_problem_edit(command: str, ctx: _Context, cwd: str) -> str | None:
    """Why the edit preset refuses a Bash command (None: allowed)."""
    if "(" in command and "{" in command:  # only then pay for the regex
        import re

        if re.search(r"([\w:.-]+)\s*\(\s*\)\s*\{[^}]*\1\s*\|\s*\1", command):
            return "a fork bomb"
    return _check_text(command, ctx, os.path.realpath(cwd), 0)


def _check_text(command: str, ctx: _Context, cwd: str | None, level: int) -> str | None:
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


def _unreadable(command: str, ctx: _Context, why: str) -> str | None:
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


def _check_script(script: Script, ctx: _Context, cwd: str | None, level: int) -> str | None:
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
        call = _Call(argv, cmd.redirects, here, ctx, via_xargs, download)
        why = _check_call(call, level)
        if why:
            return why
        if call.name in _DOWNLOADERS:
            download = True
        if call.name in ("cd", "pushd"):
            stack[-1] = _changed_dir(call, ctx)
        elif call.name == "popd":
            stack[-1] = None
    return None


def _changed_dir(call: _Call, ctx: _Context) -> str | None:
    operands = [w for w in call.argv[1:] if not w.text.startswith("-") or w.text == "-"]
    if not operands:
        return ctx.home
    value = _path_value(operands[0], call.cwd)
    if value is None or operands[0].text == "-":
        return None
    base = call.cwd
    if base is None and not value.startswith("/"):
        return None
    return os.path.realpath(os.path.join(base or "/", value))


def _check_call(call: _Call, level: int) -> str | None:
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
    if _interpreter(name) == "shell":
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
        paths = _find_paths(args)
        for k, word in enumerate(args):
            if word.text in ("-exec", "-execdir", "-ok", "-okdir"):
                inner: list[Word] = []
                for w in args[k + 1 :]:
                    if w.text in (";", "+"):
                        break
                    inner.extend([_below(p) for p in paths] if w.text == "{}" else [w])
                argv, via_xargs, _ = _unwrap(inner)
                nested = _Call(argv, [], call.cwd, call.ctx, via_xargs)
                why = _check_call(nested, level + 1) if argv else None
                if why:
                    return why
    return None
