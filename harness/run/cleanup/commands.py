"""`gpuci reap` and `gpuci gc`: what crashed runs left, and what piles up over weeks."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ExitCode, GpuciError
from harness.units import format_size


def reap_command(args: argparse.Namespace) -> int:
    """`gpuci reap [--yes]`: what crashed runs of this project left, listed and (with --yes) removed."""
    from harness.errors import DockerUnavailable
    from harness.gpu.vendors import open_backend
    from harness.images.engine import connect
    from harness.run.cleanup import gc, reaper

    # This checkout's runs only, unless told otherwise: another project's crash is its own to clean.
    project = None if args.all_projects else reaper.project_id(args.root)
    labels = tuple(args.label)
    leftovers = []
    try:
        client = connect(timeout=30)
        leftovers += reaper.dead_run_containers(client, project=project, labels=labels)
        # Interrupted builds: their dangling layers (host-wide: images are shared by every project).
        leftovers += [reaper.Leftover(g.kind, g.id, None, g.detail) for g in gc.dangling_images(client, labels)]
        # Builds killed mid-layer: their install containers (host-wide too, judged by their creator process).
        leftovers += [
            reaper.Leftover("container", g.id, None, g.detail) for g in gc.dead_layer_containers(client, labels)
        ]
    except DockerUnavailable as exc:
        client = None
        print(f"gpuci: could not look for containers crashed runs left: {exc}", file=sys.stderr)
    if args.vram_backend != "none":
        try:
            backend = open_backend(args.vram_backend)
        except GpuciError as exc:
            print(f"gpuci: GPU holders not checked: {exc}", file=sys.stderr)
        else:
            leftovers += reaper.stray_holders(backend, project)
            backend.close()
    leftovers += reaper.orphaned_processes({int(i.id) for i in leftovers if i.kind.endswith("holder")}, project)
    if not labels:  # lease files carry no labels: a reap scoped by label leaves them to others
        leftovers += reaper.stale_leases()
    leftovers += [reaper.Leftover(g.kind, g.id, None, g.detail) for g in gc.stale_build_folders(args.root)]
    leftovers += [reaper.Leftover(g.kind, g.id, None, g.detail) for g in gc.stale_secrets()]
    for item in leftovers:
        run = f" (run {item.run_id})" if item.run_id else ""
        print(f"{item.kind:15} {item.id:14} {item.detail}{run}")
    if not leftovers:
        print("nothing left behind" if client is not None else "nothing left behind outside containers")
    # Without an engine reap could not look everywhere: 75, so a CI step that reaps is retried.
    blind = int(ExitCode.INFRASTRUCTURE) if client is None else 0
    if not args.yes:
        if any(i.kind != "foreign-holder" for i in leftovers):
            print("run again with --yes to clean up (foreign holders are only listed, never killed)")
        return blind
    problems = reaper.clean(leftovers, client)
    for problem in problems:
        print(f"gpuci: could not clean up {problem}", file=sys.stderr)
    return int(ExitCode.TEARDOWN_FAILED) if problems else blind


def gc_command(args: argparse.Namespace) -> int:
    """`gpuci gc`: a dry run unless --yes; images by count and age, worktrees by age, stale folders."""
    from harness.errors import DockerUnavailable
    from harness.images.engine import connect
    from harness.run.cleanup import gc

    try:
        client = connect(timeout=30)
    except DockerUnavailable as exc:
        client = None
        print(f"gpuci: could not look at images: {exc}", file=sys.stderr)
    garbage = gc.find_garbage(args.root.resolve(), client, args.keep, args.older_than * 86400, tuple(args.label))
    for item in garbage:
        print(f"{item.kind:15} {format_size(item.bytes):>10}  {item.id}  ({item.detail})")
    total = format_size(sum(g.bytes for g in garbage))
    if not garbage:
        print("nothing to collect")
    elif not args.yes:
        print(f"{len(garbage)} item(s), {total}: run again with --yes to remove them")
    else:
        problems = gc.remove_garbage(args.root.resolve(), client, garbage)
        for problem in problems:
            print(f"gpuci: could not remove {problem}", file=sys.stderr)
        print(f"removed {len(garbage) - len(problems)} item(s), {total}")
        if problems:
            return int(ExitCode.TEARDOWN_FAILED)
    return int(ExitCode.INFRASTRUCTURE) if client is None else 0
