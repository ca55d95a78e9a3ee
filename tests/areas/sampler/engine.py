"""A tiny inference "engine": a process that holds device memory and serves sampling requests.

It takes its memory where a real engine would: through torch on CUDA/ROCm, on gpuci's
simulated device on the cpu platform (GPUCI_SIM_GPUS), else as host memory. Requests are JSON
lines on stdin; each answer is a JSON line on stdout. It prints `ready` once its memory is held
(and touches SAMPLER_READY_FILE, for servers started without a pipe).

SAMPLER_RELEASE_LAG=S keeps its memory counted S seconds after it exits, as HIP/RCCL teardown
does on ROCm: natively on the simulated device (1.5 s unless set), through a lingering helper
process with torch (0 unless set).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sampling import sample


def torch_bytes(fraction: float) -> int:
    import torch

    return int(torch.cuda.mem_get_info()[1] * fraction)


def linger_helper(parent: int, size: int, lag: float) -> None:
    """Hold `size` bytes with torch until `lag` seconds after `parent` has died."""
    import torch

    held = torch.empty(size, dtype=torch.uint8, device="cuda")
    torch.cuda.synchronize()
    print("held", flush=True)
    fd = os.pidfd_open(parent)
    select.select([fd], [], [])
    time.sleep(lag)
    del held


def hold_memory(fraction: float, lag_setting: str | None) -> tuple[object, str]:
    platform = os.environ.get("GPUCI_PLATFORM", "cpu")
    lag = float(lag_setting or 0)
    if platform in ("cuda", "rocm"):
        import torch

        if lag > 0:
            size = torch_bytes(fraction)
            helper = subprocess.Popen(
                [sys.executable, __file__, "--linger", str(os.getpid()), str(size), str(lag)],
                stdout=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            assert helper.stdout and helper.stdout.readline().strip() == "held"
            return helper, "torch+linger"
        return torch.empty(torch_bytes(fraction), dtype=torch.uint8, device="cuda"), "torch"
    if os.environ.get("GPUCI_SIM_GPUS"):
        from harness.gpu.vram import sim

        device = sim.SimBackend().devices()[0]
        lag = float(lag_setting or 1.5)
        return sim.hold(int(device.total_bytes * fraction), 0, release_lag=lag), "sim"
    return bytearray(int(64 * 1024**2 * fraction)), "host"


def main() -> None:
    fraction = float(os.environ.get("SAMPLER_ENGINE_FRACTION", "0.6"))
    memory, kind = hold_memory(fraction, os.environ.get("SAMPLER_RELEASE_LAG"))
    print(json.dumps({"ready": True, "memory": kind, "pid": os.getpid()}), flush=True)
    if os.environ.get("SAMPLER_READY_FILE"):
        open(os.environ["SAMPLER_READY_FILE"], "w").close()
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("op") == "shutdown":
            break
        token = sample(
            request["logits"],
            temperature=request.get("temperature", 1.0),
            top_k=request.get("top_k"),
            top_p=request.get("top_p"),
            seed=request.get("seed", 0),
        )
        print(json.dumps({"token": token}), flush=True)
    del memory


if __name__ == "__main__":
    if sys.argv[1:2] == ["--linger"]:
        linger_helper(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()
