"""What a process sees of the GPUs: the proofs' workload on two GPUs and in crash handoffs.

    python3 bench/gpu/gpu_probe.py [--hold GIB] [--sleep S] [--write PATH] [--cpu]

Prints (and with --write, saves) one JSON line: torch's device count and each device's UUID, the
visible-devices variables, the xdist worker; with --hold it allocates GIB on cuda:0 first (and
fails with exit 3 if it cannot: out of memory), then sleeps S seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def seen(cpu: bool) -> dict[str, object]:
    info: dict[str, object] = {
        "pid": os.getpid(),
        "worker": os.environ.get("PYTEST_XDIST_WORKER"),
        "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "GPUCI_SIM_VISIBLE_DEVICES": os.environ.get("GPUCI_SIM_VISIBLE_DEVICES"),
        "GPUCI_RUN_GPUS": os.environ.get("GPUCI_RUN_GPUS"),
    }
    if not cpu:
        import torch

        count = torch.cuda.device_count()
        info["device_count"] = count
        info["uuids"] = [f"GPU-{torch.cuda.get_device_properties(i).uuid}" for i in range(count)]
    return info


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hold", type=float, default=0.0)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--write")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    info = seen(args.cpu)
    held = None
    if args.hold and not args.cpu:
        import torch

        try:
            held = torch.empty(int(args.hold * 1024**3), dtype=torch.uint8, device="cuda")
            torch.cuda.synchronize()
        except torch.cuda.OutOfMemoryError as exc:
            info["out_of_memory"] = str(exc).splitlines()[0]
            print(json.dumps(info), flush=True)
            return 3
        info["held_gib"] = args.hold
    line = json.dumps(info)
    print(line, flush=True)
    if args.write:
        with open(args.write, "w") as out:
            out.write(line)
    time.sleep(args.sleep)
    del held
    return 0


if __name__ == "__main__":
    sys.exit(main())
