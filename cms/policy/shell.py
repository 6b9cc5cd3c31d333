"""Reading a Bash command line: a lexer for the subset of bash that matters to the
presets.

It splits a command line into simple commands (words and redirections), remembers how
they are joined (pipes, background, subshell depth) and parses every command
substitution, process substitution and backtick into a nested script, because those
run too. Words keep their text without quotes; a word's ``value`` also has ``~``,
``$HOME`` and ``$CMS_HOME`` expanded, and is None when it depends on anything else
(unknown variables, command output), which callers treat as "cannot tell".
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: the hook path does without typing (and its re)
if TYPE_CHECKING:
    from collections.abc import Mapping


# ------------------------------------------------------------------------- lexer
#
# A small lexer for the subset of bash that matters here. It splits a command line into
# simple commands (words and redirections), remembers how they are joined (pipes,
# background, subshell depth) and parses every command substitution, process
# substitution and backtick into a nested script, because those run too. Words keep
# their text without quotes; a word's `value` also has `~`, $HOME and $CMS_HOME
# expanded, and is None when it depends on anything else (unknown variables, command
# output), which callers treat as "cannot tell".


def has_brace_expansion(plain: str) -> bool:
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


def path_value(word: Word, cwd: str | None) -> str | None:
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


class _Building:
    """The script being read: its commands so far, the one still open, the subshell
    depth, open ``case`` statements and heredocs whose bodies start at the next line."""

    __slots__ = ("cases", "cmd", "depth", "heredocs", "out")

    def __init__(self) -> None:
        self.out = Script()
        self.cmd = Command()
        self.depth = 0
        self.cases = 0
        self.heredocs: list[tuple[str, bool, bool, Word]] = []

    def finish(self, next_piped: bool = False) -> None:
        """Close the open command (if it has anything) and start the next one."""
        cmd = self.cmd
        if not (cmd.words or cmd.redirects):
            # `a | (b)`: the subshell's first command still reads the pipe
            cmd.piped = cmd.piped or next_piped
            cmd.depth = self.depth
            return
        first = cmd.words[0].text if cmd.words else ""
        if first == "case":
            self.cases += 1
        elif first == "esac":
            self.cases = max(0, self.cases - 1)
        self.out.commands.append(cmd)
        self.cmd = Command(piped=next_piped, depth=self.depth)


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
        """Read commands up to the end, or up to the ``)`` that closes a ``$(``."""
        building = _Building()
        while self.i < self.n:
            if self._step(building, closing):
                return building.out
        if closing == ")":
            raise BashSyntaxError("unterminated $(")
        if building.depth:
            raise BashSyntaxError("unbalanced '('")
        building.finish()
        return building.out

    def _step(self, b: _Building, closing: str | None) -> bool:
        """Read one token into ``b``; True when it closed the ``$(`` being read."""
        s = self.s
        c = s[self.i]
        if c in " \t":
            self.i += 1
        elif c == "\\" and s.startswith("\\\n", self.i):
            self.i += 2
        elif c == "#":  # at a word boundary (inside a word, word() keeps it)
            end = s.find("\n", self.i)
            self.i = self.n if end < 0 else end
        elif c == "\n":
            b.out.newline = True
            b.finish()
            self.i += 1
            for delim, quoted, strip, word in b.heredocs:
                self._heredoc(delim, quoted, strip, word)
            b.heredocs.clear()
        elif c == ")":
            self.i += 1
            return self._close_paren(b, closing)
        elif c == "(" and not s.startswith("((", self.i):
            self.i += 1
            b.finish()
            b.depth += 1
            b.cmd.depth = b.depth
        elif c == "(":
            # (( arithmetic )): may hold substitutions, changes nothing on disk
            end = self._matching_parens(self.i)
            subs = self._scan_text(s[self.i + 2 : end - 2])
            b.cmd.words.append(Word(s[self.i : end], "((", None, expanded=True, subs=subs))
            self.i = end
        elif self._at_redirect():
            redirect = self._redirect()
            b.cmd.redirects.append(redirect)
            if redirect.op in ("<<", "<<-"):
                target = redirect.target
                b.heredocs.append((target.text, target.quoted, redirect.op == "<<-", target))
        elif c in ";&|":
            op = next(o for o in _OPERATORS if s.startswith(o, self.i))
            self.i += len(op)
            if op == "&":
                b.cmd.background = True
            b.finish(next_piped=op in ("|", "|&"))
        else:
            b.cmd.words.append(self.word())
        return False

    @staticmethod
    def _close_paren(b: _Building, closing: str | None) -> bool:
        if b.depth > 0:
            b.finish()
            b.depth -= 1
            b.cmd.depth = b.depth
        elif b.cases or (b.cmd.words and b.cmd.words[0].text == "case"):
            b.finish()  # the end of a case pattern
        elif closing == ")":
            b.finish()
            return True
        else:
            raise BashSyntaxError("unbalanced ')'")
        return False

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
        brace = has_brace_expansion("".join(buf.plain))
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


def expand_braces(text: str) -> list[str]:
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
            return [x for part in parts for x in expand_braces(head + part + tail)][:64]
        start = text.find("{", end)
    return [text]


def is_assignment(word: Word) -> bool:
    name, eq, _ = word.raw.partition("=")
    return bool(eq) and name.isidentifier()
