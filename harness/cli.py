"""`python -m harness …` (also `gpuci …`): parses, calls one function, maps errors to exit codes."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import sys
import time
from pathlib import Path

from harness.arguments import parser, project_config
from harness.console import say
from harness.errors import ExitCode, GpuciError, UsageError
from harness.units import format_size, parse_size


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command != "run":
        from harness.run.cancel import GATE

        GATE.uninstall()  # only `run` has something to stop in order
    try:
        return int(_dispatch(args))
    except GpuciError as exc:
        from harness.redact import Redactor

        # A message may quote a command line or a value: secrets are masked here too.
        passed = [os.environ.get(name, "") for name in getattr(args, "env", None) or []]
        print(f"gpuci: error: {Redactor(os.environ, secrets=passed).text(str(exc))}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("gpuci: interrupted", file=sys.stderr)
        return int(ExitCode.TESTS_FAILED)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # A full disk is the host's trouble, not the tests': one paragraph and 75, so CI retries.
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"gpuci: error: no space left on the device{where}; free space and run again.", file=sys.stderr)
        return int(ExitCode.INFRASTRUCTURE)


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        return _run(args)
    if args.command == "supervise":
        return _supervise(args)
    if args.command == "image":
        return _image(args)
    if args.command == "simgpu":
        return _simgpu(args)
    if args.command == "pipeline":
        return _pipeline(args)
    if args.command == "lint":
        return _lint(args)
    if args.command == "reap":
        from harness.run.cleanup import reap_command

        return reap_command(args)
    if args.command == "gc":
        from harness.run.cleanup import gc_command

        return gc_command(args)
    if args.command == "report":
        return _report(args)
    if args.command == "repro":
        from harness.repro import repro

        return repro(
            args.root.resolve(),
            args.report,
            tuple(args.env),
            args.allow_dirty,
            args.shell,
            not args.quiet,
            args.rebuild,
        )
    if args.command == "init":
        return _init(args)
    return _gpus(args)


def _options(args: argparse.Namespace, platform: str, **extra: object):  # type: ignore[no-untyped-def]
    from harness.run.options import RunOptions

    return RunOptions(
        root=args.root.resolve(),
        platform=platform,
        report_dir=args.report_dir,
        vram_backend=None if args.vram_backend == "auto" else args.vram_backend,
        grace_s=args.grace if args.grace is not None else 5.0,
        vram_timeout_s=args.vram_timeout if args.vram_timeout is not None else 60.0,
        echo=not args.quiet,
        **extra,  # type: ignore[arg-type]
    )


def _run(args: argparse.Namespace) -> int:
    from harness.run.cancel import GATE

    GATE.install()  # from here a cancel is noted, never a silent death without a report
    from harness.declare.config import load_config
    from harness.images.registry import registry_from
    from harness.run.step import execute_step

    config = load_config(args.root.resolve()).with_flags(
        workspace=args.workspace, default_working_dir=args.default_working_dir
    )
    # [tool.gpuci] values for what the command line left out (the flag wins).
    args.grace = args.grace if args.grace is not None else config.grace
    args.vram_timeout = args.vram_timeout if args.vram_timeout is not None else config.vram_timeout
    options = _options(
        args,
        args.platform,
        pytest_args=tuple(args.pytest_args),
        container=not args.no_container,
        base_image=args.base_image,
        ca_bundle=args.ca_bundle or (args.root.resolve() / config.ca_bundle if config.ca_bundle else None),
        timeout_s=args.timeout if args.timeout is not None else config.timeout,
        lease_timeout_s=next(v for v in (args.lease_timeout, config.lease_timeout, 600.0) if v is not None),
        workspace=config.workspace,
        default_working_dir=config.default_working_dir,
        mounts=config.mounts,
        limits=project_limits(config),
        allow_dangerous_mounts=config.allow_dangerous_mounts,
        pass_env=(*config.secrets, *args.env),
        registry=None if args.no_container else registry_from(config),
        build=args.build,
    )
    try:
        return execute_step(options, args.area, args.step)
    finally:
        # The report is final and the exit code decided: a late cancel (Python restores the default
        # handlers while it shuts down) must not turn a written "passed" into a death by SIGTERM.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})


def project_limits(config):  # type: ignore[no-untyped-def]
    from harness.run.spec import DEFAULT_PIDS_LIMIT, Limits

    return Limits(config.memory, config.cpus, config.pids_limit or DEFAULT_PIDS_LIMIT, config.network)


def _supervise(args: argparse.Namespace) -> int:
    from harness.run.command import execute_command

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    if not cmd:
        raise UsageError("supervise needs a command after --, e.g. `python -m harness supervise -- pytest -x`.")
    num_gpus = args.num_gpus
    if num_gpus is None:
        num_gpus = 1 if args.vram_backend else 0
    return execute_command(_options(args, args.platform), cmd, args.image, num_gpus, args.timeout)


def _image(args: argparse.Namespace) -> int:
    from harness.images import airgap, archive
    from harness.images.build import ensure
    from harness.images.engine import connect
    from harness.images.recipe import recipe_for

    if args.image_command == "bootstrap":
        if args.make_tarball:
            airgap.make_packages_tarball(args.make_tarball, args.mirror)
            print(args.make_tarball)
            return 0
        recipe = airgap.BaseRecipe(ca_bundle=args.ca_bundle)
        print(airgap.bootstrap_base(connect(), recipe, args.mirror, args.from_tarball))
        return 0
    root = args.root.resolve()
    if args.image_command == "load":
        tags, digest = archive.load(connect(), args.file, root)
        print(f"{' '.join(tags)} sha256:{digest}")
        return 0
    recipe = recipe_for(root, args.platform, args.base_image, args.ca_bundle)
    if args.image_command == "tag":
        print(recipe.tag)
        return 0
    if args.image_command == "publish":
        return _publish(root, recipe)
    ensured = ensure(connect(), recipe, root)
    if args.image_command == "save":
        digest = archive.save(connect(), ensured.tag, args.output)
        print(f"{args.output} sha256:{digest}")
        return 0
    print(ensured.tag)
    return 0


def _publish(root: Path, recipe: object) -> int:
    from harness.declare.config import load_config
    from harness.images.engine import connect
    from harness.images.publish import publish
    from harness.images.registry import registry_from

    registry = registry_from(load_config(root))
    if registry is None:
        raise UsageError(
            'image publish needs a registry: set [tool.gpuci] registry = "HOST[:PORT]/PATH" in pyproject.toml '
            "or GPUCI_REGISTRY. With no registry at all, `image save -o FILE` and `image load FILE` carry an image."
        )
    done = publish(connect(), recipe, root, registry)  # type: ignore[arg-type]
    if done.pushed:
        say(f"published {done.ref} in {done.seconds:.1f}s")
    else:
        say(f"{done.ref} is already in the registry ({done.seconds * 1000:.0f} ms): nothing pushed, nothing built")
    print(done.pinned)
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from harness.ci import buildkite

    root = args.root.resolve()
    config = project_config(root, args)
    changed: tuple[str, ...] | None = None
    if args.changed_files:
        try:
            changed = tuple(line.strip() for line in args.changed_files.read_text().splitlines() if line.strip())
        except OSError as exc:
            raise UsageError(f"cannot read {args.changed_files}: {exc.strerror}.") from None
    elif args.base:
        changed = buildkite.changed_files(root, args.base)
    elif not args.all:
        changed = _changed_on_this_build(root, config.default_branch)
    selection = buildkite.Selection(
        changed, args.include_optional, config.run_all, config.dependency_match, config.dependency_match_for
    )
    sys.stdout.write(buildkite.to_yaml(buildkite.generate(_loaded(root, config.declarations), config, selection)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.reports import summary
    from harness.reports.report import RUNS_DIR

    reports = summary.collect(args.runs or [RUNS_DIR], runs=RUNS_DIR)
    if not reports:
        raise UsageError(
            f"no run reports in {', '.join(map(str, args.runs or [RUNS_DIR]))}; give report.json files, run "
            f"folders or run ids of {RUNS_DIR}."
        )
    sys.stdout.write(summary.table(reports))
    page = summary.write_html(reports, args.html, pictures=not args.no_pictures)
    print(f"gpuci: wrote {page}", file=sys.stderr)
    return 0


def _lint(args: argparse.Namespace) -> int:
    from harness.ci import lint
    from harness.reports.annotate import annotate

    root = args.root.resolve()

    def run_lint(tree: Path) -> tuple[list[lint.Finding], int]:
        config = project_config(tree, args)
        return lint.lint(tree, _loaded(tree, config.declarations), config)

    if args.since:
        from harness.ci.lint.since import lint_since

        introduced, resolved = lint_since(root, args.since, lambda tree: run_lint(tree)[0])
        if args.format == "json":
            sys.stdout.write(lint.as_json(introduced))
        else:
            text = lint.as_text(introduced, 0) if introduced else ""
            sys.stdout.write(
                text + f"gpuci lint --since {args.since}: {len(introduced)} introduced, {len(resolved)} resolved\n"
            )
        if introduced:
            body = f"**gpuci lint**: this change loses CI coverage\n\n```\n{lint.as_text(introduced, 0)}```"
            annotate(body, "gpuci-lint", "error")
        return int(ExitCode.TESTS_FAILED) if introduced else 0
    findings, allowed = run_lint(root)
    sys.stdout.write(lint.as_json(findings) if args.format == "json" else lint.as_text(findings, allowed))
    if findings:
        body = "**gpuci lint**: CI does not run everything it should\n\n```\n" + lint.as_text(findings, allowed) + "```"
        annotate(body, "gpuci-lint", "error")
    return int(ExitCode.TESTS_FAILED) if findings else 0


def _changed_on_this_build(root: Path, default_branch: str) -> tuple[str, ...] | None:
    """In a Buildkite build of a branch: the branch's changes; on the default branch: everything."""
    from harness.ci import buildkite

    branch = os.environ.get("BUILDKITE_BRANCH")
    default = os.environ.get("BUILDKITE_PIPELINE_DEFAULT_BRANCH", default_branch)
    if not branch or branch == default:
        return None
    return buildkite.changed_files(root, f"origin/{default}")


def _simgpu(args: argparse.Namespace) -> int:
    from harness.gpu.vram import sim

    if args.sim_command == "init":
        directory = sim.default_directory()
        for device in sim.init(directory, args.count, parse_size(args.total)):
            print(f"{device.index}  {device.id}  {format_size(device.total_bytes)}  ({directory})")
        return 0
    try:
        held = sim.hold(parse_size(args.size), args.device, args.release_lag)
    except sim.OutOfMemory as exc:
        raise GpuciError(str(exc)) from None
    print(f"holding {format_size(held.bytes)} on simulated GPU {args.device} (pid {os.getpid()})", flush=True)
    # Die by the signal, like a real workload: the lock goes with the process, and the lag applies.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    while True:
        time.sleep(3600)


def _gpus(args: argparse.Namespace) -> int:
    from harness.gpu.vram import open_backend
    from harness.gpu.vram.release import describe_holders

    backend = open_backend(args.vram_backend)
    try:
        print(f"backend: {backend.name}")
        for device in backend.devices():
            used = backend.used_bytes(device)
            print(
                f"[{device.index}] {device.name}  {device.id}  {format_size(used)} / {format_size(device.total_bytes)}"
            )
            for holder in describe_holders(backend, [device]):
                size = "?" if holder.used_bytes is None else format_size(holder.used_bytes)
                print(f"      pid {holder.pid:>7}  {size:>10}  {holder.command[:100]}")
    finally:
        backend.close()
    return 0


def _loaded(root: Path, declarations: tuple[str, ...]) -> list:  # type: ignore[type-arg]
    """The areas, each construct gpuci cannot honour said with file and line (never dropped silently)."""
    from harness.declare.sources import load_areas

    areas = load_areas(root, declarations)
    for area in areas:
        for warning in area.warnings:
            say(f"warning: {warning}")
    return areas


def _init(args: argparse.Namespace) -> int:
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
