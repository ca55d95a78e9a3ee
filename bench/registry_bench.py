"""Images by digest: pulling the cpu image against building it, and a publish with nothing to do.

Both on this machine, with the Debian base already here (as on an agent that ran once before):
the build is a real one (a salt after FROM makes every later layer a cache miss); the pull gets
the same image's own layers from a real registry (Debian's docker-registry on loopback).
Writes bench/results/registry.json.
"""

from __future__ import annotations

import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.images.build import ensure  # noqa: E402
from harness.images.engine import connect  # noqa: E402
from harness.images.publish import publish  # noqa: E402
from harness.images.recipe import recipe_for  # noqa: E402
from harness.images.registry import Registry, pull  # noqa: E402
from tests.registry_server import RegistryServer  # noqa: E402

REPEATS = 3
NOOP_REPEATS = 20


def salted_project(directory: Path) -> Path:
    """gpuci's own recipes, the cpu one salted right after FROM: its own tag, no cached layer."""
    root = directory / "project"
    shutil.copytree(ROOT / "containers", root / "containers")
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    text = dockerfile.read_text()
    dockerfile.write_text(
        text.replace("FROM ${BASE_IMAGE}\n", f"FROM ${{BASE_IMAGE}}\nLABEL gpuci.bench={uuid.uuid4().hex}\n")
    )
    return root


def main() -> None:
    client = connect()
    ensure(client, recipe_for(ROOT, "cpu"), ROOT)  # the Debian base and the wheelhouse are here first
    builds, pulls, noops, cli_noops = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="gpuci-bench-") as tmp:
        server = RegistryServer(Path(tmp) / "registry")
        registry = Registry(server.address)
        try:
            for i in range(REPEATS):
                root = salted_project(Path(tmp) / f"r{i}")
                recipe = recipe_for(root, "cpu")
                started = time.monotonic()
                built = ensure(client, recipe, root)
                builds.append(time.monotonic() - started)
                done = publish(client, recipe, root, registry)
                for _ in range(NOOP_REPEATS):
                    noops.append(publish(client, recipe, root, registry).seconds)
                env = {"PYTHONPATH": str(ROOT), "GPUCI_REGISTRY": server.address, "PATH": "/usr/bin:/bin"}
                for _ in range(3):
                    t = time.monotonic()
                    subprocess.run(
                        [sys.executable, "-m", "harness", "image", "publish", "--platform", "cpu", "--root", str(root)],
                        env=env,
                        check=True,
                        capture_output=True,
                    )
                    cli_noops.append(time.monotonic() - t)
                client.images.remove(built.id, force=True)
                started = time.monotonic()
                pulled = pull(client, registry, done.ref)
                pulls.append(time.monotonic() - started)
                assert pulled == built.id, "the pulled image is not the built one"
                client.images.remove(pulled, force=True)
        finally:
            server.stop()
    results = {
        "machine": {"cpus": len(__import__("os").sched_getaffinity(0)), "python": platform.python_version()},
        "cpu_image_build_s": {"median": round(statistics.median(builds), 2), "runs": [round(b, 2) for b in builds]},
        "cpu_image_pull_s": {"median": round(statistics.median(pulls), 2), "runs": [round(p, 2) for p in pulls]},
        "pull_vs_build": round(statistics.median(pulls) / statistics.median(builds), 3),
        "noop_publish_s": {"median": round(statistics.median(noops), 4), "max": round(max(noops), 4), "goal": 0.3},
        "noop_publish_cli_s": {
            "median": round(statistics.median(cli_noops), 3),
            "note": "python -m harness image publish, whole process",
        },
    }
    out = ROOT / "bench" / "results" / "registry.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
