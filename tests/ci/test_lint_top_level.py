"""Top-level statements found by a scan and parsed alone: exactly the whole parse's, or no answer."""

from __future__ import annotations

import ast
import random

import pytest

from harness.ci.lint.top_level import parse_wanted, statement_lines
from tests.conftest import ROOT

TRICKY = '''\
"""A docstring whose lines look like statements:
pytestmark = skip
def test_not_here(): pass
"""
import os, sys; X = os.getenv("X")
VALUES = [
1,
]
TOTAL = 1 + \\
2
if X:
    pass
elif sys:
    pass
else:
    pass
try:
    import torch
except ImportError:
    torch = None
finally:
    pass
@decorator(
    "arg",
)
# a comment between a decorator and its function
@other
def test_decorated(a=")", b='#', c="""(
"""):
    text = \'\'\'
def test_inside_a_string(): pass
\'\'\'
# a comment in the first column inside a function
    return text
match = 1
NOTE = "a string \\
on two lines"
class TestThing:
    pytestmark = skip
'''


def _starts(tree: ast.Module) -> list[int]:
    """Where each top-level statement starts, 0-based: a decorated one at its first decorator."""
    lines = {min([n.lineno, *(d.lineno for d in getattr(n, "decorator_list", ()))]) - 1 for n in tree.body}
    return sorted(lines | {0})


def _same(text: str) -> None:
    tree = ast.parse(text)
    starts = statement_lines(text)
    # Each piece starts where a statement does (a line holding only a string may stay with the
    # statement above: pieces are runs of whole statements).
    assert starts is not None and set(starts) <= set(_starts(tree))
    whole = ast.Module(body=tree.body, type_ignores=[])
    assert ast.dump(parse_wanted(text, ("",)), include_attributes=True) == ast.dump(whole, include_attributes=True)


def test_statements_start_where_the_parser_says_in_strings_brackets_clauses_and_decorators() -> None:
    _same(TRICKY)


def test_every_module_of_gpuci_scans_as_it_parses() -> None:
    modules = sorted((ROOT / "harness").rglob("*.py"))
    assert len(modules) > 100
    unsure = []
    for path in modules:
        if statement_lines(path.read_text()) is None:
            unsure.append(path.relative_to(ROOT).as_posix())
        else:
            _same(path.read_text())
    assert unsure == ["harness/ci/lint/top_level.py"]  # it names the one future import the scan leaves alone


def test_only_the_statements_holding_a_wanted_word_are_parsed_with_their_own_line_numbers() -> None:
    tree = parse_wanted(TRICKY, ("pytestmark",))
    assert tree is not None
    [docstring, test_class] = tree.body  # the docstring only mentions it; the class holds one
    assert isinstance(docstring, ast.Expr) and docstring.lineno == 1
    assert (
        isinstance(test_class, ast.ClassDef) and test_class.lineno == TRICKY.splitlines().index("class TestThing:") + 1
    )


@pytest.mark.parametrize(
    "text",
    [
        'X = """never closed\n',  # a string the scan cannot close
        "X = 'never closed\n",
        "VALUES = [1,\n",  # brackets that never balance
        "X = 1)\n",
        "X = 1\r\nY = 2\r\n",  # line ends the scan does not count as the parser does
        "X = 1\n\x0cY = 2\n",
        "\uff38 = 1\n",  # an identifier Python normalises (fullwidth X)
    ],
)
def test_text_the_scan_cannot_be_sure_of_has_no_answer(text: str) -> None:
    assert statement_lines(text) is None and parse_wanted(text, ("",)) is None


def test_a_part_that_does_not_parse_alone_leaves_the_answer_to_the_whole() -> None:
    assert parse_wanted("X = 1\nY = = 2\n", ("Y",)) is None
    assert parse_wanted("X = 1\nY = = 2\n", ("X",)) is not None  # the broken part is not read


# Lines that open and close strings, brackets, blocks, clauses and continuations in every order.
FRAGMENTS = [
    "x = 1", "def f():", "    pass", "    return (", ")", "class T:", "@d", "@d(", "'''", '"""', "#c", '# """',
    "s = '''", "if x:", "else:", "elif y:", "try:", "except E:", "finally:", "y = [", "]", "1,", "'a\\'b'",
    '"a\\"b"', "z = 1 + \\", "2", "    x = 1", "pytestmark = 1", 'a = "#"', "b = '('", "c = {", "}", "f(a,", "b)",
    "", "   ", "x = 1; y = 2", '"""doc"""', "async def g():", "    await h()", "match x:", "    case 1:",
    "        pass", "with a as b:",
]  # fmt: skip


def test_random_modules_that_parse_scan_as_they_parse() -> None:
    rng = random.Random(35)
    checked = 0
    for _ in range(20000):
        text = "\n".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 12)))
        try:
            ast.parse(text)
        except SyntaxError:
            continue
        _same(text)
        checked += 1
    assert checked > 500


def test_parsing_the_pieces_costs_the_texts_length_not_its_square(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece was parsed behind as many blank lines as came before it: a 1.2 MB test module of 80,000
    `A = os.environ` lines (each a piece a gate reads) took `gpuci lint --no-cache` 122 s (47 s CPU) on the
    host, and a 4 MiB one about ten minutes of CPU, against half a second to parse it whole. Counted here
    in characters handed to the parser, not timed."""
    from harness.ci.lint import top_level

    parsed = []
    real = ast.parse
    monkeypatch.setattr(top_level.ast, "parse", lambda source, *a, **k: parsed.append(len(source)) or real(source))
    text = "import os\n" + "A = os.environ\n" * 2000
    tree = parse_wanted(text, ("environ",))
    assert tree is not None and [n.lineno for n in tree.body] == list(range(2, 2002))
    assert sum(parsed) <= 2 * len(text)
