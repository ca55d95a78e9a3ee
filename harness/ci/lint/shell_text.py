"""How the lint reads shell text: logical lines, simple commands, open quotes and branches."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator

from harness.ci.lint.cache import Analysis

WINDOWS_SEPARATOR = re.compile(r"(?<=[\w.])\\(?=[A-Za-z_])")
ARRAY_EXPANSION = re.compile(r"^\$\{\w+\[[@*]\]\}$")  # "${cfg_parts[@]}": VAR=x words for `env`


# A line with no escape and no comment splits as shlex splits it (posix, whitespace-split, `;&|()` as
# punctuation), without shlex's cost: read here, or None when a quote is left open.
SIMPLE_LINE = re.compile(r"[^\\#]*")
SEPARATORS = frozenset(";&|()")
WORD_END = re.compile(r"[ \t\r\n;&|()'\"]")


def _simple_tokens(line: str) -> list[str] | None:
    tokens: list[str] = []
    word: str | None = None  # the word being read ("" after an empty quote, which is a word)
    at, end = 0, len(line)
    while at < end:
        char = line[at]
        if char in " \t\r\n":
            if word is not None:
                tokens.append(word)
                word = None
            at += 1
        elif char in SEPARATORS:
            if word is not None:
                tokens.append(word)
                word = None
            start = at
            while at < end and line[at] in SEPARATORS:
                at += 1
            tokens.append(line[start:at])
        elif char in "'\"":
            close = line.find(char, at + 1)
            if close < 0:
                return None
            word = (word or "") + line[at + 1 : close]
            at = close + 1
        else:
            found = WORD_END.search(line, at)
            stop = found.start() if found else end
            word = (word or "") + line[at:stop]
            at = stop
    if word is not None:
        tokens.append(word)
    return tokens


def split_commands(line: str) -> list[list[str]]:
    """A shell line as simple commands; `|`, `&&`, `||`, `;` and parentheses separate them. A line
    of a multi-line quoted string (`bash -c "` … `pytest x.py"`) has a quote it does not close: it
    is read without that kind of quote, so `x.py"` is still the path `x.py`."""
    simple = _simple_tokens(line) if SIMPLE_LINE.fullmatch(line) else None
    if simple is not None:
        split: list[list[str]] = [[]]
        for token in simple:
            if token and set(token) <= SEPARATORS:
                split.append([])
            else:
                split[-1].append(token)
        return [c for c in split if c]
    for text in (line, line.replace('"', ""), line.replace("'", ""), line.replace('"', "").replace("'", "")):
        lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        commands: list[list[str]] = [[]]
        try:
            for token in lexer:
                if token and set(token) <= set(";&|()"):
                    commands.append([])
                else:
                    commands[-1].append(token)
        except ValueError:
            continue
        return [c for c in commands if c]
    return []


# A script run by many steps is split once, not once a step; callers consume the lists they get,
# so each gets its own copy.
SPLIT_COMMANDS: Analysis[list[list[str]]] = Analysis(
    "split-commands",
    split_commands,
    lambda commands: [list(words) for words in commands],
    lambda data: [list(words) for words in data],
)


def module_pytest(words: list[str]) -> int | None:
    """Where pytest's arguments start in `… -m pytest ARGS` (an interpreter, a venv's, coverage's)."""
    for i in range(1, min(len(words) - 1, 5)):
        if words[i] == "-m" and words[i + 1] == "pytest":
            return i + 2
    return None


CASE_ARM = re.compile(r"^\(?[^\s()]+(\s*\|\s*[^\s()]+)*\)(\s|$)")


def branch(line: str, cwd: str, starts: list[tuple[str, str]]) -> str:
    """The folder a line starts in, given the `if`/`case` blocks open around it (a `cd` in one
    branch does not carry into the next); opens and closes blocks as their keywords come."""
    keyword = line.split(None, 1)[0] if line.split() else ""
    if keyword in ("if", "case"):
        starts.append((keyword, cwd))
    elif keyword in ("elif", "else") and starts and starts[-1][0] == "if":
        return starts[-1][1]
    elif keyword in ("fi", "esac") and starts:
        return starts.pop()[1]
    elif starts and starts[-1][0] == "case" and CASE_ARM.match(line):
        return starts[-1][1]
    return cwd


# From outside any quote: plain text, an escaped character (or a last backslash), a closed '…' or "…".
# What it stops at is a quote that the line leaves open.
UNQUOTED = re.compile(r"""(?:[^\\'"]+|\\(?:.|\Z)|'[^']*'|"(?:[^"\\]|\\(?:.|\Z))*")*""", re.S)
DOUBLE_QUOTED_REST = re.compile(r'(?:[^"\\]|\\(?:.|\Z))*"', re.S)


def open_quote(line: str, quote: str | None) -> str | None:
    """The quote still open at the end of `line`, given the one open at its start (a backslash
    escapes the next character outside single quotes)."""
    if "\\" not in line and (quote or "'") not in line and (quote is not None or '"' not in line):
        return quote  # no quote opens or closes here (most lines)
    at = 0
    if quote == "'":
        at = line.find("'") + 1
        if at == 0:
            return quote
    elif quote == '"':
        closed = DOUBLE_QUOTED_REST.match(line)
        if closed is None:
            return quote
        at = closed.end()
    end = UNQUOTED.match(line, at).end()  # type: ignore[union-attr]  # it matches the empty string too
    return None if end == len(line) else line[end]


def logical_lines(text: str) -> Iterator[str]:
    """Script lines with backslash continuations joined; comments dropped."""
    return (line for _, line in numbered_lines(text))


def numbered_lines(text: str) -> Iterator[tuple[int, str]]:
    """Logical lines with the number of the line each starts on."""
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = (pending + line).strip()
        pending = ""
        if line and not line.startswith("#"):
            yield start, line
    if pending.strip():
        yield start, pending.strip()  # a last line that ends in `\` (a YAML block's `pytest … \`)
