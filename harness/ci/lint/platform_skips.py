"""Test modules that skip themselves whole on a platform: `pytestmark = pytest.mark.skipif(not
current_platform.is_cuda(), …)` or a module-level `if not current_platform.is_rocm(): pytest.skip(…,
allow_module_level=True)`. Run only by that platform's steps, such a module's tests never run.

Conditions are evaluated per platform from what the platform checks mean (each vendor's lint names,
harness.gpu.vendors); a condition on anything else (a device capability, an optional package, a torch op) is not judged.
"""

from __future__ import annotations

import ast
from dataclasses import asdict, dataclass
from typing import Any

from harness.ci.lint.cache import Analysis
from harness.ci.lint.top_level import parse_wanted
from harness.declare.platforms import platform_names
from harness.gpu.vendors import vendors

# Checks known to be false on every platform gpuci has (other hardware's); the vendors name their own.
OTHER_PLATFORM_CHECKS = ("is_xpu", "is_tpu")


def _true_on(name: str, attribute: bool) -> frozenset[str] | None:
    """The platforms where a check (a call, or an attribute) is true; None when no vendor knows it."""
    platforms = frozenset(
        v.platform for v in vendors() if name in (v.lint.skip_attributes if attribute else v.lint.skip_calls)
    )
    if platforms or (not attribute and name in OTHER_PLATFORM_CHECKS):
        return platforms
    return None


class Unknown(Exception):
    """A condition that depends on more than the platform."""


@dataclass(frozen=True)
class PlatformSkip:
    platforms: frozenset[str]  # where the whole module skips
    line: int
    condition: str


def platform_skip(text: str) -> PlatformSkip | None:
    """Where a module skips all its tests by platform, or None when it does not (or it cannot be told)."""
    skip = platform_skip_if_it_parses(text)
    if skip is None:
        return None
    try:
        ast.parse(text)  # the skip holds only if the whole module parses: it was found in a part
    except (SyntaxError, ValueError, RecursionError):  # a pull request's module may nest past the parser
        return None
    return skip


def platform_skip_if_it_parses(text: str) -> PlatformSkip | None:
    """`platform_skip` for a module that parses as a whole, which this does not check: it is
    `platform_skip`'s answer or, for a module that does not parse, a skip where that says None.
    Only module-level `pytestmark = …` and `if …: skip(allow_module_level=…)` statements count, so
    only those are parsed, each alone (harness.ci.lint.top_level); the whole where the scan is unsure."""
    if "pytestmark" not in text and "allow_module_level" not in text:
        return None  # no module-wide skip: not worth parsing
    if not _may_check_a_platform(text):
        return None  # a skip, but no condition it could have is judged: not worth parsing either
    tree = parse_wanted(text, ("pytestmark", "allow_module_level"))
    if tree is None:
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError, RecursionError):
            return None
    return _first_skip(tree)


def _first_skip(tree: ast.Module) -> PlatformSkip | None:
    """The first of the module's statements that skips it whole on some platforms but not all."""
    platforms = platform_names()
    for node in tree.body:
        for condition in _module_skip_conditions(node):
            try:
                skipped = frozenset(p for p in platforms if _evaluate(condition, p))
            except Unknown:
                continue
            if skipped and skipped != frozenset(platforms):
                return PlatformSkip(skipped, condition.lineno, ast.unparse(condition))
    return None


def _may_check_a_platform(text: str) -> bool:
    """Whether the text could hold a platform check the conditions are judged by: a condition with
    none is never judged (`_evaluate` raises Unknown), and a check's names (`torch.version.hip`:
    torch, version, hip) are written in the source as they read. A text that is not ASCII may spell
    a name that Python normalises into one: it is parsed."""
    if not text.isascii():
        return True
    names = {*OTHER_PLATFORM_CHECKS, *(n for v in vendors() for n in (*v.lint.skip_calls, *v.lint.skip_attributes))}
    return any(all(part in text for part in name.split(".")) for name in names)


def _module_skip_conditions(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
        marks = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
        return [
            m.args[0] for m in marks if isinstance(m, ast.Call) and ast.unparse(m.func).endswith("skipif") and m.args
        ]
    if isinstance(node, ast.If) and any(_skips_module(n) for n in node.body):
        return [node.test]
    return []


def _skips_module(node: ast.stmt) -> bool:
    return (
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) in ("pytest.skip", "skip")
        and any(k.arg == "allow_module_level" for k in node.value.keywords)
    )


def _evaluate(node: ast.expr, platform: str) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return not _evaluate(node.operand, platform)
    if isinstance(node, ast.BoolOp):
        values = [_evaluate(v, platform) for v in node.values]
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and not node.args:
        # `current_platform.is_X()` (any receiver), then a dotted call (`torch.X.is_available()`)
        for name in (node.func.attr, ast.unparse(node.func)):
            if (where := _true_on(name, attribute=False)) is not None:
                return platform in where
    if isinstance(node, ast.Attribute) and (where := _true_on(ast.unparse(node), attribute=True)) is not None:
        return platform in where
    raise Unknown


def _encode(skip: PlatformSkip | None) -> dict[str, Any] | None:
    return None if skip is None else {**asdict(skip), "platforms": sorted(skip.platforms)}


def _decode(data: dict[str, Any] | None) -> PlatformSkip | None:
    return None if data is None else PlatformSkip(frozenset(data["platforms"]), data["line"], data["condition"])


PLATFORM_SKIP: Analysis[PlatformSkip | None] = Analysis("platform-skip", platform_skip, _encode, _decode)
PLATFORM_SKIP_IF_IT_PARSES: Analysis[PlatformSkip | None] = Analysis(
    "platform-skip-if-it-parses", platform_skip_if_it_parses, _encode, _decode
)
