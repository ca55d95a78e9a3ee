"""What a shell loop iterates over, as paths of the tree: globs, word lists, `find`, list files, the
script's own lists.

Each item is given as the agent's absolute path (under the workspace), so the loop's body resolves
it wherever it runs. An item no one can know here (`$(curl …)`, a variable set outside the script,
positional arguments) makes the whole list unbounded: None, never "every file".
"""

from __future__ import annotations

import fnmatch
import posixpath
import re
import shlex
from collections.abc import Callable

from harness.ci.lint.shell_values import expand
from harness.ci.lint.tree import Tree

GLOB = re.compile(r"[*?\[]")
WHOLE_REFERENCE = re.compile(r"^\$\{?([A-Za-z_]\w*)(?:\[[@*]\])?\}?$")
ANY_REFERENCE = re.compile(r"\$\{?([A-Za-z_]\w*)")
MAX_ITEMS = 5000  # a loop over more is read as over these (a bound on the lint's work, not the shell's)
MAX_DEPTH = 4  # variables defined through variables, this deep
# A list file's read is the resolver's: a regular file of the checkout, bounded in size, never a link out.
Read = Callable[[str], str]


def find_listing(tree: Tree, find: list[str], base: str) -> list[str]:
    """The files `find BASE [-maxdepth N] -name P [-not -name Q | ! -name Q]` lists, as tree paths."""
    names, excluded, depth = [], [], None
    for i, word in enumerate(find[:-1]):
        value = find[i + 1].strip("'\"")
        if word == "-maxdepth" and value.isdigit():
            depth = int(value)
        elif word in ("-name", "-path", "-wholename"):
            negated = i > 0 and find[i - 1] in ("-not", "!")
            (excluded if negated else names).append(value)
    base_depth = 0 if base in ("", ".") else base.count("/") + 1
    found = []
    for path in tree.under(base):
        name = posixpath.basename(path)
        if depth is not None and path.count("/") + 1 - base_depth > depth:
            continue  # deeper than -maxdepth: find never lists it
        if any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p.lstrip("./")) for p in excluded):
            continue
        if all(fnmatch.fnmatch(name, p) or ("/" in p and fnmatch.fnmatch(path, "*" + p.lstrip(".")))
               for p in names or ["*"]):  # fmt: skip
            found.append(path)
    return found


def find_start(find: list[str]) -> str:
    """The folder `find` starts in, as written (`.` when it names none)."""
    return next((w for w in find[1:] if not w.startswith("-") and w not in ("!", "(", ")")), ".")


class LoopItems:
    """Items of loops in a script run from `cwd`; `to_repo` maps a path as written to a tree path."""

    def __init__(self, tree: Tree, workspace: str, to_repo: Callable[[str, str], str | None], read: Read) -> None:
        self.tree, self.workspace, self.to_repo, self.read = tree, workspace.rstrip("/"), to_repo, read

    def absolute(self, path: str) -> str:
        return self.workspace + ("/" + path if path else "")

    def of_for(self, items: str, scope: str, cwd: str, env: dict[str, str]) -> list[str] | None:
        """A for loop's items (`for f in ITEMS`); None when one of them cannot be bounded."""
        return self._words(items, scope, cwd, env, 0)

    def of_command(self, words: list[str], cwd: str, env: dict[str, str]) -> list[str] | None:
        """What a command that feeds `while read` prints, one item a line: `find`, `ls`, `cat FILE`."""
        if not words:
            return None
        head = posixpath.basename(words[0])
        if head == "cat" and len(words) > 1:
            listed: list[str] = []
            for word in (w for w in words[1:] if not w.startswith("-")):
                more = self.of_list_file(word, cwd, env)
                if more is None:
                    return None
                listed += more
            return listed
        if head == "find":
            start = self.to_repo(cwd, expand(find_start(words), env))
            if start is None or "$" in start or not self.tree.exists(start):
                return None if start is None or "$" in start else []
            return [self.absolute(p) for p in find_listing(self.tree, words, start)]
        if head == "ls":
            found: list[str] = []
            for word in (w for w in words[1:] if not w.startswith("-")):
                more = self._word(word, "", cwd, env, MAX_DEPTH)
                if more is None:
                    return None
                found += more
            return found
        return None

    def of_list_file(self, written: str, cwd: str, env: dict[str, str]) -> list[str] | None:
        """The lines of a list file of the checkout (`done < tests/list.txt`, `cat list.txt | while
        read f`), each as written: the body resolves them where it runs. Blank and `#` lines are no
        items. None when the file's name cannot be known here; no items when it is not a file of
        the tree (absent, outside the checkout), so nothing is reached through it."""
        name = expand(written, env)
        if "$" in name or GLOB.search(name):
            return None
        path = self.to_repo(cwd, name)
        if path is None or not self.tree.is_file(path):
            return []
        lines = (line.strip() for line in self.read(path).splitlines())
        return [line for line in lines if line and not line.startswith("#")][:MAX_ITEMS]

    def _words(self, text: str, scope: str, cwd: str, env: dict[str, str], depth: int) -> list[str] | None:
        substitutions: list[str] = []

        def hold(match: re.Match[str]) -> str:
            substitutions.append(match.group(1))
            return f"\0{len(substitutions) - 1}\0"

        held = re.sub(r"\$\(([^()]*)\)", hold, text)  # `$(find tests -name 'test_*.py')`, one level
        if "$(" in held or "`" in held:
            return None
        try:
            words = shlex.split(held, comments=True)
        except ValueError:
            return None
        found: list[str] = []
        for word in words:
            taken = re.fullmatch(r"\0(\d+)\0", word)
            if taken:
                try:
                    command = shlex.split(substitutions[int(taken.group(1))])
                except ValueError:
                    return None
                more = self.of_command(command, cwd, env)
            elif "\0" in word:
                return None
            else:
                more = self._word(word, scope, cwd, env, depth)
            if more is None:
                return None
            found += more
            if len(found) > MAX_ITEMS:
                return found[:MAX_ITEMS]
        return found

    def _word(self, word: str, scope: str, cwd: str, env: dict[str, str], depth: int) -> list[str] | None:
        whole = WHOLE_REFERENCE.match(word)
        if whole:  # `$MODELS`, `"${tests[@]}"`: every word it may hold
            return self.bound(whole.group(1), scope, cwd, env, depth + 1)
        expanded = expand(word, env)
        if "$" in expanded:
            names = set(ANY_REFERENCE.findall(expanded))
            if len(names) != 1 or depth >= MAX_DEPTH:
                return None
            (name,) = names
            values = self.bound(name, scope, cwd, env, depth + 1)
            if values is None:
                return None
            found: list[str] = []
            for value in values:  # `tests/models/test_$m.py` over each value of m
                more = self._word(word, scope, cwd, {**env, name: value}, depth + 1)
                if more is None:
                    return None
                found += more
            return found
        if GLOB.search(expanded):
            return self.glob(expanded, cwd)
        return [expanded]

    def bound(self, name: str, scope: str, cwd: str, env: dict[str, str], depth: int) -> list[str] | None:
        """Every value the script gives `name` anywhere (its branches alike), words split; with the
        value it came in with where it extends itself (`X="$X more"`). None when one is unknowable."""
        if depth > MAX_DEPTH:
            return None
        values = _assignments(scope, name)
        if not values:
            known = env.get(name)
            return None if known is None else self._words(known, "", cwd, env, depth)
        found: list[str] = []
        inner = {k: v for k, v in env.items() if k != name}
        for value in values:
            own = re.sub(rf"\$\{{?{name}(?:\[[@*]\])?\}}?(?!\w)", " ", value)  # itself: what it held before
            try:
                unquoted = " ".join(shlex.split(own, comments=True))  # `X="a b"` holds two words
            except ValueError:
                return None
            more = self._words(unquoted, scope, cwd, inner, depth)
            if more is None:
                return None
            found += more
            if own != value and name in env and "$" not in env[name]:
                found += env[name].split()
        return list(dict.fromkeys(found))

    def glob(self, pattern: str, cwd: str) -> list[str]:
        """The tree's files and folders a shell glob names (`*` within one component), absolute."""
        path = self.to_repo(cwd, pattern)
        if path is None and pattern.startswith("/"):
            parts = pattern.strip("/").split("/")  # another container's mount of the checkout: a tail
            fixed = next((i for i, p in enumerate(parts) if GLOB.search(p)), len(parts))
            for i in range(1, fixed):  # the longest tail whose folders (before the glob) are the tree's
                if "/".join(parts[i:fixed]) in self.tree.dirs:
                    path = "/".join(parts[i:])
                    break
        if path is None:
            return []
        parts = path.split("/")
        fixed = next((i for i, p in enumerate(parts) if GLOB.search(p)), len(parts))
        prefix = "/".join(parts[:fixed])
        candidates = [*self.tree.under(prefix), *(d for d in self.tree.dirs if d.startswith(prefix))]
        return sorted(
            {
                self.absolute(c)
                for c in candidates
                if c.count("/") == len(parts) - 1
                and all(fnmatch.fnmatchcase(a, b) for a, b in zip(c.split("/"), parts, strict=True))
            }
        )


LEAD = re.compile(
    r"(?:^|[;&|{(]|\b(?:then|do|else)\b)[ \t]*(?:(?:export|local|readonly|declare(?:[ \t]+-\w+)*)[ \t]+)?$",
    re.M,
)


def _assignments(scope: str, name: str) -> list[str]:
    """The values `name=…`, `name+=…`, `name=(…)` are given in a script (an array's words, whole), as
    written: one shell word, wherever a command starts (`then X="$X more"; fi` too)."""
    found = []
    at = scope.find(name)
    while at >= 0:
        end = at + len(name)
        rest = (
            scope[end + 1 :]
            if scope.startswith("=", end)
            else scope[end + 2 :]
            if scope.startswith("+=", end)
            else None
        )
        line_start = scope.rfind("\n", 0, at) + 1
        own = at == 0 or not (scope[at - 1].isalnum() or scope[at - 1] in "_$")
        if rest is not None and own and LEAD.search(scope, line_start, at):
            found.append(_word(rest))
        at = scope.find(name, end)
    return found


def _word(rest: str) -> str:
    """The shell word an assignment's value is (an array's words inside its parentheses)."""
    if rest.startswith("("):
        end = rest.find(")")
        return rest[1:end] if end > 0 else ""
    if rest[:1] in ("'", '"'):
        end = _closing_quote(rest)
        return rest[: end + 1] if end > 0 else rest.split("\n")[0]
    return re.split(r"[\s;&|]", rest, maxsplit=1)[0]


def _closing_quote(text: str) -> int:
    """Index of the quote closing the one `text` starts with, or -1."""
    escaped = False
    for i, char in enumerate(text[1:], 1):
        if escaped:
            escaped = False
        elif char == "\\" and text[0] == '"':
            escaped = True
        elif char == text[0]:
            return i
    return -1
