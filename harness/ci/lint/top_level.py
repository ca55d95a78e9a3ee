"""A module's top-level statements, parsed only where a check needs them.

Parsing a whole test module for the few statements a check reads (its `pytestmark`, a module-level
skip, the statements that mention `skip`) was most of a cold lint's time. A cheap scan splits the
text at the lines where a new top-level statement starts; only the pieces that hold a wanted word
are parsed, each alone, with its line numbers as in the whole.

A piece parses alone to the same nodes as in the whole text when the whole parses: the scan splits
only at a line that starts in the first column outside any string, comment, bracket or continued
line, and not at a clause (`else`, `except`, …) or after a decorator. Where the scan cannot be sure
(a string it cannot close, brackets that never balance, text that is not ASCII outside its strings
and comments, carriage returns, form feeds, an f-string on a Python whose f-strings nest) or a piece
does not parse alone, the answer is None and the caller parses the whole, as before. Whether the
whole text parses is not known from the pieces: a caller whose answer differs from the one it gives
for a text that does not parse must still parse the whole to choose.
"""

from __future__ import annotations

import ast
import functools
import re
import sys

# Strings and comments, as Python 3.11's tokenizer reads them (a string's prefix never holds a quote,
# so it does not change where the string ends); a lone quote is a string the scan cannot close.
STRINGS_AND_COMMENTS = re.compile(
    r"""\#[^\n]*"""
    r'''|"""[^"\\]*(?:(?:\\.|"(?!""))[^"\\]*)*"""'''
    r"""|'''[^'\\]*(?:(?:\\.|'(?!''))[^'\\]*)*'''"""
    r'''|"[^"\\\n]*(?:\\.[^"\\\n]*)*"'''
    r"""|'[^'\\\n]*(?:\\.[^'\\\n]*)*'"""
    r"""|["']""",
    re.S,
)
# A line of the scanned code that may start a statement: in the first column, not blank, not a
# comment (removed), not inside a string (marked with NUL).
LINE_START = re.compile(r"^[^ \t\n\x00]", re.M)
CLAUSE = re.compile(r"(?:else|elif|except|finally)\b")
UNSURE = re.compile(r"[\r\f\v\x00]")
BRACKETS = bytes.maketrans(b"[{]}", b"(())")
F_STRING = re.compile(r"[fF][rRbB]?['\"]|[rR][fF]['\"]")


class Unsure(Exception):
    """The scan cannot tell where the text's statements start."""


def _blank(match: re.Match[str]) -> str:
    """A comment goes; a string becomes one character, each line it spans marked as inside it."""
    found = match.group()
    if found[0] == "#":
        return ""
    if len(found) == 1:
        raise Unsure
    return "S" + "\n\x00" * found.count("\n")


@functools.lru_cache(maxsize=256)  # a module is read by more than one check: scanned once
def statement_lines(text: str) -> tuple[int, ...] | None:
    """The 0-based numbers of the lines where a top-level statement (or a run of them on one
    line) starts, in order, the first always 0; None when the scan cannot be sure."""
    if UNSURE.search(text) or "barry_as_FLUFL" in text:
        return None
    if sys.version_info >= (3, 12) and F_STRING.search(text):
        return None  # PEP 701: an f-string may hold quotes and lines the scan would misread
    try:
        code = STRINGS_AND_COMMENTS.sub(_blank, text)
    except Unsure:
        return None
    if not code.isascii():
        return None  # an identifier Python normalises: a wanted word may be spelt another way
    brackets = code.encode().translate(BRACKETS)  # every opening bracket "(", every closing one ")"
    starts = [0]
    line = 0
    last = 0  # where the brackets and lines were last counted to
    depth = 0
    decorated = code.startswith("@")
    for match in LINE_START.finditer(code):
        at = match.start()
        line += code.count("\n", last, at)
        depth += brackets.count(b"(", last, at) - brackets.count(b")", last, at)
        last = at
        if depth or at == 0 or (at > 1 and code[at - 2] == "\\") or CLAUSE.match(code, at):
            if depth < 0:
                return None
            continue  # inside brackets, a continued line, or a clause of the statement above
        if decorated:  # a decorator's function or class (or the next decorator) is the same statement
            decorated = code[at] == "@"
            continue
        decorated = code[at] == "@"
        starts.append(line)
    depth += brackets.count(b"(", last) - brackets.count(b")", last)
    return tuple(starts) if depth == 0 else None


def pieces(text: str) -> list[tuple[int, str]] | None:
    """The text cut where its top-level statements start: each piece's first line (0-based) and
    its text, in order; None when the scan cannot be sure."""
    starts = statement_lines(text)
    if starts is None:
        return None
    lines = text.split("\n")
    ends = [*starts[1:], len(lines)]
    return [(start, "\n".join(lines[start:end])) for start, end in zip(starts, ends, strict=True)]


def parse_pieces(chosen: list[tuple[int, str]]) -> ast.Module | None:
    """A module of these pieces' statements, each piece parsed alone with its nodes numbered as in
    the whole text; None when one does not parse alone (the whole text must decide)."""
    body: list[ast.stmt] = []
    for start, piece in chosen:
        try:
            parsed = ast.parse(piece)
        except (SyntaxError, ValueError, RecursionError):
            return None  # the whole may not parse either, or the scan split it wrongly
        # Numbered as in the whole by a shift, not by blank lines before it: those made the parse of a
        # module of many wanted one-line statements cost its length squared (minutes for one file).
        body.extend(ast.increment_lineno(node, start) for node in parsed.body)
    return ast.Module(body=body, type_ignores=[])


def parse_wanted(text: str, words: tuple[str, ...]) -> ast.Module | None:
    """A module of the text's top-level statements whose lines hold one of `words` (each piece
    parsed alone, its nodes numbered as in the whole text); None when the text must be parsed whole."""
    cut = pieces(text)
    if cut is None:
        return None
    return parse_pieces([(start, piece) for start, piece in cut if any(word in piece for word in words)])
