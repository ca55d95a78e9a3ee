"""Gates in shell scripts, by what the script does: a variable is a gate when its being set is what
makes the script run tests.

`if [[ -n "$FULL" ]]; then pytest …; fi` and `[[ -z "${NIGHTLY:-}" ]] && exit 0` (before the tests)
are gates. Not gates: variables the script assigns itself (locals, arrays, `${X:-default}` paths
it computes), lower-case names (environment variables are upper-case by convention), a variable
whose being set turns tests *off* (`SKIP_X`), one read with a default that runs the tests, a check
whose branches run no tests (a Slack webhook, a log line), and a check that fails the script loudly
(`exit 1`) rather than skipping.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.ci.lint.cache import Analysis
from harness.ci.lint.shell_text import numbered_lines
from harness.ci.lint.shell_values import REFERENCE, reference_name

TEST_COMMAND = re.compile(
    r"(?:^|[\s;&|(`])(?:pytest|torchrun|python3?(?:\.\d+)?\s+(?:-m\s+pytest|\S+\.py)|(?:ba)?sh\s+\S+\.sh|\./\S+\.sh)\b"
    r"|(?:^|[\s;&|(`])(?:ba)?sh\s+[\"']?\$\{?[A-Za-z_]\w*"  # bash "${SCRIPT}": a script held in a variable
)
TRUTHY = ("1", "true", "yes", "on", "True", "TRUE")
# Compiled once: each is matched against every line of every script a step runs.
ASSIGNED = re.compile(r"^(?:export\s+)?([A-Za-z_]\w*)\+?=")
LOOP_HEAD = re.compile(r"^(for|while)\s")
LOOP_OPENS = re.compile(r"^(?:for|while|until)\s")
LOOP_CLOSES = re.compile(r"(?:^|;\s*)done\b")
EXITS = re.compile(r"^(exit|return)(\s+\S+)?\s*;?$")
EXITS_LOUDLY = re.compile(r"^(exit|return)\s+[1-9]\d*\s*;?$")
KEYWORD_BREAK = re.compile(r";\s*(?=(?:then|else|elif|fi|do|done)\b)|(?<=\bthen)\s+|(?<=\belse)\s+")
FUNCTION_START = re.compile(r"^(?:function\s+)?([A-Za-z_][\w-]*)\s*\(\)\s*\{?$|^function\s+([A-Za-z_][\w-]*)\s*\{?$")
IF_HEAD = re.compile(r"^(if|elif)\s+(.*?)(?:;\s*then|\s+then)?$")
FI = re.compile(r"^fi\b")
ONE_LINER = re.compile(r"^(\[\[.*?\]\]|\[\s.*?\s\]|test\s.*?)\s*(&&|\|\|)\s*(.+)$")


class Unknown(Exception):
    """A condition this module cannot evaluate without running the script."""


@dataclass
class IfBlock:
    line: int
    branches: list[tuple[str, list[str]]] = field(default_factory=list)  # (condition, body lines)
    otherwise: list[str] = field(default_factory=list)
    rest: list[str] = field(default_factory=list)  # the script after the block
    branch_lines: list[int] = field(default_factory=list)  # the line of each branch's condition


def shell_gates(text: str) -> dict[str, int]:
    """Variables whose being set makes the script run tests, with the line that checks each."""
    return {name: line for name, (line, _) in gate_details(text).items()}


def gate_details(text: str) -> dict[str, tuple[int, str]]:
    """Each gate's line and a fingerprint of the test work it holds back (the gated lines and the
    script's definitions of the lists they use): a test or config moved behind a gate that was
    already unset changes the fingerprint, so `lint --since` sees a new loss."""
    lines = _lines(text)
    assigned = _assigned(text)
    functions = _test_functions(lines)
    feeds = _feeding_tests(lines, functions)
    gates: dict[str, tuple[int, str]] = {}
    for block in _blocks(lines):
        conditions = " ".join(c for c, _ in block.branches)
        for match in REFERENCE.finditer(conditions):
            name = reference_name(match)
            if name in gates or name in assigned or not name.isupper() or name.startswith("BASH"):
                continue
            work = _enables(block, name, functions, feeds)
            if work is not None:
                lines_of = block.branch_lines or [block.line] * len(block.branches)
                line = next(n for (c, _), n in zip(block.branches, lines_of, strict=True) if name in c)
                gates[name] = (line, _fingerprint(work, text))
    return gates


def _fingerprint(work: frozenset[str], text: str) -> str:
    used = {reference_name(m) for line in work for m in REFERENCE.finditer(line)}
    definitions = [line for name in sorted(used) for line in _definition(text, name)]
    return hashlib.sha256("\n".join([*sorted(work), *definitions]).encode()).hexdigest()[:12]


def _definition(text: str, name: str) -> list[str]:
    """The lines that give `name` its value in the script, a multi-line array literal whole."""
    found: list[str] = []
    raw = text.splitlines()
    for i, line in enumerate(raw):
        if re.match(rf"^\s*(?:local\s+|declare\s+\S+\s+)?{re.escape(name)}\+?=", line):
            depth = line.count("(") - line.count(")")
            found.append(line.strip())
            j = i + 1
            while depth > 0 and j < len(raw):
                depth += raw[j].count("(") - raw[j].count(")")
                found.append(raw[j].strip())
                j += 1
    return found


def _enables(block: IfBlock, name: str, functions: set[str], feeds: set[str]) -> frozenset[str] | None:
    """The test work that runs only when `name` is set, or None when it is not a gate."""
    try:
        unset = _taken(block, {})
        taken_when_set = {_taken(block, {name: value}) for value in _candidates(block, name)}
    except Unknown:
        return None
    bodies = [body for _, body in block.branches] + [block.otherwise]

    def effective(i: int) -> list[str]:  # a branch, then the rest of the script unless the branch ends it
        return bodies[i] if _exits(bodies[i]) else bodies[i] + block.rest

    if _exits(bodies[unset], loudly=True):
        return None  # unset, the script fails: a loud error, not a silent loss
    unset_work = _test_lines(bodies[unset], functions, feeds)
    for chosen in taken_when_set - {unset}:
        work = _test_lines(bodies[chosen], functions, feeds)
        if _exits(bodies[chosen]):
            # An alternative to the rest of the script: a loss only if, unset, no tests run at all.
            if work and not _test_lines(effective(unset), functions, feeds):
                return frozenset(work)
        elif work - unset_work:
            return frozenset(work - unset_work)  # tests (or a test list) added only when set
        elif _exits(bodies[unset]) and _test_lines(block.rest, functions, feeds):
            return frozenset(_test_lines(block.rest, functions, feeds))  # `[[ -z "$V" ]] && exit 0` first
    return None


def _candidates(block: IfBlock, name: str) -> list[str]:
    """Values a step could set: a truthy one and every literal the condition compares with."""
    words: list[str] = []
    for condition, _ in block.branches:
        words += [w for w in _words(condition) if w and "$" not in w and not w.startswith("-")]
    return list(dict.fromkeys(["1", *[w for w in words if w not in ("[[", "]]", "[", "]", "!", "&&", "||")]]))


def _taken(block: IfBlock, env: dict[str, str]) -> int:
    for i, (condition, _) in enumerate(block.branches):
        if _evaluate(condition, env):
            return i
    return len(block.branches)


def _test_lines(lines: list[str], functions: set[str], feeds: set[str]) -> set[str]:
    """Lines that run tests: a test command, a call of a function that runs one, or a value for a
    variable tests use (a test list)."""
    found = set()
    for line in lines:
        words = line.split()
        assigned = ASSIGNED.match(line)
        if TEST_COMMAND.search(line) or (words and words[0] in functions) or (assigned and assigned.group(1) in feeds):
            found.add(line)
    return found


def _feeding_tests(lines: list[tuple[int, str]], functions: set[str]) -> set[str]:
    """Variables read by a test command, by a call of a function that runs tests, or by a loop
    whose body runs them (`for cfg in "${configs[@]}"; do … bash "$SCRIPT" …; done`)."""
    names: set[str] = set()
    texts = [text for _, text in lines]
    for i, line in enumerate(texts):
        words = line.split()
        calls = bool(words) and words[0] in functions
        if TEST_COMMAND.search(line) or calls or (LOOP_HEAD.match(line) and _body_runs(texts, i, functions)):
            names.update(reference_name(m) for m in REFERENCE.finditer(line))
    return names


def _body_runs(texts: list[str], start: int, functions: set[str]) -> bool:
    """Whether the loop opened at `start` runs tests before its `done`."""
    depth = 0
    for line in texts[start:]:
        depth += len(LOOP_OPENS.findall(line))
        if TEST_COMMAND.search(line) or (line.split() and line.split()[0] in functions):
            return True
        depth -= len(LOOP_CLOSES.findall(line))
        if depth <= 0:
            return False
    return False


def _exits(lines: list[str], loudly: bool = False) -> bool:
    """Whether a body ends the script: `exit`/`return` (with a non-zero status, where `loudly`)."""
    ends = EXITS_LOUDLY if loudly else EXITS
    return any(ends.match(line) for line in lines)


def _assigned(text: str) -> set[str]:
    """Names the script gives values itself: `X=`, `X+=`, local/declare/export/readonly, read, for."""
    names = set(
        re.findall(
            r"(?:^|[\s;&|(])(?:(?:local|declare|export|readonly|typeset)\s+(?:-\w+\s+)*)?([A-Za-z_]\w*)\+?=", text
        )
    )
    names |= set(re.findall(r"\b(?:local|declare|typeset|readonly)\s+(?:-\w+\s+)*([A-Za-z_]\w*)", text))
    names |= set(re.findall(r"\bfor\s+([A-Za-z_]\w*)\s+in\b", text))
    names |= set(re.findall(r"\$\{([A-Za-z_]\w*):?=", text))
    for match in re.finditer(r"\bread\s+((?:-\w+\s+)*)([A-Za-z_][\w\s]*)", text):
        names |= set(match.group(2).split())
    return names


def _lines(text: str) -> list[tuple[int, str]]:
    """Logical lines (continuations joined, comments dropped), `;`-separated keywords on their own."""
    out: list[tuple[int, str]] = []
    for start, line in numbered_lines(text):
        for part in KEYWORD_BREAK.split(line):
            if part.strip():
                out.append((start, part.strip().rstrip(";").strip()))
    return out


def _test_functions(lines: list[tuple[int, str]]) -> set[str]:
    """Shell functions whose bodies run tests: calling one runs tests."""
    found: set[str] = set()
    current: str | None = None
    depth = 0
    for _, line in lines:
        start = FUNCTION_START.match(line)
        if start and current is None:
            current, depth = start.group(1) or start.group(2), 0
        if current is not None:
            depth += line.count("{") - line.count("}")
            if TEST_COMMAND.search(line):
                found.add(current)
            if depth <= 0 and "}" in line:
                current = None
    return found


def _blocks(lines: list[tuple[int, str]]) -> list[IfBlock]:
    """Every `if`/`elif`/`else`/`fi` chain and `[[ … ]] && cmd` / `|| cmd` one-liner, with its bodies."""
    blocks: list[IfBlock] = []
    stack: list[tuple[IfBlock, list[str]]] = []  # open blocks and the body being filled
    texts = [text for _, text in lines]
    for index, (number, line) in enumerate(lines):
        head = IF_HEAD.match(line)
        if head and head.group(1) == "if":
            block = IfBlock(number, [(head.group(2), [])], branch_lines=[number])
            stack.append((block, block.branches[0][1]))
            continue
        if head and stack:
            block = stack[-1][0]
            block.branches.append((head.group(2), []))
            block.branch_lines.append(number)
            stack[-1] = (block, block.branches[-1][1])
            continue
        if line == "then":
            continue
        if line == "else" and stack:
            stack[-1] = (stack[-1][0], stack[-1][0].otherwise)
            continue
        if FI.match(line) and stack:
            block = stack.pop()[0]
            block.rest = texts[index + 1 :]
            blocks.append(block)
            continue
        one_liner = ONE_LINER.match(line)
        if one_liner:
            condition, operator, command = one_liner.groups()
            body, otherwise = ([command], []) if operator == "&&" else ([], [command])
            blocks.append(IfBlock(number, [(condition, body)], otherwise, texts[index + 1 :]))
        for _, body in stack:
            body.append(line)
    return blocks


def _words(condition: str) -> list[str]:
    lexer = shlex.shlex(condition, posix=True, punctuation_chars="&|()")
    lexer.whitespace_split = True
    try:
        return list(lexer)
    except ValueError:
        raise Unknown from None


def _evaluate(condition: str, env: dict[str, str]) -> bool:
    words = _words(condition)
    value, rest = _or(words, env)
    if rest:
        raise Unknown
    return value


def _or(words: list[str], env: dict[str, str]) -> tuple[bool, list[str]]:
    return _chain(words, env, ("||", "-o"), _and, any)


def _and(words: list[str], env: dict[str, str]) -> tuple[bool, list[str]]:
    return _chain(words, env, ("&&", "-a"), _not, all)


Parse = Callable[[list[str], dict[str, str]], tuple[bool, list[str]]]


def _chain(
    words: list[str], env: dict[str, str], operators: tuple[str, ...], operand: Parse, combine: Callable[..., bool]
) -> tuple[bool, list[str]]:
    """Operands joined by one kind of operator, evaluated (every operand, as no side effects run)."""
    values: list[bool] = []
    value, words = operand(words, env)
    values.append(value)
    while words and words[0] in operators:
        value, words = operand(words[1:], env)
        values.append(value)
    return combine(values), words


def _not(words: list[str], env: dict[str, str]) -> tuple[bool, list[str]]:
    if words and words[0] == "!":
        value, rest = _not(words[1:], env)
        return not value, rest
    return _primary(words, env)


def _primary(words: list[str], env: dict[str, str]) -> tuple[bool, list[str]]:
    if not words:
        raise Unknown
    if words[0] in ("[[", "[", "test"):
        closing = {"[[": "]]", "[": "]", "test": None}[words[0]]
        end = words.index(closing) if closing in words else len(words)
        value, rest = _or(words[1:end], env)
        if rest:
            raise Unknown
        return value, words[end + 1 :] if closing else []
    if words[0] == "(":
        value, rest = _or(words[1:], env)
        if not rest or rest[0] != ")":
            raise Unknown
        return value, rest[1:]
    if words[0] in ("-n", "-z") and len(words) > 1:
        empty = _value(words[1], env) == ""
        return (not empty if words[0] == "-n" else empty), words[2:]
    if len(words) > 2 and words[1] in ("==", "=", "!=", "-eq", "-ne", "=~"):
        left, right, op = _value(words[0], env), _value(words[2], env), words[1]
        if op in ("-eq", "-ne"):
            try:
                same = int(left or "0") == int(right or "0")
            except ValueError:
                raise Unknown from None
        elif op == "=~":
            same = re.search(right, left) is not None
        else:
            same = fnmatch.fnmatchcase(left, right)
        return (same if op in ("==", "=", "-eq", "=~") else not same), words[3:]
    if words[0].startswith("-") or words[0] in ("&&", "||", ")"):
        raise Unknown  # -f FILE, -d DIR and other tests on things only the machine knows
    return _value(words[0], env) != "", words[1:]


def _value(word: str, env: dict[str, str]) -> str:
    """A word with the given variables set and every other one unset."""
    if "$(" in word or "`" in word:
        raise Unknown

    def one(match: re.Match[str]) -> str:
        name = reference_name(match)
        if name in env and env[name] != "":
            return env[name]
        return match.group("default") or ""

    return REFERENCE.sub(one, word)


SHELL_GATES: Analysis[dict[str, tuple[int, str]]] = Analysis(
    "shell-gates",
    gate_details,
    lambda gates: {name: list(where) for name, where in gates.items()},
    lambda data: {name: (where[0], where[1]) for name, where in data.items()},
)
