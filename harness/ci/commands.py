"""`gpuci pipeline`, `gpuci lint` and `gpuci init`: the stage that reads a project's CI files."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness.console import say
from harness.errors import ExitCode, UsageError

if TYPE_CHECKING:  # the lint's modules are imported only where a command needs them (a warm lint none)
    from harness.ci.lint.cache import AnalysisCache
    from harness.ci.lint.files import CommitFiles, Files
    from harness.ci.lint.findings import Finding
    from harness.ci.lint.memo import RunMemo


def pipeline_command(args: argparse.Namespace) -> int:
    from harness.ci import buildkite
    from harness.declare.config import config_with_flags
    from harness.declare.within_policy import check_areas

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
    from harness.ci.lint.files import CheckoutFiles

    root = args.root.resolve()
    files = CheckoutFiles(root)
    if args.since:
        return _lint_since(args, root, files)
    findings, allowed = _lint_checkout(args, root, files)
    return _report(args, findings, allowed)


def _memo_settings(args: argparse.Namespace) -> dict[str, object]:
    """What of the command line a run's findings depend on (not how they are printed, nor --since:
    `lint` and `lint --since`'s checkout side share their memo)."""
    return {k: v for k, v in vars(args).items() if k not in ("func", "format", "since")}


def _lint_checkout(
    args: argparse.Namespace, root: Path, files: Files, cache: AnalysisCache | None = None
) -> tuple[list[Finding], int]:
    """The checkout's findings: the last run's replayed while nothing it read changed, else run whole."""
    from harness.ci.lint.memo import RunMemo, run_key
    from harness.git import run_git

    names = files.names()
    memo = None
    if names is not None and not args.no_cache:  # a warm run whose inputs are all unchanged: replayed
        head = run_git(root, "rev-parse", "--verify", "--quiet", "HEAD").stdout.strip()
        memo = RunMemo(root, run_key(root, _memo_settings(args)), names, head)
    replayed = memo.replay() if memo is not None else None
    if replayed is not None:
        findings, allowed, said = replayed
        for line in said:
            say(line)
        return findings, allowed
    return _lint_whole(args, root, files, memo, cache)


def _lint_whole(
    args: argparse.Namespace, root: Path, files: Files, memo: RunMemo | None, cache: AnalysisCache | None
) -> tuple[list[Finding], int]:
    """The lint run whole (the analysis cache answering for unchanged files), kept in `memo`."""
    from harness.ci import lint
    from harness.ci.lint.cache import AnalysisCache
    from harness.ci.lint.memo import RecordingFiles
    from harness.declare.config import config_with_flags

    cache = cache or AnalysisCache.open(enabled=not args.no_cache)
    recording = RecordingFiles(files)
    config = config_with_flags(root, args, for_host=False)  # the lint reads; it grants nothing
    said: list[str] = []
    areas = loaded_areas(root, config.declarations, args.verbose, _origin(args), said=said)
    try:
        findings, allowed = lint.lint(root, areas, config, cache, recording)
    finally:
        cache.save()
    if memo is not None:
        from harness.declare.sources import Declaration
        from harness.redact import Redactor

        declared = [Declaration.parse(d, "declarations").pattern.strip("/") for d in config.declarations]
        masked = [Redactor(os.environ).text(line) for line in said]  # as printed: no secret stored
        memo.keep(findings, allowed, masked, recording.paths, [a.path for a in areas], declared)
    return findings, allowed


def _lint_since(args: argparse.Namespace, root: Path, files: Files) -> int:
    """Both trees' findings compared. The checkout's come as a plain lint's (replayed while
    unchanged); a commit's depend on nothing but the commit, the code and the settings, so they are
    kept under those and replayed without a check."""
    from harness.ci.lint.cache import AnalysisCache
    from harness.ci.lint.findings import as_json, as_text, failing
    from harness.ci.lint.memo import CommitMemo, run_key
    from harness.ci.lint.since import lint_since
    from harness.reports.annotate import annotate, block

    caches: list[AnalysisCache] = []  # one for both trees, opened when one is run whole: most files agree

    def cache() -> AnalysisCache:
        if not caches:
            caches.append(AnalysisCache.open(enabled=not args.no_cache))
        return caches[0]

    def run_lint(tree: Path, at_commit: CommitFiles | None = None) -> list[Finding]:
        if at_commit is None:
            return _lint_checkout(args, root, files, cache())[0]
        memo = None if args.no_cache else CommitMemo(run_key(root, {**_memo_settings(args), "at": at_commit.commit}))
        kept = memo.replay() if memo is not None else None
        if kept is not None:
            return kept
        findings = _lint_commit(args, tree, at_commit, cache())
        if memo is not None:
            memo.keep(findings)
        return findings

    introduced, resolved = lint_since(root, args.since, run_lint)
    if args.format == "json":
        sys.stdout.write(as_json(introduced))
    else:
        text = as_text(introduced, 0) if introduced else ""
        counts = f"{len(introduced)} introduced, {len(resolved)} resolved"
        sys.stdout.write(text + f"gpuci lint --since {args.since}: {counts}\n")
    if failing(introduced):
        body = f"**gpuci lint**: this change loses CI coverage\n\n{block(as_text(introduced, 0))}"
        annotate(body, "gpuci-lint", "error")
    return int(ExitCode.TESTS_FAILED) if failing(introduced) else 0


def _lint_commit(args: argparse.Namespace, tree: Path, at_commit: CommitFiles, cache: AnalysisCache) -> list[Finding]:
    """A commit's findings, its files read from git (`tree` stands for its root)."""
    from harness.ci import lint
    from harness.declare.config import config_with_flags

    config = config_with_flags(tree, args, for_host=False)  # the lint reads; it grants nothing
    at_commit.place_declared(tree, config.declarations)
    areas = loaded_areas(tree, config.declarations, args.verbose, _origin(args), quiet=True)  # a base's: not news
    try:
        return lint.lint(tree, areas, config, cache, at_commit)[0]
    finally:
        cache.save()


def _report(args: argparse.Namespace, findings: list[Finding], allowed: int) -> int:
    from harness.ci.lint.findings import as_json, as_text, failing

    sys.stdout.write(as_json(findings) if args.format == "json" else as_text(findings, allowed))
    if failing(findings):
        from harness.reports.annotate import annotate, block

        body = "**gpuci lint**: CI does not run everything it should\n\n" + block(as_text(findings, allowed))
        annotate(body, "gpuci-lint", "error")
    return int(ExitCode.TESTS_FAILED) if failing(findings) else 0


def changed_on_this_build(root: Path, default_branch: str) -> tuple[str, ...] | None:
    """In a Buildkite build of a branch: the branch's changes; on the default branch: everything."""
    from harness.ci import buildkite
    from harness.ci_provider import detect

    base = detect().branch_base(default_branch)
    if base is None:
        return None
    return buildkite.changed_files(root, f"origin/{base}")


def _origin(args: argparse.Namespace) -> str | None:
    """Where the declarations entries come from, for their errors: the flag, the variable, or [tool.gpuci]."""
    from harness.declare.settings import BY_KEY

    if getattr(args, "declarations", None):
        return "--declarations"
    return BY_KEY["declarations"].env if os.environ.get(BY_KEY["declarations"].env, "").strip() else None


def loaded_areas(  # type: ignore[type-arg]
    root: Path,
    declarations: tuple[str, ...],
    verbose: bool = False,
    origin: str | None = None,
    quiet: bool = False,
    said: list[str] | None = None,
) -> list:
    """The areas; the constructs gpuci cannot honour said (never dropped silently): one line per
    kind with a count and the first place, or each with file and line under --verbose. Each line
    said is added to `said` too (a replayed lint says them again)."""
    from harness.declare.sources import load_areas

    areas = load_areas(root, declarations, origin)
    warnings = [] if quiet else [w for area in areas for w in area.warnings]  # quiet: a base tree's, not news
    lines: list[str] = []
    if verbose:
        lines = [f"warning: {warning}" for warning in warnings]
    else:
        kinds: dict[str, list[str]] = {}
        for warning in warnings:
            kinds.setdefault(warning_kind(warning), []).append(warning)
        for kind, each in kinds.items():
            if len(each) == 1:  # alone of its kind: said whole, names and all
                lines.append(f"warning: {each[0]}")
                continue
            first = each[0].split(": ", 1)[0]
            lines.append(f"warning: {len(each)}× {kind} (first at {first}; --verbose lists them)")
    for line in lines:
        say(line)
    if said is not None:
        said.extend(lines)
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
    from harness.ci.init import apply, next_step, plan

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
        say(next_step(root, changes))
    return 0
