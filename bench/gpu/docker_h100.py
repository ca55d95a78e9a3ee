"""gpuci's main path on a real GPU, through a real Docker Engine, and misbehaving GPU containers.

Run from the repository root (on the GPU machine, or here on the cpu platform as a dry run):

    python3 bench/gpu/docker_h100.py OUT_DIR [--carry .gpu-carry] [--platform cuda]
                                             [--engine carried|existing] [--host-venv /opt/torch/.venv]

1. Engine: the carried Debian Docker Engine (`.gpu-carry/docker-engine.tar.xz`: dockerd,
   containerd, runc, tini as docker-init, libdevmapper) started on a private socket.
2. Base: an image imported from the machine's own /usr and /etc (the toolkit and driver folders
   left out), with a `.pth` file that puts the host's torch venv on the system Python's path; the
   venv itself and the driver are bound read-only at run time through `[tool.gpuci] mounts`
   (GPUCI_MOUNTS), so the image holds no copy of them.
3. gpuci's own `image` code builds the platform's recipe on that base (wheels from the carried
   wheelhouse, build network none), then `python -m harness run --platform P --area sampler` — the
   exact command `nox -s P_sampler` runs — with NVML's holders sampled by host PID and mapped to
   their container through /proc/PID/cgroup.
4. Misbehaving workloads in the same image on the same GPU, each cancelled once it holds its
   memory: stopped by gpuci (SIGTERM to the run, as a Buildkite cancel), and stopped the way
   Buildkite's docker plugin does (`docker stop` by label, 10 s grace, no VRAM wait), recording
   how long until NVML shows the GPU really free and what was left.
Writes OUT_DIR/docker-h100.json and each run's log.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rig import (
    GIB,
    ROOT,
    add_arguments,
    build_image,
    gpuci_env,
    host_root_base,
    log,
    start,
    used,
    wait_free,
    wait_used,
)  # fmt: skip


def container_of(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return None
    match = re.search(r"([0-9a-f]{64})", text)
    return match.group(1) if match else None


class HolderLog:
    """NVML's compute processes every 50 ms: host PID, bytes, and the container each belongs to."""

    def __init__(self, backend: Any, client: Any) -> None:
        self.backend, self.client, self.seen, self.samples = backend, client, {}, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        device = self.backend.devices()[0]
        while not self._stop.is_set():
            for holder in self.backend.holders(device):
                if holder.pid not in self.seen:  # labels read while the container lives
                    container = container_of(holder.pid)
                    labels = labelled(self.client, container)
                    self.seen[holder.pid] = {"pid": holder.pid, "container": container, "labels": labels}
                entry = self.seen[holder.pid]
                entry["max_bytes"] = max(entry.get("max_bytes") or 0, holder.used_bytes or 0)
            self.samples += 1
            time.sleep(0.05)

    def __enter__(self) -> HolderLog:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def labelled(client: Any, container_id: str | None) -> dict[str, str]:
    if not container_id:
        return {}
    try:
        return {k: v for k, v in client.containers.get(container_id).labels.items() if k.startswith("gpuci.")}
    except Exception:
        return {"note": "container gone by the time it was looked up"}


def main_path(args: argparse.Namespace, client: Any, backend: Any, base: str, mounts: list[str]) -> dict[str, Any]:
    command = [sys.executable, "-m", "harness", "run", "--platform", args.platform, "--area", "sampler"]
    started = time.monotonic()
    with HolderLog(backend, client) if backend else _Null() as holders, open(args.out / "sampler.log", "w") as out:
        done = subprocess.run(command, cwd=ROOT, env=gpuci_env(base, mounts), stdout=out, stderr=subprocess.STDOUT)
    seconds = time.monotonic() - started
    report = json.loads((ROOT / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    shutil.copy(ROOT / ".gpuci" / "runs" / "latest" / "report.json", args.out / "sampler-report.json")
    seen = list(getattr(holders, "seen", {}).values())
    return {
        "command": " ".join(command[1:]),
        "exit_code": done.returncode,
        "wall_s": round(seconds, 3),
        "outcome": report.get("outcome"),
        "timings": report.get("timings"),
        "vram": report.get("vram"),
        "devices": report.get("devices"),
        "image": {k: report.get("image", {}).get(k) for k in ("tag", "id", "built", "base_image")},
        "nvml_holders_by_host_pid": seen,
        "nvml_samples": getattr(holders, "samples", 0),
    }


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *_: object) -> None:
        pass


SCENARIOS = {
    "ignores-sigterm": ["--ignore-sigterm"],
    "setsid-escapee": ["--escape"],
    "delayed-release": ["--shutdown-delay", "3"],
    "log-flood": ["--flood"],
}


def misbehaving_area(args: argparse.Namespace) -> None:
    """One area whose steps are the misbehaving workloads, in the project's own tree on this machine."""
    steps = []
    for name, flags in SCENARIOS.items():
        holder = ["python3", "bench/gpu/torch_holder.py", "--gib", str(args.gib), *flags]
        if args.platform == "cpu":
            holder.append("--cpu")
        command = " ".join(holder) + (" && sleep 3600" if name == "setsid-escapee" else "")
        gpus = 0 if args.platform == "cpu" else 1
        steps.append({"label": name, "commands": [command], "platforms": [args.platform], "num_gpus": gpus})
    path = ROOT / ".buildkite" / "test_areas" / "gpu_misbehave.yaml"
    path.write_text(json.dumps({"group": "gpu misbehave", "steps": steps}, indent=1))


def under_gpuci(args: argparse.Namespace, backend: Any, base: str, mounts: list[str], name: str) -> dict[str, Any]:
    baseline = used(backend)
    command = [sys.executable, "-m", "harness", "run", "--platform", args.platform, "--area", "gpu_misbehave"]
    with open(args.out / f"gpuci-{name}.log", "w") as out:
        run = subprocess.Popen(
            [*command, "--step", name], cwd=ROOT, env=gpuci_env(base, mounts), stdout=out, stderr=subprocess.STDOUT
        )
        held = wait_used(backend, baseline + int(args.gib * GIB * 0.9), 120) if backend else _sleep(8)
        cancel = time.monotonic()
        run.send_signal(signal.SIGTERM)  # a Buildkite cancel
        code = run.wait(timeout=120)
        exited = time.monotonic() - cancel
    free = wait_free(backend, baseline, 60) if backend else 0.0
    report = json.loads((ROOT / ".gpuci" / "runs" / "latest" / "report.json").read_text())
    shutil.copy(ROOT / ".gpuci" / "runs" / "latest" / "report.json", args.out / f"gpuci-{name}-report.json")
    return {
        "stopped_by": "gpuci (SIGTERM to the run)",
        "held_after_s": held,
        "cancel_to_exit_s": round(exited, 3),
        "gpuci_exit_code": code,
        "gpu_free_after_exit_s": free,
        "gpu_used_after_exit_bytes": used(backend) - baseline,
        "report_outcome": report.get("outcome"),
        "report_vram": report.get("vram"),
        "report_timings": report.get("timings"),
        "leftover_containers": len(_containers(args, "gpuci.area=gpu_misbehave")),
    }


def _sleep(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def _containers(args: argparse.Namespace, label: str) -> list[Any]:
    import docker

    return docker.from_env().containers.list(all=True, filters={"label": label})


def under_docker_stop(args: argparse.Namespace, client: Any, backend: Any, image: str, mounts: list[str], name: str):
    """Buildkite's docker plugin: the job's container stopped by label on cancel, nothing waited for."""
    from harness.declare.mounts import project_mounts
    from harness.declare.policy import HostPolicy
    from harness.gpu.devices import container_devices

    baseline = used(backend)
    devices = container_devices(args.platform, backend.devices()[:1] if backend else [], lambda: ())
    holder = ["python3", "bench/gpu/torch_holder.py", "--gib", str(args.gib), *SCENARIOS[name]]
    if args.platform == "cpu":
        holder.append("--cpu")
    script = " ".join(holder) + (" && sleep 3600" if name == "setsid-escapee" else "")
    binds = [f"{ROOT}:/workdir"] + [
        f"{m.source}:{m.target}:{'ro' if m.read_only else 'rw'}"
        for m in project_mounts((), ROOT, HostPolicy(), host_entries=tuple(mounts))
    ]
    container = client.containers.run(
        image,
        ["bash", "-c", script],
        detach=True,
        init=True,  # the plugin's default
        labels={"com.buildkite.job-id": f"bench-{name}"},
        volumes=binds,
        working_dir="/workdir",
        devices=list(devices.nodes),
        network_mode="none",
        environment={**devices.env},
    )
    held = wait_used(backend, baseline + int(args.gib * GIB * 0.9), 120) if backend else _sleep(8)
    cancel = time.monotonic()
    # `docker stop` of every container with the job's label, the plugin's default 10 s grace.
    for each in client.containers.list(filters={"label": f"com.buildkite.job-id=bench-{name}"}):
        each.stop(timeout=10)
    stopped = time.monotonic() - cancel
    free = wait_free(backend, baseline, 60) if backend else 0.0
    with open(args.out / f"docker-stop-{name}.log", "wb") as out:
        out.write(container.logs()[-200_000:])
    left = len(client.containers.list(all=True, filters={"label": f"com.buildkite.job-id=bench-{name}"}))
    container.remove(force=True)
    return {
        "stopped_by": "docker stop by label (10 s grace), no VRAM wait",
        "held_after_s": held,
        "cancel_to_stop_returned_s": round(stopped, 3),
        "gpu_free_after_stop_s": free,
        "gpu_used_when_stop_returned_bytes": None,
        "containers_left_after_stop": left,
    }


def save(out: Path, result: dict[str, Any]) -> None:
    """After every phase: a run cut off at its time limit still leaves what it measured."""
    (out / "docker-h100.json").write_text(json.dumps(result, indent=2, default=str) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--gib", type=float, default=4.0)
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: main, misbehave")
    args = parser.parse_args()
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": args.platform}
    rig = start(args, result, ("ServerVersion", "Driver", "CgroupVersion", "Runtimes"))
    client, backend, mounts = rig.client, rig.backend, rig.mounts
    if backend is not None:
        result["gpu"] = backend.devices()[0].name
    try:
        log("importing the machine's root as the base")
        base, result["base"] = host_root_base(client, rig.venv)
        log(f"base {base}: {result['base']}")
        image, seconds = build_image(client, args.platform, base)
        result["image_build"] = {"tag": image.tag, "seconds": seconds}
        log(f"built {image.tag}")
        if "main" not in args.skip:
            result["main_path"] = main_path(args, client, backend, base, mounts)
            log(f"main path: {result['main_path']['outcome']} exit {result['main_path']['exit_code']}")
            save(args.out, result)
        if "misbehave" not in args.skip:
            misbehaving_area(args)
            result["misbehaving"] = {}
            for name in SCENARIOS:
                log(f"scenario {name}")
                result["misbehaving"][name] = {
                    "gpuci": under_gpuci(args, backend, base, mounts, name),
                    "docker_stop": under_docker_stop(args, client, backend, image.tag, mounts, name),
                }
                log(json.dumps(result["misbehaving"][name]))
                save(args.out, result)
    finally:
        (ROOT / ".buildkite" / "test_areas" / "gpu_misbehave.yaml").unlink(missing_ok=True)
        save(args.out, result)
        rig.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
