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
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = Path("/tmp/gpuci-engine")
SOCKET = "unix:///tmp/gpuci-docker.sock"
GIB = 1024**3
# Left out of the imported base: the CUDA toolkit (torch brings its own libraries), the driver
# (bound at run time, as NVIDIA's runtime would) and documentation.
EXCLUDES = ("usr/local/cuda*", "usr/local/nvidia", "usr/share/doc", "usr/share/man", "usr/lib/jvm")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def ensure_sdk(carry: Path) -> None:
    try:
        import docker  # noqa: F401
    except ImportError:
        wheel = next(carry.glob("docker-*.whl"))
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", "/tmp/gpuci-site", str(wheel)],
            check=True,
        )
        sys.path.insert(0, "/tmp/gpuci-site")
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, ["/tmp/gpuci-site", os.environ.get("PYTHONPATH")]))


def start_engine(carry: Path, out: Path) -> tuple[subprocess.Popen[bytes], float]:
    """The carried engine on a private socket; no bridge (containers run with network none)."""
    started = time.monotonic()
    ENGINE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-xJf", str(carry / "docker-engine.tar.xz"), "-C", str(ENGINE_DIR)], check=True)
    env = {
        **os.environ,
        "PATH": f"{ENGINE_DIR / 'bin'}:{os.environ['PATH']}",
        "LD_LIBRARY_PATH": str(ENGINE_DIR / "lib"),
    }
    engine = subprocess.Popen(
        [
            str(ENGINE_DIR / "bin" / "dockerd"),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--data-root=/tmp/gpuci-docker-data",
            "--exec-root=/tmp/gpuci-docker-exec",
            "--pidfile=/tmp/gpuci-dockerd.pid",
            f"--host={SOCKET}",
        ],
        env=env,
        stdout=open(out / "dockerd.log", "wb"),  # noqa: SIM115 - lives as long as the engine
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    os.environ["DOCKER_HOST"] = SOCKET
    import docker

    while True:
        try:
            docker.from_env().ping()
            break
        except Exception:
            if engine.poll() is not None or time.monotonic() - started > 60:
                raise SystemExit(f"dockerd did not start; see {out / 'dockerd.log'}") from None
            time.sleep(0.2)
    return engine, time.monotonic() - started


def host_root_base(client: Any, venv: Path | None) -> tuple[str, dict[str, Any]]:
    """An image of the machine's own /usr and /etc, the torch venv put on its Python's path."""
    started = time.monotonic()
    python = Path(os.path.realpath(venv / "bin" / "python3")) if venv else Path("/usr/bin/python3")
    probe = "import sys, sysconfig; print(sys.prefix); print(sysconfig.get_paths()['purelib']); print(sys.version[:4])"
    prefix, purelib, version = subprocess.run(
        [str(python), "-I", "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    trees = ["usr", "etc"]
    if not prefix.startswith("/usr"):
        trees.append(prefix.lstrip("/"))  # an interpreter installed outside /usr (uv, pyenv) comes along
    with tempfile.TemporaryDirectory(dir="/var/tmp") as scratch:
        skeleton = Path(scratch) / "root"
        for name in ("proc", "sys", "dev", "tmp", "root", "run", "var/tmp", "opt", "sbin", "home", "usr/local/bin"):
            (skeleton / name).mkdir(parents=True, exist_ok=True)
        (skeleton / "tmp").chmod(0o1777)
        (skeleton / "var" / "tmp").chmod(0o1777)
        for name in ("bin", "lib", "lib32", "lib64", "libx32"):
            if os.path.islink(f"/{name}"):  # usr-merged hosts: the same links ("/sbin" stays a folder)
                os.symlink(os.readlink(f"/{name}"), skeleton / name)
        if not Path("/usr/bin/python3").exists() or not prefix.startswith("/usr"):
            os.symlink(str(python), skeleton / "usr" / "local" / "bin" / "python3")
        if venv:
            pth = skeleton / purelib.lstrip("/") / "gpuci-host-venv.pth"
            pth.parent.mkdir(parents=True, exist_ok=True)
            pth.write_text(f"{venv}/lib/python{version}/site-packages\n")
        archive = Path(scratch) / "base.tar"
        excludes = [f"--exclude={pattern}" for pattern in EXCLUDES]
        # check=False: tar exits 1 for files that change while read (logs under /etc); the rest is whole.
        subprocess.run(["tar", "-C", "/", "-cf", str(archive), *excludes, "--one-file-system", *trees], check=False)
        # Only what the host trees lack: the engine refuses an archive naming one path twice.
        added = sorted(
            str(path.relative_to(skeleton))
            for path in skeleton.rglob("*")
            if path.is_symlink()
            or path.is_file()
            or not (Path("/") / path.relative_to(skeleton)).is_dir()
            or path.relative_to(skeleton).parts[0] not in trees
        )
        subprocess.run(["tar", "-C", str(skeleton), "--no-recursion", "-rf", str(archive), *added], check=True)
        size = archive.stat().st_size
        tag = f"gpuci/hostroot:py{version}-{int(time.time())}"
        repository, _, name = tag.partition(":")
        client.api.import_image(src=str(archive), repository=repository, tag=name)
    details = {"python": str(python), "prefix": prefix, "purelib": purelib, "python_version": version}
    return tag, {**details, "trees": trees, "bytes": size, "seconds": round(time.monotonic() - started, 3)}


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


def used(backend: Any) -> int:
    return backend.used_bytes(backend.devices()[0]) if backend else 0


def wait_used(backend: Any, at_least: int, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if used(backend) >= at_least:
            return time.monotonic() - started
        time.sleep(0.02)
    return None


def wait_free(backend: Any, baseline: int, timeout: float) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if used(backend) <= baseline + 64 * 1024**2:
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def gpuci_env(base: str, mounts: list[str]) -> dict[str, str]:
    return {
        **os.environ,
        "GPUCI_BASE_IMAGE": base,
        "GPUCI_MOUNTS": ",".join(mounts),
        "GPUCI_NETWORK": "none",
        "PYTHONUNBUFFERED": "1",
    }


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
    parser.add_argument("out", type=Path)
    parser.add_argument("--carry", type=Path, default=ROOT / ".gpu-carry")
    parser.add_argument("--platform", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--engine", default="carried", choices=["carried", "existing"])
    parser.add_argument("--host-venv", type=Path, default=Path("/opt/torch/.venv"))
    parser.add_argument("--gib", type=float, default=4.0)
    parser.add_argument("--skip", nargs="*", default=[], help="parts to skip: main, misbehave")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    os.environ["GPUCI_WHEELHOUSE"] = str((args.carry / "wheelhouse").resolve())
    ensure_sdk(args.carry)
    sys.path.insert(0, str(ROOT))
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "platform": args.platform}
    engine = None
    if args.engine == "carried":
        engine, result["engine_start_s"] = start_engine(args.carry, args.out)
    import docker

    client = docker.from_env()
    result["engine"] = {k: client.info().get(k) for k in ("ServerVersion", "Driver", "CgroupVersion", "Runtimes")}
    backend = None
    if args.platform == "cuda":
        from harness.gpu.vendors.cuda import NvmlBackend

        backend = NvmlBackend()
        result["gpu"] = backend.devices()[0].name
    venv = args.host_venv if args.host_venv.is_dir() else None
    mounts = [f"{venv}:{venv}:ro"] if venv else []
    if Path("/usr/local/nvidia").is_dir():
        mounts.append("/usr/local/nvidia:/usr/local/nvidia:ro")
    try:
        log("importing the machine's root as the base")
        base, result["base"] = host_root_base(client, venv)
        log(f"base {base}: {result['base']}")
        from harness.images.build import ensure
        from harness.images.recipe import recipe_for

        started = time.monotonic()
        os.environ["GPUCI_NETWORK"] = "none"
        image = ensure(client, recipe_for(ROOT, args.platform, base_image=base), ROOT)
        result["image_build"] = {"tag": image.tag, "seconds": round(time.monotonic() - started, 3)}
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
        if engine:
            engine.terminate()
            engine.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
