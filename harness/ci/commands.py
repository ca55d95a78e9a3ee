"""`gpuci pipeline`, `gpuci lint` and `gpuci init`: the stage that reads a project's CI files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from harness.console import say
from harness.declare.config import config_with_flags
from harness.declare.within_policy import check_areas
from harness.errors import ExitCode, UsageError


def pipeline_command(args: argparse.Namespace) -> int:
    from harness.ci import buildkite

    root = args.root.resolve()
    config = config_with_flags(root, args)
    changed: tuple[str, ...] | None = None
    if args.changed_files:
        try:
            changed = tuple(line.strip() for line in args.changed_files.read_text().splitlines() if line.strip())
        except OSError as exc:
            raise UsageError(f"cannot read {args.changed_files}: {exc.strerror}.") from None
    elif args.base:
        changed = buildkite.changed_files(root, args.base)
    elif not args.all:
        changed = changed_on_this_build(root, config.default_branch)
    selection = buildkite.Selection(
        changed, args.include_optional, config.run_all, config.dependency_match, config.dependency_match_for
    )
    areas = loaded_areas(root, config.declarations, args.verbose, _origin(args))
    check_areas(config.policy, areas)  # each step's queue, limits and network: asks the policy allows
    sys.stdout.write(buildkite.to_yaml(buildkite.generate(areas, config, selection)))
    return 0


def lint_command(args: argparse.Namespace) -> int:
    from harness.ci import lint
    from harness.ci.lint.cache import AnalysisCache
    from harness.ci.lint.files import Files
    from harness.ci.lint.findings import failing
    from harness.reports.annotate import annotate, block

    root = args.root.resolve()
    cache = AnalysisCache.open(enabled=not args.no_cache)  # one for both trees of --since: most files agree

    def run_lint(tree: Path, files: Files | None = None) -> tuple[list[lint.Finding], int]:
        config = config_with_flags(tree, args, for_host=False)  # the lint reads; it grants nothing
        if files is not None:
            files.place_declared(tree, config.declarations)
        areas = loaded_areas(tree, config.declarations, args.verbose, _origin(args), quiet=files is not None)
        try:
            return lint.lint(tree, areas, config, cache, files)
        finally:
            cache.save()

    if args.since:
        from harness.ci.lint.since import lint_since

        introduced, resolved = lint_since(root, args.since, lambda tree, files: run_lint(tree, files)[0])
        if args.format == "json":
            sys.stdout.write(lint.as_json(introduced))
        else:
            text = lint.as_text(introduced, 0) if introduced else ""
            sys.stdout.write(
                text + f"gpuci lint --since {args.since}: {len(introduced)} introduced, {len(resolved)} resolved\n"
            )
        if failing(introduced):
            body = f"**gpuci lint**: this change loses CI coverage\n\n{block(lint.as_text(introduced, 0))}"
            annotate(body, "gpuci-lint", "error")
        return int(ExitCode.TESTS_FAILED) if failing(introduced) else 0
    findings, allowed = run_lint(root)
    sys.stdout.write(lint.as_json(findings) if args.format == "json" else lint.as_text(findings, allowed))
    if failing(findings):
        body = "**gpuci lint**: CI does not run everything it should\n\n" + block(lint.as_text(findings, allowed))
        annotate(body, "gpuci-lint", "error")
    return int(ExitCode.TESTS_FAILED) if failing(findings) else 0


def changed_on_this_build(root: Path, default_branch: str) -> tuple[str, ...] | None:
    """In a Buildkite build of a branch: the branch's changes; on the default branch: everything."""
    from harness.ci import buildkite

    branch = os.environ.get("BUILDKITE_BRANCH")
    default = os.environ.get("BUILDKITE_PIPELINE_DEFAULT_BRANCH", default_branch)
    if not branch or branch == default:
        return None
    return buildkite.changed_files(root, f"origin/{default}")


def _origin(args: argparse.Namespace) -> str | None:
    """Where the declarations entries come from, for their errors: the flag, the variable, or [tool.gpuci]."""
    from harness.declare.settings import BY_KEY

    if getattr(args, "declarations", None):
        return "--declarations"
    return BY_KEY["declarations"].env if os.environ.get(BY_KEY["declarations"].env, "").strip() else None


def loaded_areas(  # type: ignore[type-arg]
    root: Path, declarations: tuple[str, ...], verbose: bool = False, origin: str | None = None, quiet: bool = False
) -> list:
    """The areas; the constructs gpuci cannot honour said (never dropped silently): one line per
    kind with a count and the first place, or each with file and line under --verbose."""
    from harness.declare.sources import load_areas

    areas = load_areas(root, declarations, origin)
    warnings = [] if quiet else [w for area in areas for w in area.warnings]  # quiet: a base tree's, not news
    if verbose:
        for warning in warnings:
            say(f"warning: {warning}")
        return areas
    kinds: dict[str, list[str]] = {}
    for warning in warnings:
        kinds.setdefault(warning_kind(warning), []).append(warning)
    for kind, each in kinds.items():
        if len(each) == 1:  # alone of its kind: said whole, names and all
            say(f"warning: {each[0]}")
            continue
        first = each[0].split(": ", 1)[0]
        say(f"warning: {len(each)}× {kind} (first at {first}; --verbose lists them)")
    return areas


def warning_kind(warning: str) -> str:
    """A warning without its place and names: `FILE:LINE: step 'x': 'matrix' is …` is `'matrix' is …`."""
    import re

    text = warning.split(": ", 1)[1] if ": " in warning else warning
    text = re.sub(r"^step '[^']*': ", "", text)
    text = re.sub(r"labelled '[^']*'", "labelled …", text)
    text = re.sub(r"selected as '[^']*'", "selected as '… #N'", text)
    return text[:160]


def nox_command(nox_args: list[str]) -> int:
    """`gpuci nox ARGS`: nox in gpuci's own Python, where gpuci (and nox, its dependency) are installed;
    what a noxfile from `gpuci init` runs when the nox that read it has no gpuci (pipx, `uv tool`)."""
    import importlib.util

    if importlib.util.find_spec("nox") is None:
        raise UsageError(f"gpuci's Python ({sys.executable}) has no nox; reinstall gpuci with its dependencies.")
    os.environ["GPUCI_NOX"] = "1"  # the noxfile's fallback never runs twice
    sys.stdout.flush()
    sys.stderr.flush()
    # -I: run in the checkout, `-m nox` would import the checkout's own `nox/` folder (or sitecustomize) first.
    os.execv(sys.executable, [sys.executable, "-I", "-m", "nox", *nox_args])


def init_command(args: argparse.Namespace) -> int:
    from harness.ci.init import apply, plan

    root = args.root.resolve()
    if not root.is_dir():
        raise UsageError(f"{root} is not a folder; run gpuci init in the repository's root.")
    changes = plan(root)
    if not changes:
        say(f"{root} already has everything gpuci needs; nothing written")
        return 0
    for change in changes:
        verb = {
            "create": "would create" if args.dry_run else "created",
            "append": "would add to" if args.dry_run else "added to",
        }
        why = f" ({change.why})" if change.why else ""
        print(f"{verb[change.action]} {change.path.relative_to(root)}{why}")
        if args.dry_run:
            print("".join(f"    {line}\n" for line in change.text.strip("\n").splitlines()))
    if not args.dry_run:
        apply(changes)
        say("next: declare your tests in .buildkite/test_areas/, then `nox -l` and `nox -s cpu_<area>`")
    return 0
