"""A tiny inference "engine": a process that holds device memory and serves sampling requests.

It takes its memory where a real engine would: through torch on CUDA/ROCm, on gpuci's
simulated device on the cpu platform (GPUCI_SIM_GPUS), else as host memory. Requests are JSON
lines on stdin; each answer is a JSON line on stdout. It prints `ready` once its memory is held.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from sampling import sample

RELEASE_LAG_ENV = "SAMPLER_RELEASE_LAG"


def hold_memory(fraction: float) -> tuple[object, str]:
    platform = os.environ.get("GPUCI_PLATFORM", "cpu")
    if platform in ("cuda", "rocm"):
        import torch

        _free, total = torch.cuda.mem_get_info()
        return torch.empty(int(total * fraction), dtype=torch.uint8, device="cuda"), "torch"
    if os.environ.get("GPUCI_SIM_GPUS"):
        from harness.vram import sim

        device = sim.read_devices(sim.default_directory())[0]
        lag = float(os.environ.get(RELEASE_LAG_ENV, "0"))
        return sim.hold(int(device.total_bytes * fraction), 0, release_lag=lag), "sim"
    return bytearray(int(64 * 1024**2 * fraction)), "host"


def main() -> None:
    fraction = float(os.environ.get("SAMPLER_ENGINE_FRACTION", "0.6"))
    memory, kind = hold_memory(fraction)
    print(json.dumps({"ready": True, "memory": kind, "pid": os.getpid()}), flush=True)
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
    main()
