"""The command line of `python -m harness` (and `gpuci`): every subcommand and its options."""

from __future__ import annotations

import argparse
import functools
import os
from collections.abc import Callable
from pathlib import Path

from harness.declare.pythons import SUITES
from harness.declare.settings import add_flags


def _platform_names() -> tuple[str, ...]:
    """The platforms, imported only by the commands that take one: the platform table imports every
    vendor module (about 50 ms), which a lint never needs."""
    from harness.declare.platforms import platform_names

    return platform_names()


def _backend_names() -> tuple[str, ...]:
    from harness.gpu.vendors import backend_names

    return backend_names()


def common_run_options(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="project root (default: current directory)")
    parser.add_argument("--report-dir", type=Path, help="write report.json here instead of .gpuci/runs/<run-id>")
    parser.add_argument("--vram-backend", choices=[*_backend_names(), "auto"], help="default: the platform's")
    add_flags(parser, command)  # the project's settings this command takes (harness.declare.settings)
    parser.add_argument("--quiet", action="store_true", help="do not echo the workload's output")


def _declaration_flags(command: argparse.ArgumentParser, name: str) -> None:
    """What `pipeline` and `lint` read: the project's settings, overridable on the command line."""
    add_flags(command, name)
    command.add_argument("--verbose", action="store_true", help="each warning with file and line (else one per kind)")


def _run(run: argparse.ArgumentParser) -> None:
    run.add_argument("--platform", required=True, choices=_platform_names())
    run.add_argument("--area", required=True)
    run.add_argument("--step", help="run only the step with this label")
    run.add_argument("--no-container", action="store_true", help="run on the host, under the same supervisor")
    run.add_argument("--base-image", help="base image of the platform's image ('local': the Debian base)")
    run.add_argument(
        "--python",
        choices=list(SUITES),
        help="the Python of the image, on gpuci's Debian base (over the step's and [tool.gpuci] python)",
    )
    run.add_argument("--build", action="store_true", help="build a missing image here, even with a registry")
    run.add_argument("--env", action="append", default=[], metavar="NAME", help="pass a host variable through")
    common_run_options(run, "run")
    run.add_argument("pytest_args", nargs="*", help="after --: extra pytest arguments")


def _supervise(sup: argparse.ArgumentParser) -> None:
    sup.add_argument("--image", help="run in this image instead of on the host")
    sup.add_argument("--platform", default="cpu", choices=_platform_names())
    sup.add_argument("--num-gpus", type=int, default=None, help="GPUs to watch (default: 1 with a backend)")
    sup.add_argument("--timeout", type=float, help="seconds before the command is stopped")
    common_run_options(sup, "supervise")
    sup.add_argument("cmd", nargs=argparse.REMAINDER, help="after --: the command")


def _image(image: argparse.ArgumentParser) -> None:
    image_sub = image.add_subparsers(dest="image_command", required=True)
    boot = image_sub.add_parser("bootstrap", help="build the base image from Debian packages (no registry)")
    boot.add_argument("--mirror", default=os.environ.get("GPUCI_DEBIAN_MIRROR", "http://deb.debian.org/debian"))
    boot.add_argument("--ca-bundle", type=Path)
    boot.add_argument("--from-tarball", type=Path, help="packages from `--make-tarball` (fully offline)")
    boot.add_argument("--make-tarball", type=Path, help="only download the packages into this tarball")
    for name, text in (
        ("ensure", "build the platform's image if its tag is missing"),
        ("tag", "print the tag"),
        ("publish", "push the image to [tool.gpuci] registry under its content tag (a no-op when there)"),
        ("save", "write the image to a compressed file (sites with no registry)"),
    ):
        p = image_sub.add_parser(name, help=text)
        p.add_argument("--platform", required=True, choices=_platform_names())
        p.add_argument("--base-image")
        p.add_argument("--python", choices=list(SUITES), help="the Python of the image, on gpuci's Debian base")
        p.add_argument("--ca-bundle", type=Path)
        p.add_argument("--root", type=Path, default=Path.cwd())
        if name == "save":
            p.add_argument("-o", "--output", type=Path, required=True, help="the file to write (.tar.gz)")
    load = image_sub.add_parser("load", help="load an image file that `image save` wrote")
    load.add_argument("file", type=Path)
    load.add_argument("--root", type=Path, default=Path.cwd())


def _simgpu(sim: argparse.ArgumentParser) -> None:
    sim_sub = sim.add_subparsers(dest="sim_command", required=True)
    init = sim_sub.add_parser("init", help="create simulated devices (GPUCI_SIM_GPUS or /tmp/gpuci-simgpu-UID)")
    init.add_argument("--count", type=int, default=2)
    init.add_argument("--total", default="16GiB")
    hold = sim_sub.add_parser("hold", help="hold device memory until killed")
    hold.add_argument("size")
    hold.add_argument("--device", type=int, default=0)
    hold.add_argument("--release-lag", type=float, default=0.0, help="seconds memory stays used after death")


def _pipeline(pipe: argparse.ArgumentParser) -> None:
    pipe.add_argument("--root", type=Path, default=Path.cwd())
    which = pipe.add_mutually_exclusive_group()
    which.add_argument("--base", help="select steps by the files changed since the merge base with this ref")
    which.add_argument("--changed-files", type=Path, help="select steps by the files listed here, one a line")
    which.add_argument("--all", action="store_true", help="every step (default branch, nightly)")
    pipe.add_argument("--include-optional", action="store_true", help="optional steps run too")
    _declaration_flags(pipe, "pipeline")


def _lint(lint: argparse.ArgumentParser) -> None:
    lint.add_argument("--root", type=Path, default=Path.cwd())
    lint.add_argument("--format", choices=["text", "json"], default="text")
    _declaration_flags(lint, "lint")
    lint.add_argument("--since", metavar="REV", help="report only what changed since REV (a branch's merge base)")
    lint.add_argument(
        "--no-cache",
        action="store_true",
        help="parse every file afresh (what files say is otherwise kept by content hash in ~/.cache/gpuci)",
    )


def _repro(rep: argparse.ArgumentParser) -> None:
    rep.add_argument("report")
    rep.add_argument("--root", type=Path, default=Path.cwd())
    rep.add_argument("--env", action="append", default=[], metavar="NAME", help="a secret to take from here")
    rep.add_argument("--allow-dirty", action="store_true", help="reproduce a run that ran on a dirty tree")
    rep.add_argument("--shell", action="store_true", help="open a shell in the container instead")
    rep.add_argument(
        "--no-container",
        action="store_true",
        help="run on this host (a report never decides this: a run it says ran on the host runs in its container)",
    )
    rep.add_argument(
        "--rebuild", action="store_true", help="rebuild from the recipe when the original image is gone (NOT identical)"
    )
    rep.add_argument("--quiet", action="store_true")
    add_flags(rep, "repro")  # the run settings a reproduction may change (its timeouts), as `run` takes them


def _report(rpt: argparse.ArgumentParser) -> None:
    rpt.add_argument(
        "runs", nargs="*", type=Path, help="report.json files, run folders or run ids (default: .gpuci/runs)"
    )
    rpt.add_argument("--html", type=Path, default=Path(".gpuci") / "report" / "index.html")
    rpt.add_argument("--no-pictures", action="store_true")


def _reap(reap: argparse.ArgumentParser) -> None:
    reap.add_argument("--yes", action="store_true", help="remove containers, kill holders, delete stale leases")
    reap.add_argument("--vram-backend", choices=[*_backend_names(), "auto", "none"], default="auto")
    reap.add_argument("--root", type=Path, default=Path.cwd(), help="the project whose runs are reaped")
    reap.add_argument("--all-projects", action="store_true", help="every project's crashed runs on this host")
    reap.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="only containers and images with it (lease files are then left alone)",
    )


def _gc(gc: argparse.ArgumentParser) -> None:
    gc.add_argument("--root", type=Path, default=Path.cwd())
    gc.add_argument("--keep", type=int, default=3, help="newest images kept per platform (default 3)")
    gc.add_argument("--older-than", type=float, default=14.0, metavar="DAYS", help="age past which things go")
    gc.add_argument("--yes", action="store_true", help="remove what is listed")
    gc.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="only images with it (lock files are then left alone)",
    )


def _init(init: argparse.ArgumentParser) -> None:
    init.add_argument("--root", type=Path, default=Path.cwd())
    init.add_argument("--dry-run", action="store_true", help="show the files it would write, write nothing")


def _nothing(_: argparse.ArgumentParser) -> None:
    """`gpuci nox ARGS` is dispatched before parsing, so nox's options stay nox's: shown in --help only."""


def _gpus(gpus: argparse.ArgumentParser) -> None:
    gpus.add_argument("--vram-backend", choices=[*_backend_names(), "auto"], default="auto")


# Each subcommand: its name, the function (`module:function`, imported when called) its stage owns,
# its help, and what adds its options.
COMMANDS: tuple[tuple[str, str, str, Callable[[argparse.ArgumentParser], None]], ...] = (
    (
        "run",
        "harness.run.commands:run_command",
        "run an area's steps on a platform (what nox sessions and CI run)",
        _run,
    ),
    ("supervise", "harness.run.commands:supervise_command", "run any command under the supervisor", _supervise),
    ("image", "harness.images.commands:image_command", "images: content tags, builds, the air-gapped base", _image),
    ("simgpu", "harness.gpu.commands:simgpu_command", "simulated GPUs for machines with none", _simgpu),
    (
        "pipeline",
        "harness.ci.commands:pipeline_command",
        "print the Buildkite pipeline (YAML) generated from the declarations",
        _pipeline,
    ),
    (
        "lint",
        "harness.ci.commands:lint_command",
        "CI-coverage lint: declarations against the tree (no Docker, no GPU)",
        _lint,
    ),
    ("repro", "harness.repro:repro_command", "reproduce a run from its report.json (path, folder or URL)", _repro),
    (
        "report",
        "harness.reports.commands:report_command",
        "summarise runs: a terminal table, and an HTML page with pictures",
        _report,
    ),
    (
        "reap",
        "harness.run.cleanup.commands:reap_command",
        "find (and with --yes clean up) what crashed runs left on this host",
        _reap,
    ),
    (
        "gc",
        "harness.run.cleanup.commands:gc_command",
        "old images, repro worktrees, build folders and locks (a dry run unless --yes)",
        _gc,
    ),
    (
        "init",
        "harness.ci.commands:init_command",
        "add gpuci to this repository: noxfile, [tool.gpuci], recipes, an example area",
        _init,
    ),
    ("nox", "harness.ci.commands:nox_command", "nox in gpuci's own Python: `gpuci nox -s cpu_<area>`", _nothing),
    ("gpus", "harness.gpu.commands:gpus_command", "every device of the active backend: used/total and holders", _gpus),
)


@functools.cache  # one per process: a session reads run's flags off it, then the command is parsed with it
def parser(only: str | None = None) -> argparse.ArgumentParser:
    """Every subcommand, with the options of all of them, or of `only` (the one a command line names):
    the others' options import the platform and vendor tables, most of a warm lint's start. Help and
    errors of the command run are the same either way; the others are listed as before."""
    parser = argparse.ArgumentParser(prog="gpuci", description="Containerized CI harness for GPU test suites.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text, options in COMMANDS:
        made = sub.add_parser(name, help=text)
        made.set_defaults(func=func)
        if only is None or only == name:
            options(made)
    return parser


def named_command(argv: list[str]) -> str | None:
    """The subcommand a command line starts with, or None (`--help`, a typo: every command is built)."""
    return argv[0] if argv and any(argv[0] == name for name, *_ in COMMANDS) else None


# Options of `run` a session's posargs never set: the session's own, and --quiet, which there is pytest's.
SESSION_OWNED = ("--platform", "--area", "--root", "-h", "--help", "--quiet")


def run_flags() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Every option of `run` a session passes on from its posargs: (all of them, those taking no value).
    Read off the parser, so a new run option reaches `nox -s P_A -- --option` with no second list."""
    # `run`'s own parser: the one the session's `run` is parsed with next (cached), not every command's.
    sub = next(a for a in parser("run")._actions if isinstance(a, argparse._SubParsersAction))
    flags, switches = [], []
    for action in sub.choices["run"]._actions:
        names = [n for n in action.option_strings if n not in SESSION_OWNED]
        flags += names
        if action.nargs == 0:
            switches += names
    return tuple(flags), tuple(switches)
