"""`python -m harness …` (also `gpuci …`): parses, calls one function, maps errors to exit codes."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from harness.declare.platforms import PLATFORM_NAMES
from harness.errors import ExitCode, GpuciError, UsageError
from harness.gpu.vram import BACKEND_NAMES
from harness.units import format_size, parse_size


def _common_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: current directory)")
    parser.add_argument("--report-dir", type=Path, help="write report.json here instead of .gpuci/runs/<run-id>")
    parser.add_argument("--vram-backend", choices=[*BACKEND_NAMES, "auto"], help="default: the platform's")
    parser.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL")
    parser.add_argument("--vram-timeout", type=float, default=60.0, help="seconds to wait for VRAM release")
    parser.add_argument("--quiet", action="store_true", help="do not echo the workload's output")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gpuci", description="Containerized CI harness for GPU test suites.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run an area's steps on a platform (what nox sessions and CI run)")
    run.add_argument("--platform", required=True, choices=PLATFORM_NAMES)
    run.add_argument("--area", required=True)
    run.add_argument("--step", help="run only the step with this label")
    run.add_argument("--no-container", action="store_true", help="run on the host, under the same supervisor")
    run.add_argument("--base-image", help="base image of the platform's image ('local': the Debian base)")
    run.add_argument("--ca-bundle", type=Path, help="extra CA certificates (PEM) baked into the image")
    run.add_argument("--timeout", type=float, help="seconds before the step is stopped (default: its own)")
    run.add_argument("--lease-timeout", type=float, default=600.0, help="seconds to wait for GPUs another run holds")
    run.add_argument("--workspace", help="the checkout's path inside containers ([tool.gpuci] workspace)")
    run.add_argument("--default-working-dir", help="working dir of steps without one")
    run.add_argument("--env", action="append", default=[], metavar="NAME", help="pass a host variable through")
    _common_run_options(run)
    run.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")

    sup = sub.add_parser("supervise", help="run any command under the supervisor")
    sup.add_argument("--image", help="run in this image instead of on the host")
    sup.add_argument("--platform", default="cpu", choices=PLATFORM_NAMES)
    sup.add_argument("--num-gpus", type=int, default=None, help="GPUs to watch (default: 1 with a backend)")
    sup.add_argument("--timeout", type=float, help="seconds before the command is stopped")
    _common_run_options(sup)
    sup.add_argument("cmd", nargs=argparse.REMAINDER, help="after --: the command")

    image = sub.add_parser("image", help="images: content tags, builds, the air-gapped base")
    image_sub = image.add_subparsers(dest="image_command", required=True)
    boot = image_sub.add_parser("bootstrap", help="build the base image from Debian packages (no registry)")
    boot.add_argument("--mirror", default=os.environ.get("GPUCI_DEBIAN_MIRROR", "http://deb.debian.org/debian"))
    boot.add_argument("--ca-bundle", type=Path)
    boot.add_argument("--from-tarball", type=Path, help="packages from `--make-tarball` (fully offline)")
    boot.add_argument("--make-tarball", type=Path, help="only download the packages into this tarball")
    for name, text in (
        ("ensure", "build the platform's image if its tag is missing"),
        ("tag", "print the tag"),
    ):
        p = image_sub.add_parser(name, help=text)
        p.add_argument("--platform", required=True, choices=PLATFORM_NAMES)
        p.add_argument("--base-image")
        p.add_argument("--ca-bundle", type=Path)
        p.add_argument("--root", type=Path, default=Path.cwd())

    sim = sub.add_parser("simgpu", help="simulated GPUs for machines with none")
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    init = sim_sub.add_parser("init", help="create simulated devices (GPUCI_SIM_GPUS or /tmp/gpuci-simgpu-UID)")
    init.add_argument("--count", type=int, default=2)
    init.add_argument("--total", default="16GiB")
    hold = sim_sub.add_parser("hold", help="hold device memory until killed")
    hold.add_argument("size")
    hold.add_argument("--device", type=int, default=0)
    hold.add_argument("--release-lag", type=float, default=0.0, help="seconds memory stays used after death")

    pipe = sub.add_parser("pipeline", help="print the Buildkite pipeline (YAML) generated from the declarations")
    pipe.add_argument("--root", type=Path, default=Path.cwd())
    which = pipe.add_mutually_exclusive_group()
    which.add_argument("--base", help="select steps by the files changed since the merge base with this ref")
    which.add_argument("--changed-files", type=Path, help="select steps by the files listed here, one a line")
    which.add_argument("--all", action="store_true", help="every step (default branch, nightly)")
    pipe.add_argument("--include-optional", action="store_true", help="optional steps run too")
    pipe.add_argument("--workspace", help="the checkout's path inside containers ([tool.gpuci] workspace)")
    pipe.add_argument("--default-working-dir", help="working dir of steps without one")

    lint = sub.add_parser("lint", help="CI-coverage lint: declarations against the tree (no Docker, no GPU)")
    lint.add_argument("--root", type=Path, default=Path.cwd())
    lint.add_argument("--format", choices=["text", "json"], default="text")
    lint.add_argument("--workspace", help="the checkout's path inside containers ([tool.gpuci] workspace)")
    lint.add_argument("--default-working-dir", help="working dir of steps without one")

    rep = sub.add_parser("repro", help="reproduce a run from its report.json (path, folder or URL)")
    rep.add_argument("report")
    rep.add_argument("--root", type=Path, default=Path.cwd())
    rep.add_argument("--env", action="append", default=[], metavar="NAME", help="a secret to take from here")
    rep.add_argument("--allow-dirty", action="store_true", help="reproduce a run that ran on a dirty tree")
    rep.add_argument("--shell", action="store_true", help="open a shell in the container instead")
    rep.add_argument("--quiet", action="store_true")

    rpt = sub.add_parser("report", help="summarise runs: a terminal table, and an HTML page with pictures")
    rpt.add_argument("runs", nargs="*", type=Path, help="report.json files or folders (default: .gpuci/runs)")
    rpt.add_argument("--html", type=Path, default=Path(".gpuci") / "report" / "index.html")
    rpt.add_argument("--no-pictures", action="store_true")

    reap = sub.add_parser("reap", help="find (and with --yes clean up) what crashed runs left on this host")
    reap.add_argument("--yes", action="store_true", help="remove containers, kill holders, delete stale leases")
    reap.add_argument("--vram-backend", choices=[*BACKEND_NAMES, "auto", "none"], default="auto")

    gpus = sub.add_parser("gpus", help="every device of the active backend: used/total and holders")
    gpus.add_argument("--vram-backend", choices=[*BACKEND_NAMES, "auto"], default="auto")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_dispatch(args))
    except GpuciError as exc:
        print(f"gpuci: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("gpuci: interrupted", file=sys.stderr)
        return int(ExitCode.TESTS_FAILED)


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
        return _reap(args)
    if args.command == "report":
        return _report(args)
    if args.command == "repro":
        from harness.repro import repro

        return repro(args.root.resolve(), args.report, tuple(args.env), args.allow_dirty, args.shell, not args.quiet)
    return _gpus(args)


def _options(args: argparse.Namespace, platform: str, **extra: object):  # type: ignore[no-untyped-def]
    from harness.run.options import RunOptions

    return RunOptions(
        root=args.root.resolve(),
        platform=platform,
        report_dir=args.report_dir,
        vram_backend=None if args.vram_backend == "auto" else args.vram_backend,
        grace_s=args.grace,
        vram_timeout_s=args.vram_timeout,
        echo=not args.quiet,
        **extra,  # type: ignore[arg-type]
    )


def _run(args: argparse.Namespace) -> int:
    from harness.declare.config import load_config
    from harness.run.step import execute_step

    config = load_config(args.root.resolve()).with_flags(
        workspace=args.workspace, default_working_dir=args.default_working_dir
    )
    options = _options(
        args,
        args.platform,
        pytest_args=tuple(args.pytest_args),
        container=not args.no_container,
        base_image=args.base_image,
        ca_bundle=args.ca_bundle,
        pass_env=tuple(args.env),
        timeout_s=args.timeout,
        lease_timeout_s=args.lease_timeout,
        workspace=config.workspace,
        default_working_dir=config.default_working_dir,
    )
    return execute_step(options, args.area, args.step)


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
    from harness.images import airgap
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
    recipe = recipe_for(args.root.resolve(), args.platform, args.base_image, args.ca_bundle)
    if args.image_command == "tag":
        print(recipe.tag)
        return 0
    ensured = ensure(connect(), recipe, args.root.resolve())
    print(ensured.tag)
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from harness.ci import buildkite
    from harness.declare.areas import load_areas
    from harness.declare.config import load_config

    root = args.root.resolve()
    config = load_config(root).with_flags(workspace=args.workspace, default_working_dir=args.default_working_dir)
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
    selection = buildkite.Selection(changed, args.include_optional, config.run_all)
    sys.stdout.write(buildkite.to_yaml(buildkite.generate(load_areas(root), config, selection)))
    return 0


def _report(args: argparse.Namespace) -> int:
    from harness.reports import summary
    from harness.reports.report import RUNS_DIR

    reports = summary.collect(args.runs or [RUNS_DIR])
    if not reports:
        raise UsageError(f"no run reports in {', '.join(map(str, args.runs or [RUNS_DIR]))}.")
    sys.stdout.write(summary.table(reports))
    page = summary.write_html(reports, args.html, pictures=not args.no_pictures)
    print(f"gpuci: wrote {page}", file=sys.stderr)
    return 0


def _reap(args: argparse.Namespace) -> int:
    from harness.errors import DockerUnavailable
    from harness.gpu.vram import open_backend
    from harness.images.engine import connect
    from harness.run import reaper

    leftovers = []
    try:
        client = connect(timeout=30)
        leftovers += reaper.dead_run_containers(client)
    except DockerUnavailable:
        client = None
        print("gpuci: no Docker Engine here: containers not checked", file=sys.stderr)
    if args.vram_backend != "none":
        try:
            backend = open_backend(args.vram_backend)
        except GpuciError as exc:
            print(f"gpuci: GPU holders not checked: {exc}", file=sys.stderr)
        else:
            leftovers += reaper.stray_holders(backend)
            backend.close()
    leftovers += reaper.stale_leases()
    for item in leftovers:
        run = f" (run {item.run_id})" if item.run_id else ""
        print(f"{item.kind:15} {item.id:14} {item.detail}{run}")
    if not leftovers:
        print("nothing left behind")
    if not args.yes:
        if any(i.kind != "foreign-holder" for i in leftovers):
            print("run again with --yes to clean up (foreign holders are only listed, never killed)")
        return 0
    problems = reaper.clean(leftovers, client)
    for problem in problems:
        print(f"gpuci: could not clean up {problem}", file=sys.stderr)
    return int(ExitCode.TEARDOWN_FAILED) if problems else 0


def _lint(args: argparse.Namespace) -> int:
    from harness.ci import lint
    from harness.declare.areas import load_areas
    from harness.declare.config import load_config
    from harness.reports.annotate import annotate

    root = args.root.resolve()
    config = load_config(root).with_flags(workspace=args.workspace, default_working_dir=args.default_working_dir)
    findings, allowed = lint.lint(root, load_areas(root), config)
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
