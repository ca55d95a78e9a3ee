"""What the GPU benches share: the carried Docker Engine, the base imported from the machine's root,
gpuci's image on it, NVML's memory figures, and the set-up every bench's `main` starts with.

docker_h100.py, orphan_h200.py and docker_x2.py import it (run from the repository root, as each says).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
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


# What a bench's own `python -m harness` needs on the machine's Python, by module and by the wheel
# that brings it (bench/gpu/make_carry.py carries them in the wheelhouse).
HOST_MODULES = {"docker": "docker", "yaml": "PyYAML", "psutil": "psutil", "packaging": "packaging"}


def ensure_sdk(carry: Path) -> None:
    """The Docker SDK and gpuci's other host modules the machine's Python lacks, installed from the
    carried wheelhouse (with their dependencies) into a folder of their own, put on the path."""
    import importlib.util

    missing = [wheel for module, wheel in HOST_MODULES.items() if importlib.util.find_spec(module) is None]
    if not missing:
        return
    wheelhouse = carry / "wheelhouse"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheelhouse),
         "--target", "/tmp/gpuci-site", *missing],
        check=True,
    )  # fmt: skip
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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments every GPU bench takes: where to write, what was carried, the platform, the engine."""
    parser.add_argument("out", type=Path)
    parser.add_argument("--carry", type=Path, default=ROOT / ".gpu-carry")
    parser.add_argument("--platform", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--engine", default="carried", choices=["carried", "existing"])
    parser.add_argument("--host-venv", type=Path, default=Path("/opt/torch/.venv"))


@dataclass
class Rig:
    """A bench's engine, its client, NVML (None on the cpu platform) and the mounts its runs get."""

    client: Any
    backend: Any = None
    engine: subprocess.Popen[bytes] | None = None
    venv: Path | None = None
    mounts: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.terminate()
            self.engine.wait(timeout=30)


def start(args: argparse.Namespace, result: dict[str, Any], engine_keys: tuple[str, ...]) -> Rig:
    """The engine (the carried one started, or the machine's), NVML, and the torch venv and driver
    folders the runs bind read-only; what was found goes into `result`."""
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.carry.joinpath("wheelhouse").is_dir():
        os.environ["GPUCI_WHEELHOUSE"] = str((args.carry / "wheelhouse").resolve())
    if args.engine == "carried":
        ensure_sdk(args.carry)
    sys.path.insert(0, str(ROOT))
    engine = None
    if args.engine == "carried":
        engine, result["engine_start_s"] = start_engine(args.carry, args.out)
    import docker

    client = docker.from_env()
    result["engine"] = {k: client.info().get(k) for k in engine_keys}
    backend = None
    if args.platform == "cuda":
        from harness.gpu.vendors.cuda import NvmlBackend

        backend = NvmlBackend()
    venv = args.host_venv if args.host_venv.is_dir() else None
    mounts = [f"{venv}:{venv}:ro"] if venv else []
    if Path("/usr/local/nvidia").is_dir():
        mounts.append("/usr/local/nvidia:/usr/local/nvidia:ro")
    return Rig(client, backend, engine, venv, mounts)


def build_image(client: Any, platform: str, base: str | None) -> tuple[Any, float]:
    """gpuci's image of `platform` on `base`, built with no network (wheels from the wheelhouse); its seconds."""
    from harness.images.build import ensure
    from harness.images.recipe import recipe_for

    os.environ["GPUCI_NETWORK"] = "none"
    started = time.monotonic()
    image = ensure(client, recipe_for(ROOT, platform, base_image=base or None), ROOT)
    return image, round(time.monotonic() - started, 3)
