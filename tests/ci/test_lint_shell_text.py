"""Shell lines split into simple commands exactly as shlex splits them, on its fast path too."""

from __future__ import annotations

import random
import shlex

from harness.ci.lint.shell_text import open_quote, split_commands


def by_shlex(line: str) -> list[list[str]]:
    """The reference: shlex (posix, whitespace-split, `;&|()` punctuation, `#` comments), and the
    line read without an unclosed kind of quote, as split_commands documents."""
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


LINES = [
    "cd tests && pytest -v -s models/test_a.py",
    'pytest -v -s "models/test a.py" -k "not slow and (fast or x)"',
    "VLLM_X=1 python3 -m pytest -x 'compile/test_b.py'::test_c || exit 1",
    'bash -c "cd /workspace && pytest tests/x.py"',
    'python3 -m pytest "${GIT_ROOT}"/tests/v1/test_x.py; echo done',
    'pytest x.py"',  # a multi-line string's last line: its quote opens nowhere here
    "echo \"it's\" && pytest 'a\"b'",
    'x="" y=\'\' pytest ""',
    "find . -name 'test_*.py' -exec pytest {} \\;",
    "pytest a.py # a comment; pytest b.py",
    "(cd tests; pytest)|tee log&",
    "",
    "   \t ",
]


def test_lines_split_as_shlex_splits_them() -> None:
    for line in LINES:
        assert split_commands(line) == by_shlex(line), line


def test_random_lines_split_as_shlex_splits_them() -> None:
    rng = random.Random(35)
    alphabet = [*"ab ;&|()\"'\t-./=$#\\", "  ", "x y"]
    for _ in range(5000):
        line = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert split_commands(line) == by_shlex(line), repr(line)


def _open_quote_char_by_char(line: str, quote: str | None) -> str | None:
    """The quote a shell leaves open at the end of a line, one character at a time (the old way)."""
    escaped = False
    for char in line:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char in "\"'":
            quote = char
        elif char == quote:
            quote = None
    return quote


def test_the_quote_a_line_leaves_open_as_read_char_by_char() -> None:
    picked = ["echo 'a \\' b", 'echo "a \\" b', "x=\\'", "bash -c \"pytest 'x'", "'", '"', "\\", 'a "b\\']
    rng = random.Random(7)
    lines = picked + ["".join(rng.choice("ab \\'\"$;#") for _ in range(rng.randint(0, 12))) for _ in range(20000)]
    for line in lines:
        for quote in (None, "'", '"'):
            assert open_quote(line, quote) == _open_quote_char_by_char(line, quote), (line, quote)
