"""A torch process that holds GPU memory: the workload of the GPU proofs.

--gib N            allocate N GiB on cuda:0 and hold it until killed
--ignore-sigterm   ignore SIGTERM (only SIGKILL stops it)
--shutdown-delay S on SIGTERM, take S seconds to "shut down" (an engine's cleanup), then exit
--escape           fork a child that calls setsid, allocates and holds; the parent exits 0
--flood            while holding, write log lines as fast as it can
--cpu              hold nothing (a dry run of the scripts on a machine with no GPU)
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time

CPU = "--cpu" in sys.argv


def hold(gib: float) -> object:
    if CPU:
        print(f"dry run: pid {os.getpid()} holds nothing", flush=True)
        return None
    import torch

    tensor = torch.empty(int(gib * 1024**3), dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    print(f"torch sees {torch.cuda.get_device_name(0)}; pid {os.getpid()} (host pid unknown inside)", flush=True)
    return tensor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gib", type=float, default=4.0)
    parser.add_argument("--ignore-sigterm", action="store_true")
    parser.add_argument("--shutdown-delay", type=float, default=0.0)
    parser.add_argument("--escape", action="store_true")
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--cpu", action="store_true")
    args = parser.parse_args()
    if args.escape:
        read, write = os.pipe()
        if os.fork() == 0:
            os.setsid()
            held = hold(args.gib)
            os.write(write, b"ready")
            print(f"escapee {os.getpid()} holds {args.gib} GiB in its own session", flush=True)
            while True:
                time.sleep(3600)
            del held
        os.read(read, 5)  # leave only once the escapee holds its memory
        print(f"parent {os.getpid()} exits, leaving its escapee behind", flush=True)
        sys.exit(0)
    if args.ignore_sigterm:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    elif args.shutdown_delay:

        def slow_exit(*_: object) -> None:
            time.sleep(args.shutdown_delay)
            os._exit(0)

        signal.signal(signal.SIGTERM, slow_exit)
    held = hold(args.gib)
    print(f"holder {os.getpid()} holds {args.gib} GiB", flush=True)
    line = "flood " + "x" * 200 + "\n"
    while args.flood:
        sys.stdout.write(line * 50)
    while True:
        time.sleep(3600)
    del held


if __name__ == "__main__":
    main()
