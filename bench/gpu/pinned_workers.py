"""Run by docker_x2.py inside a `num_gpus: 2` step with `-n 2 --gpuci-gpus-per-worker 1`: each xdist
worker saves what torch sees (its id, device count, the UUID) to .x2-workers/<worker>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from gpu_probe import seen


def test_what_this_worker_sees(worker_id: str) -> None:
    info = seen(cpu=os.environ.get("GPUCI_PLATFORM") == "cpu")
    out = Path(".x2-workers")
    out.mkdir(exist_ok=True)
    (out / f"{worker_id}.json").write_text(json.dumps(info))


def test_a_second_test_so_both_workers_get_one(worker_id: str) -> None:
    test_what_this_worker_sees(worker_id)
