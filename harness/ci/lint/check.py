"""The checks: each step resolved against the tree, then what no step reaches or sets."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from harness.ci.lint.allow import load_allowed
from harness.ci.lint.cache import Analysis, AnalysisCache, T
from harness.ci.lint.files import CheckoutFiles, Files
from harness.ci.lint.findings import Finding, dedupe
from harness.ci.lint.gates import PYTHON_GATES, is_ambient
from harness.ci.lint.homes import PENDING, Homes
from harness.ci.lint.module_facts import SELF_SET_NAMES, TEST_FACTS
from harness.ci.lint.platform_skips import PLATFORM_SKIP, PLATFORM_SKIP_IF_IT_PARSES
from harness.ci.lint.resolver import Resolver
from harness.ci.lint.scripts_not_tests import TEST_NEEDS, project_fixtures, why_a_script
from harness.ci.lint.shell_gates import SHELL_GATES
from harness.ci.lint.tree import PytestConfig, Tree
from harness.declare.areas import Area, Step
from harness.declare.config import ProjectConfig
from harness.declare.dependencies import mode_for
from harness.gpu.vendors import foreign_default, vendors

Analyse = Callable[[Analysis[T], str], T]


def lint(
    root: Path,
    areas: list[Area],
    config: ProjectConfig,
    cache: AnalysisCache | None = None,
    files: Files | None = None,
) -> tuple[list[Finding], int]:
    """Every finding not on the allow-list, and how many the allow-list accepted. `cache` keeps what
    each file's text says between runs (keyed by the text); without one, nothing outlives this call.
    `files` are the tree's (a commit's, for `--since`); the checkout at `root` by default."""
    root = Path(root)
    files = files or CheckoutFiles(root)
    tree = Tree.scan(root, files.names())
    cache = cache or AnalysisCache(None)
    resolver = Resolver(root, tree, config, files, cache)
    homes = Homes(tree, files.history(), resolver.read, cache)

    analyse = resolver.analyse

    def unkept(analysis: Analysis[T], path: str) -> T:  # the package's modules: read once, text not kept
        return cache.for_path(analysis, path, files.fingerprint(path), lambda: files.read(path))

    areas = [*areas, *_external(root, tree, config)]
    findings: list[Finding] = []
    reached: set[str] = set()
    gates_checked: dict[str, list[tuple[Area, Step, set[str]]]] = {}
    runs: dict[str, list[tuple[str, int, str, str]]] = {}  # test module -> (file, line, label, platform)
    for area in areas:
        rel = _rel(root, area.path)
        for base in area.steps:
            forms = {platform: base.on(platform) for platform in base.platforms}  # one object per distinct form
            reaches = {id(step): resolver.step(step) for step in forms.values()}
            for platform, step in forms.items():
                # A step on hardware gpuci has no platform for runs its tests somewhere unknown ("?").
                known = "?" if other_hardware(step.device or "") else platform
                for path in reaches[id(step)].files:
                    if path.rpartition("/")[2].startswith("test_"):
                        runs.setdefault(path, []).append((rel, step.line, step.label, known))
            for step in {id(f): f for f in forms.values()}.values():
                reach = reaches[id(step)]
                for path, written in dict.fromkeys(reach.missing):
                    option = reach.after_unknown.get(written)
                    message = (
                        f"pytest has no option {option} here (no conftest adds it): its value {written!r} "
                        "is read as a test path, which does not exist"
                        if option
                        else f"{written!r} (resolved to {path or '.'}) does not exist"
                    )
                    findings.append(
                        Finding(
                            "missing-path",
                            rel,
                            step.line,
                            step.label,
                            message,
                            path=path,
                            suggestion=PENDING if not option else None,  # looked up with the others
                        )
                    )
                for path, written, option in dict.fromkeys(reach.stale):
                    findings.append(
                        Finding(
                            "stale-ignore",
                            rel,
                            step.line,
                            step.label,
                            f"{option} {written!r} (resolved to {path or '.'}) names nothing that exists: pytest "
                            "accepts it and no test is lost, but it no longer does anything",
                            path=path,
                            suggestion=f"drop {option} {written}",
                        )
                    )
                unresolved = list(dict.fromkeys(reach.unresolved))
                if unresolved:  # once per step, naming every target it could not bound
                    words = " and ".join(f"`{w}`" for w in unresolved)
                    findings.append(
                        Finding(
                            "unresolved-target",
                            rel,
                            step.line,
                            step.label,
                            f"step {step.label!r} runs pytest on {words}, which the lint cannot resolve: "
                            "it counts as reaching nothing, so tests only it runs are reported unrun",
                            variable=" ".join(unresolved),
                            suggestion="name the files, or loop over a glob, a list file or a `find` the lint can read",
                        )
                    )
                reached |= reach.files
                # Gates count where they run: scripts the step runs, test modules its pytest collects.
                ran = set(reach.scripts) | {p for t, _ in reach.targets for p in tree.under(t) if p.endswith(".py")}
                for path in ran:
                    gates_checked.setdefault(path, []).append((area, step, reach.env))
            mode = mode_for(area.path, config.dependency_match, config.dependency_match_for)
            findings.extend(_dead_dependencies(tree, rel, base, mode, config.run_all))
    read = resolver.read  # each file read once per lint, by whichever step or check needs it first
    pytest_config = PytestConfig.read(root)
    fixtures: frozenset[str] | None = None  # read once, and only if a candidate needs it
    for path in pytest_config.test_files(tree):
        if path in reached:
            continue
        defines, has_main, tests = analyse(TEST_FACTS, path)
        if not defines:
            continue
        if has_main:
            fixtures = fixtures if fixtures is not None else project_fixtures(tree.files, read)
            why = why_a_script(analyse(TEST_NEEDS, path), fixtures)
            if why is not None:  # a script named like a test: pytest would error on it, not run tests
                findings.append(Finding("script-not-test", path, 0, "", f"{path}: {why}", path=path))
                continue
        message = f"{path} is collected by pytest but no step runs it"
        findings.append(Finding("unrun-test", path, 0, "", message, path=path, holds=tests))
    # The project's own modules are read for one pattern, once, and not kept (files.read, not read).
    findings.extend(_unset_gates(root, gates_checked, read, analyse, lambda: _set_by_the_project(tree, unkept)))
    findings.extend(_platform_skips(runs, analyse))
    findings = homes.fill(findings)  # where missing paths went, all looked up at once
    allowed = load_allowed(root)
    kept = [f for f in findings if not any(a.covers(f) for a in allowed)]
    return dedupe(kept), len(findings) - len(kept)


# Agents of hardware gpuci has no platform for (Intel GPUs and HPUs, NPUs, TPUs, scripts run from
# outside the pipeline files): a test they run may run there, so no platform finding is drawn for it.
OTHER_HARDWARE = re.compile(r"intel_gpu|xpu|hpu|npu|tpu|ascend|gaudi|neuron|external", re.I)


def other_hardware(device: str) -> bool:
    """An agent of hardware no registered vendor claims (a vendor's own agents are its platform's)."""
    claimed = any(v.foreign.agent_device and re.match(v.foreign.agent_device, device) for v in vendors())
    return bool(OTHER_HARDWARE.search(device)) and not claimed


EXTERNAL = "run by CI from outside the pipeline files"


def _external(root: Path, tree: Tree, config: ProjectConfig) -> list[Area]:
    """Each script of [tool.gpuci] external_scripts as a step of its own, run from the checkout's root
    on hardware gpuci has no platform for (no platform finding is drawn from it)."""
    scripts = sorted({p for g in config.external_scripts for p in tree.files if fnmatch.fnmatch(p, g)})
    platforms = (foreign_default().platform,)  # read as a foreign step is
    return [
        Area(
            "external",
            "",
            root / path,
            (Step(EXTERNAL, (f"bash {path}",), platforms, 1, device="external", extra={"no_plugin": True}),),
        )
        for path in scripts
    ]


def _platform_skips(runs: dict[str, list[tuple[str, int, str, str]]], analyse: Analyse) -> Iterable[Finding]:
    """A module that skips itself whole on every platform whose steps run it: its tests never run."""
    for path, steps in sorted(runs.items()):
        platforms = {platform for *_, platform in steps}
        if not path.endswith(".py") or "?" in platforms:
            continue
        # The cheap answer first (the module's skip statements parsed alone); the module is parsed
        # whole only where that answer would be a finding, to make sure the module parses at all.
        skip = analyse(PLATFORM_SKIP_IF_IT_PARSES, path)
        if skip is None or not platforms <= skip.platforms:
            continue
        skip = analyse(PLATFORM_SKIP, path)
        if skip is None or not platforms <= skip.platforms:
            continue
        file, line, label, _ = steps[0]
        names = "/".join(sorted(platforms))
        yield Finding(
            "platform-skip",
            file,
            line,
            label,
            f"{path}:{skip.line} skips itself on {names} ({skip.condition}), and only {names} steps run it, "
            "so its tests never run",
            path=path,
            suggestion=f"run {path} in a step of a platform it does not skip on, or drop it from this one",
        )


def _rel(root: Path, path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


def _dead_dependencies(tree: Tree, rel: str, step: Step, mode: str, run_all: tuple[str, ...]) -> Iterable[Finding]:
    deps = list(step.source_file_dependencies)
    for platform in step.platforms:
        deps += [d for d in step.on(platform).source_file_dependencies if d not in deps]
    live: list[str] | None = None  # entries that still match a file: read once, on the first dead one
    for entry in deps:
        path = entry.lstrip("!").strip().strip("/")
        if any(c in path for c in "*?[") or tree.exists(path):
            continue
        if mode != "component" and tree.matched_by(entry.lstrip("!"), mode):
            continue  # the generator matches by substring or prefix: some file still triggers the step
        hint = next(
            (f"{path}{ext}" for ext in (".py", ".sh", ".yaml", ".yml", ".txt") if tree.exists(path + ext)),
            None,
        )
        if live is None:
            live = [d for d in deps if not d.startswith("!") and d != entry and _matches_any(tree, d, mode)]
        still = [d for d in live if d != entry]
        reset = [p for p in run_all if _matches_any(tree, p, "component")]
        if still:
            shown = ", ".join(repr(d) for d in still[:3]) + (f" and {len(still) - 3} more" if len(still) > 3 else "")
            effect = f"the step is still triggered by its other entries ({shown})"
        elif reset:
            effect = f"no entry of the step matches a file: only a change under run_all ({', '.join(reset)}) runs it"
        else:
            effect = "no entry of the step matches a file, so no change ever triggers this step"
        yield Finding(
            "dead-dependency",
            rel,
            step.line,
            step.label,
            f"source_file_dependencies entry {entry!r} matches no file; {effect}",
            path=path,
            suggestion=f"did you mean {hint!r} (with its extension)?" if hint else PENDING,
        )


def _matches_any(tree: Tree, entry: str, mode: str) -> bool:
    path = entry.strip().strip("/")
    if any(c in path for c in "*?["):
        return any(fnmatch.fnmatch(f, path) or fnmatch.fnmatch(f, path + "/*") for f in tree.files)
    return tree.exists(path) or (mode != "component" and tree.matched_by(entry, mode))


def _set_by_the_project(tree: Tree, analyse: Analyse) -> set[str]:
    """Read once, on the first gate candidate (each module's answer kept by the cache, its text not:
    `analyse` here reads through the files source, not the resolver, which keeps what it reads)."""
    names: set[str] = set()
    for path in tree.files:
        if path.endswith(".py") and not path.rpartition("/")[2].startswith(("test_", "conftest")):
            names.update(analyse(SELF_SET_NAMES, path))
    return names


def _unset_gates(
    root: Path,
    runs: dict[str, list[tuple[Area, Step, set[str]]]],
    read: Callable[[str], str],
    analyse: Analyse,
    set_by_the_project: Callable[[], set[str]],
) -> Iterable[Finding]:
    self_set: set[str] | None = None
    for path, steps in sorted(runs.items()):
        if path.endswith(".sh"):
            gates = analyse(SHELL_GATES, path)
        elif path.endswith(".py") and path.rpartition("/")[2].startswith(("test_", "conftest")):
            variables = analyse(PYTHON_GATES, path)
            if not variables:
                continue
            text = read(path)
            # What a module's gates hold back: its tests (a test moved into a gated module is a new loss).
            held = hashlib.sha256(" ".join(sorted(re.findall(r"def (test\w*)", text))).encode()).hexdigest()[:12]
            gates = dict.fromkeys(variables, (0, held))
        else:
            continue
        for variable, (line, holds) in sorted(gates.items()):
            if is_ambient(variable) or any(variable in env for _, _, env in steps):
                continue
            self_set = set_by_the_project() if self_set is None else self_set
            if variable in self_set:
                continue
            area, step, _ = steps[0]
            where = f"{path}:{line}" if line else path
            yield Finding(
                "unset-gate",
                _rel(root, area.path),
                step.line,
                step.label,
                f"{where} runs tests only when {variable} is set, and no step that runs it sets {variable}",
                path=path,
                variable=variable,
                suggestion=f"add a step (or env: {{{variable}: ...}}) that runs {path} with {variable} set",
                holds=holds,
            )
