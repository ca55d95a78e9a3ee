"""`gpuci simgpu …` and `gpuci gpus`: simulated GPUs, and what the active backend sees."""

from __future__ import annotations

import argparse
import os
import signal
import time

from harness.errors import GpuciError
from harness.units import format_size, parse_size


def simgpu_command(args: argparse.Namespace) -> int:
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


def gpus_command(args: argparse.Namespace) -> int:
    from harness.console import printable
    from harness.gpu.vendors import open_backend
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
                # A holder's command line is its own to write (a container's process): shown, never acted on.
                print(f"      pid {holder.pid:>7}  {size:>10}  {printable(holder.command[:100])}")
    finally:
        backend.close()
    return 0
