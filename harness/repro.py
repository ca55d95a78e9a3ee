"""Reproduce a run from its report: same commit, same image, same command, on this machine.

A nightly step fails on Buildkite and its report.json is an artifact; `python -m harness repro
REPORT` runs the same step at the recorded commit (a git worktree of it), in the very image the
original ran in (here by its ID, or pulled by the registry digest the report records and checked
against that ID), with the same pytest arguments and number of GPUs, and writes its own report
that points at the original. Only `--rebuild` builds from the recipe instead (refused when the
recipe there hashes differently), and it says loudly which packages differ. Every run setting comes
through the path `gpuci run` takes (harness.declare.request.resolve, then harness.run.commands.run_request):
the commit's `[tool.gpuci]` (limits, network, mounts, grace, timeouts, secrets) under this host's flags
and GPUCI_<KEY> variables, within this host's policy. Secrets are never in a report: the commit's
`secrets` are taken from the local environment by name, as `run` takes them, and any other by
`--env NAME`.

A report is untrusted input (an artifact anyone with the link can have edited): it is read with a
size cap, its run id, names, commit and image references are checked before any is used (no
`..`, no absolute path, no option for git, plain characters), and it never decides that a run
leaves its container: a run the report says ran on the host is reproduced in its platform's
container unless the user says `--no-container` on the command line.
"""

from __future__ import annotations

import os
import re
import socket
import stat
import subprocess
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.console import say
from harness.errors import ExitCode, UsageError
from harness.git import run_git
from harness.redact import MASK
from harness.reports.report import MalformedReport, RunReport
from harness.state import check_state

if TYPE_CHECKING:
    from harness.declare.config import ProjectConfig
    from harness.images.recipe import ImageRecipe

REPRO_DIR = Path(".gpuci") / "repro"
REPORT_LIMIT = 32 * 1024 * 1024  # a report with every test's outcome of a huge suite is a few MiB
# What a report's names may hold: they become folder names and git's arguments.
PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}")
COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
CONTENT_HASH = re.compile(r"[0-9a-f]{16,128}")
REPO_DIGEST = re.compile(r"[a-z0-9][a-z0-9._:/-]{0,254}@sha256:[0-9a-f]{64}")
IMAGE_REF = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,254}")


def load_report(source: str) -> RunReport:
    """A report by path (file or run directory) or by URL (a Buildkite artifact link), checked."""
    from harness.untrusted import parse_json

    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=60) as response:
                raw = response.read(REPORT_LIMIT + 1)
        else:
            path = Path(source)
            with open(path / "report.json" if path.is_dir() else path, "rb") as file:
                info = os.fstat(file.fileno())
                if not stat.S_ISREG(info.st_mode) or info.st_size > REPORT_LIMIT:
                    raise ValueError("not a regular file" if not stat.S_ISREG(info.st_mode) else "too large")
                raw = file.read(REPORT_LIMIT + 1)
        if len(raw) > REPORT_LIMIT:
            raise ValueError("too large")
        data = parse_json(raw)
    except (OSError, ValueError) as exc:
        why = f"larger than {REPORT_LIMIT // 2**20} MiB" if str(exc) == "too large" else str(exc)
        raise UsageError(
            f"cannot read the report {_shown(source)}: {_shown(why)}. Pass a report.json, its folder or its URL."
        ) from None
    try:
        report = RunReport.from_json(data, required=("run_id", "area", "step", "platform", "git", "image"))
    except MalformedReport as problem:
        raise UsageError(
            f"{_shown(source)} {_shown(str(problem))}: only reports of `python -m harness run` steps can be reproduced."
        ) from None
    check_report(report, _shown(source))
    return report


def _shown(text: str) -> str:
    """A report's text as it may be printed: no control characters, at most 200 of them."""
    return "".join(c if c.isprintable() else "?" for c in text[:200])


def check_report(report: RunReport, source: str) -> None:
    """UsageError naming the first field that is not what gpuci writes: a report is untrusted input."""
    from harness.declare.platforms import platform_names

    git = report.git or {}
    image = report.image or {}
    checks: list[tuple[str, object, re.Pattern[str] | tuple[str, ...] | None]] = [
        ("run_id", report.run_id, PLAIN),
        ("area", report.area, PLAIN),
        ("platform", report.platform, platform_names()),
        ("mode", report.mode or "container", ("container", "host")),
        ("git.commit", git.get("commit"), COMMIT),
        ("image.id", image.get("id"), IMAGE_ID),
        ("image.content_hash", image.get("content_hash"), CONTENT_HASH),
        ("image.repo_digest", image.get("repo_digest"), REPO_DIGEST),
        ("image.base_image", image.get("base_image"), IMAGE_REF),
    ]
    for name, value, rule in checks:
        if value is None or (value == "" and name.startswith("image.")):
            continue
        text = value if isinstance(value, str) else None
        ok = text is not None and (text in rule if isinstance(rule, tuple) else bool(rule and rule.fullmatch(text)))
        if not ok or (text is not None and ".." in text):
            raise UsageError(
                f"{source}: {name} is {_shown(repr(value))}, which gpuci never writes (a report's names may not hold "
                "'..', '/', spaces or control characters); the report was edited or is not gpuci's. Nothing was run."
            )
    if not isinstance(report.step, str) or len(report.step) > 1000:
        raise UsageError(f"{source}: step is not a label of at most 1000 characters. Nothing was run.")


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_git(root, *args)


def worktree(root: Path, report: RunReport, allow_dirty: bool) -> Path:
    """A worktree of the recorded commit (made once, reused)."""
    commit = (report.git or {}).get("commit")
    if not commit:
        raise UsageError("the report records no git commit (the run was not in a git checkout); nothing to check out.")
    if (report.git or {}).get("dirty") and not allow_dirty:
        raise UsageError(
            f"run {report.run_id} ran on a dirty tree: commit {commit[:12]} is not exactly what ran. "
            "Pass --allow-dirty to reproduce at that commit anyway."
        )
    if _git(root, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
        raise UsageError(f"commit {commit[:12]} is not in this repository; `git fetch` it, then run again.")
    target = root / REPRO_DIR / report.run_id
    if not target.exists():
        done = _git(root, "worktree", "add", "--detach", str(target), commit)
        if done.returncode != 0:
            raise UsageError(f"git worktree add failed: {done.stderr.strip()}")
    return target


def differences(report: RunReport) -> list[str]:
    """What differs from the original run here: host, GPU models."""
    found = []
    host = (report.host or {}).get("hostname")
    if host and host != socket.gethostname():
        found.append(f"host: {host} → {socket.gethostname()}")
    recorded = [g.get("name") for g in report.gpus or []]
    if recorded:
        try:
            from harness.declare.platforms import get_platform
            from harness.gpu.vendors import open_backend

            backend = open_backend(get_platform(report.platform).vram_backend)
            here = [d.name for d in backend.devices()[: len(recorded)]]
            backend.close()
        except Exception as exc:  # the local GPUs are unknown: say so, do not stop
            here = [f"unknown ({exc})"]
        if here != recorded:
            found.append(f"GPUs: {', '.join(map(str, recorded))} → {', '.join(here)}")
    return found


def recipe_at(tree: Path, report: RunReport, config: ProjectConfig) -> ImageRecipe:
    """The original's recipe at its commit (`config`: its settings), with the resolution it ran with:
    the commit's gpuci.lock, else the set its report recorded (a lock that was never committed)."""
    from harness.images.recipe import recipe_for

    image = report.image or {}
    recipe = recipe_for(tree, report.platform, base_image=image.get("base_image") or None, config=config)
    if not recipe.pins and image.get("resolved"):
        recipe = replace(recipe, pins=tuple(str(p) for p in image["resolved"]))
    return recipe


def check_image(tree: Path, report: RunReport, config: ProjectConfig) -> str | None:
    """The recorded base image; refuses when the recipe at the commit hashes differently."""

    recorded = report.image
    base = recorded.get("base_image")
    recipe = recipe_at(tree, report, config)
    if recipe.content_hash() != recorded.get("content_hash"):
        raise UsageError(
            f"the image recipe at commit {report.git['commit'][:12]} "
            f"hashes to {recipe.content_hash()[:16]}, "
            f"not {str(recorded.get('content_hash'))[:16]} as recorded: it would not be the same image "
            "(a CA bundle or base image given to the original run?). Nothing was run."
        )
    return base


@dataclass(frozen=True)
class ReproRequest:
    """What `gpuci repro` is asked: the original's report (a path, folder or URL) and repro's own
    settings, which a run's options do not carry."""

    source: str
    pass_env: tuple[str, ...] = ()  # secrets to take from this environment, by name
    allow_dirty: bool = False  # reproduce a run that ran on a dirty tree
    shell: bool = False  # a shell in the container instead of the step's commands
    no_container: bool = False  # on the host: only ever the user's choice, never the report's
    echo: bool = True
    rebuild: bool = False  # from the recipe when the original image is gone (not identical)
    # The run settings the command line gave (harness.declare.settings.from_flags): over the commit's.
    flags: dict[str, Any] = field(default_factory=dict)


def repro(root: Path, request: ReproRequest) -> ExitCode:
    from harness.declare.config import load_config
    from harness.declare.request import Asked, resolve
    from harness.run.commands import run_options, run_request
    from harness.run.options import Reproduction

    source, pass_env, rebuild = request.source, request.pass_env, request.rebuild
    check_state(root)
    report = load_report(source)
    tree = worktree(root, report, request.allow_dirty)
    # Every run setting as `run` resolves it, once: the flags, the environment, then the original
    # commit's [tool.gpuci] (its limits, network, mounts, grace, timeouts, secrets), within the policy.
    config = load_config(tree, flags=request.flags)
    container = not request.no_container
    from_host = (report.mode or "container") == "host"
    if from_host and container:
        say(
            f"run {report.run_id} ran on the host; it is reproduced in its platform's container, built from the "
            "recipe at its commit (say --no-container to run it on this host, which runs the commit's code here)"
        )
    base = check_image(tree, report, config) if container and rebuild else report.image.get("base_image")
    pinned = _image(root, tree, report, base, rebuild, config) if container else None
    spec = report.spec or {}
    named = spec.get("secret_env") if isinstance(spec.get("secret_env"), list) else []  # a report is input
    redacted = [k for k, v in (spec.get("env") or {}).items() if v == MASK] + [n for n in named if isinstance(n, str)]
    # The commit's [tool.gpuci] secrets are passed as `run` passes them; the rest only by --env.
    missing = [name for name in dict.fromkeys(redacted) if name not in (*pass_env, *config.secrets)]
    if missing:
        names = _shown(", ".join(missing))
        say(f"the original run had secrets {names}; pass --env NAME to take each from this environment")
    for line in differences(report):
        say(f"differs from the original run: {line}")
    say(f"reproducing {report.run_id} ({report.platform}_{report.area}, step {_shown(repr(report.step))}) in {tree}")
    asked = Asked(
        report.platform, str(report.area), report.step, base_image=base, env_names=pass_env, container=container
    )
    request_ = resolve(tree, config, asked)
    options = run_options(
        request_,
        tree,
        pytest_args=tuple(report.pytest_args or ()),
        container=container,
        base_image=base,
        reproduction=Reproduction(
            of={"run_id": report.run_id, "report": source},
            image_id=pinned,
            image_report={k: v for k, v in report.image.items() if k != "packages"},
            shell=request.shell,
        ),
        # The reproduction's report lands in this checkout's runs folder, beside the others.
        report_dir=root / ".gpuci" / "runs" / f"repro-{report.run_id}-{os.getpid()}",
        echo=request.echo,
    )
    return run_request(options, request_)


def _image(root: Path, tree: Path, report: RunReport, base: str | None, rebuild: bool, config: ProjectConfig) -> str:
    """The original's image by ID or digest; with --rebuild, one built from the recipe, its differences said.
    A run that had no image (it ran on the host) gets the platform's, from the recipe at its commit."""
    from harness.images import manifest
    from harness.images.build import ensure
    from harness.images.engine import connect
    from harness.images.pin import pinned_image
    from harness.images.registry import registry_from

    client = connect()
    if (report.mode or "container") == "host":
        return ensure(client, recipe_at(tree, report, config), tree).id
    if not rebuild:
        return pinned_image(client, report.image, registry_from(config))
    built = ensure(client, recipe_at(tree, report, config), tree)
    if built.id == report.image.get("id"):
        say(f"--rebuild: the image here is the original one ({built.id[:19]}): identical")
        return built.id
    say("=" * 72)
    say(f"NOT IDENTICAL: image {built.id[:19]} was rebuilt from the recipe; the original ran in")
    say(f"{str(report.image.get('id'))[:19]} ({report.image.get('repo_digest') or 'never published'}).")
    lines = manifest.differences(report.image.get("packages"), manifest.packages(client, built.id, root))
    for line in lines or ["no package version differs (other bytes all the same: timestamps, caches)"]:
        say(f"  differs: {line}")
    say("=" * 72)
    return built.id


def repro_command(args: Any) -> int:
    """`gpuci repro REPORT`: the argparse edge."""
    from harness.declare.settings import from_flags

    request = ReproRequest(
        source=args.report,
        pass_env=tuple(args.env),
        allow_dirty=args.allow_dirty,
        shell=args.shell,
        no_container=args.no_container,
        echo=not args.quiet,
        rebuild=args.rebuild,
        flags=from_flags(args),
    )
    return repro(args.root.resolve(), request)
