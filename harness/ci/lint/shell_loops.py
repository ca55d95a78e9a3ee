"""Shell loops as text: where a `for`/`while read` loop starts, what it iterates over, its body.

`for f in tests/a/*.py tests/b/test_x.py; do pytest "$f"; done` and
`find tests -name 'test_*.py' | while read -r f; do pytest "$f"; done` run their body once per item.
This module only cuts the text (header, list, body, what follows `done`); the resolver decides what
each item names and runs the body once per item (an item it cannot bound reaches nothing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.ci.lint.shell_text import logical_lines, open_quote

# `for NAME in` where a command starts: the line's start, after `;`, `&&`, `||`, `|`, `(`, `{`, or a keyword.
FOR_HEAD = re.compile(r"(?P<lead>^|[;&|({]\s*|(?:^|\s)(?:do|then|else)\s+)for\s+(?P<name>[A-Za-z_]\w*)\s+in\b")
WHILE_HEAD = re.compile(
    r"(?P<lead>^|[;&|({]\s*|(?:^|\s)(?:do|then|else)\s+)while\s+(?:IFS=\S*\s+)?read\s+(?:-[a-zA-Z]+\s+(?:''\s+|\"\"\s+)?)*"
    r"(?P<name>[A-Za-z_]\w*)\s*(?:;\s*|\n\s*)do\b"
)
DO = re.compile(r"(?:;|\n)\s*do\b")
# Loop keywords where a command starts: nesting is counted by them.
NESTING = re.compile(r"(?:^|[;&|(\n]|\b(?:do|then|else)\b)\s*(for|while|until|done)\b")


@dataclass(frozen=True)
class Loop:
    before: str  # what runs before the loop on its line (`cd tests &&`, `find tests -name 'test_*.py' |`)
    kind: str  # "for" or "while" (a `while read` loop)
    name: str  # the loop's variable
    items: str  # a for loop's word list, as written ("" for while)
    body: str
    after: str  # what follows `done` on its line (`< <(find …)`, `| tee log`)
    lines: int  # logical lines the loop takes, from the one it starts on


def find_loop(lines: list[str], at: int) -> Loop | None:
    """The loop that starts on logical line `at`, with its body up to the matching `done`; None when
    the line starts none (or its `done` never comes: such text is no loop the lint can read)."""
    line, text = lines[at], "\n".join(lines[at:])
    head = FOR_HEAD.search(line) or WHILE_HEAD.search(text, 0, len(line) + 200)  # `do` may be on the next line
    if head is None or head.start() >= len(line):
        return None
    kind = "for" if head.re is FOR_HEAD else "while"
    before = re.sub(r"(?:(?:^|\s)(?:do|then|else)|;)\s*$", "", line[: head.start()] + head.group("lead")).strip()
    if kind == "for":
        do = DO.search(text, head.end())
        if do is None:
            return None
        items, start = text[head.end() : do.start()].strip(), do.end()
    else:
        items, start = "", head.end()
    depth = 1
    for match in NESTING.finditer(text, start - 2):  # from the `do`, so a loop right after it nests
        depth += -1 if match.group(1) == "done" else 1
        if depth == 0:
            body, rest = text[start : match.start(1)], text[match.end(1) :]
            taken = text[: match.end(1)].count("\n") + 1
            return Loop(before, kind, head.group("name"), items, body, rest.partition("\n")[0].strip(), taken)
    return None


LEADING_KEYWORD = re.compile(r"^(then|do|else|elif|if|while|for)\s+")
# A logical line as a text is walked: the line, the loop that starts there (None if none), whether
# it is inside a multi-line quoted string, and the line with a leading keyword off.
Planned = tuple[str, "Loop | None", bool, str]


def walk(text: str) -> list[Planned]:
    """The logical lines a text is walked by, each loop taken whole, which depends on the text alone
    (a script walked once per distinct set of the variables it reads is read once): the line, its
    loop, whether a quoted string is open at its start, and the line with a leading keyword off
    (`then X="$(…)"` and `do cd "$(…)"` read as the assignment and the cd)."""
    planned: list[Planned] = []
    quote: str | None = None
    lines = list(logical_lines(text))
    at = 0
    while at < len(lines):
        raw = lines[at]
        loop = find_loop(lines, at) if "for" in raw or "while" in raw else None
        planned.append((raw, loop, quote is not None, "" if loop is not None else LEADING_KEYWORD.sub("", raw)))
        taken = lines[at : at + loop.lines] if loop is not None else [raw]
        for each in taken:
            quote = open_quote(each, quote)
        at += len(taken)
    return planned
