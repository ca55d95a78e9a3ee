"""What piles up is found and removed: killed builds' folders (by reap too), old worktrees, old images."""

from __future__ import annotations

import contextlib
import io
import os
import tarfile
import threading
import time
import uuid
from pathlib import Path

import docker
import pytest

from harness.images import engine, in_use
from harness.run.cleanup import gc, reaper
from harness.run.cleanup.reaper import PROJECT_LABEL, project_id
from tests.conftest import SESSION_LABEL
from tests.images.test_engine import tiny_image

pytestmark = pytest.mark.xdist_group("reap")


def _dead_build_folder(root: Path) -> Path:
    folder = root / ".gpuci" / "build" / "context-999999-12.00-abcdef"  # no such process
    (folder / "wheelhouse").mkdir(parents=True)
    (folder / "wheelhouse" / "torch.whl").write_bytes(b"x" * 4096)
    return folder


def test_reap_removes_the_context_a_killed_build_left_and_keeps_a_live_ones(run_harness, tmp_path: Path) -> None:
    dead = _dead_build_folder(tmp_path)
    from harness.owned import make_owned_dir

    live = make_owned_dir(tmp_path / ".gpuci" / "build", "context-")  # this test process: alive
    own = ("--label", SESSION_LABEL)  # no other suite's images on a shared engine
    listed = run_harness("reap", "--root", str(tmp_path), "--vram-backend", "none", *own)
    assert "build-folder" in listed.stdout and dead.name in listed.stdout and live.name not in listed.stdout
    assert dead.exists()  # listing alone removes nothing
    done = run_harness("reap", "--root", str(tmp_path), "--yes", "--vram-backend", "none", *own)
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and live.exists()


def test_gc_is_a_dry_run_until_told_and_then_removes_old_worktrees_and_build_folders(
    run_harness, tmp_path: Path
) -> None:
    dead = _dead_build_folder(tmp_path)
    old = tmp_path / ".gpuci" / "repro" / "20250101T000000Z-cpu_x-abcdef"
    old.mkdir(parents=True)
    (old / "file").write_text("x")
    month_ago = time.time() - 30 * 86400
    os.utime(old, (month_ago, month_ago))
    young = tmp_path / ".gpuci" / "repro" / "young"
    young.mkdir()
    own = ("--label", SESSION_LABEL)  # no other suite's images on a shared engine
    dry = run_harness("gc", "--root", str(tmp_path), *own)
    assert dry.returncode == 0, dry.stderr
    assert "worktree" in dry.stdout and old.name in dry.stdout and "young" not in dry.stdout
    assert "run again with --yes" in dry.stdout and dead.exists() and old.exists()
    done = run_harness("gc", "--root", str(tmp_path), "--yes", *own)
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and not old.exists() and young.exists()


def _image(client: docker.DockerClient, base: str, platform: str, marker: str) -> str:
    dockerfile = f"FROM {base}\nLABEL gpuci.content-hash={marker} gpuci.platform={platform} {SESSION_LABEL}\n".encode()
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
    context.seek(0)
    image, _ = client.images.build(
        fileobj=context, custom_context=True, tag=f"gpuci/{platform}:{marker}", pull=False, rm=True, forcerm=True
    )
    return image.id


def test_gc_keeps_the_newest_images_of_a_platform(cpu_image, docker_client: docker.DockerClient) -> None:
    platform = f"gctest{os.getpid()}"
    older = _image(docker_client, cpu_image.tag, platform, "older")
    time.sleep(1.1)  # Created has second resolution
    newer = _image(docker_client, cpu_image.tag, platform, "newer")
    try:
        mine = (SESSION_LABEL, f"gpuci.platform={platform}")
        found = [g for g in gc.find_garbage(Path("/nonexistent"), docker_client, 1, 0, mine) if g.kind == "image"]
        assert [g.id for g in found] == [f"gpuci/{platform}:older"]
        assert gc.remove_garbage(Path("/nonexistent"), docker_client, found) == []
        tags = {t for i in engine.list_images(docker_client, mine) for t in i.tags}
        assert tags == {f"gpuci/{platform}:newer"}
    finally:
        for image in (older, newer):
            with contextlib.suppress(docker.errors.NotFound):
                docker_client.images.remove(image, force=True)


def test_a_crashed_runs_secrets_folder_is_removed_by_reap_and_gc(make_project, cpu_image, tmp_path: Path) -> None:
    import signal
    import subprocess

    from tests.conftest import harness_cmd, harness_env

    temp = tmp_path / "tmp"  # the runs' temporary folder: only this test's secrets are there
    temp.mkdir()
    secret = "crash-s3cret-0123456789"
    root = make_project("platforms: [cpu]\nsteps: [{label: s, commands: ['sleep 120']}]\n", name="crash")
    env = harness_env(TMPDIR=str(temp), API_TOKEN=secret)
    run = ["run", "--platform", "cpu", "--area", "crash", "--root", str(root), "--env", "API_TOKEN"]
    supervisor = subprocess.Popen(harness_cmd(*run), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(temp.glob("gpuci-secrets-*/env")) and time.monotonic() < deadline:
        time.sleep(0.2)
    (left,) = temp.glob("gpuci-secrets-*")
    assert secret in (left / "env").read_text()
    supervisor.send_signal(signal.SIGKILL)  # a crash: nothing of gpuci's runs after this
    supervisor.wait()
    assert (left / "env").exists()

    # Scoped to this project's label (no image carries it): never a neighbour suite's images or lease files.
    own = ("--label", f"{PROJECT_LABEL}={project_id(root)}")

    def gpuci(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(harness_cmd(*args, *own), env=env, capture_output=True, text=True, timeout=300)

    listed = gpuci("gc", "--root", str(root))
    assert "secrets-folder" in listed.stdout and left.name in listed.stdout and secret not in listed.stdout
    reaped = gpuci("reap", "--root", str(root), "--yes", "--vram-backend", "none")
    assert reaped.returncode == 0, reaped.stderr
    assert not left.exists() and secret not in reaped.stdout + reaped.stderr
    # gc removes one too (a folder of a process that is gone, as a crash leaves it).
    dead = temp / "gpuci-secrets-999999-12.00-abcdef"
    dead.mkdir(mode=0o700)
    (dead / "env").write_text(f"export API_TOKEN={secret}\n")
    done = gpuci("gc", "--root", str(root), "--yes")
    assert done.returncode == 0, done.stderr
    assert not dead.exists() and not list(temp.glob("gpuci-secrets-*"))


def _churn(client: docker.DockerClient, label: str, stop: threading.Event, made: list[int]) -> None:
    """Another process on the engine: gpuci-looking images and dead runs' containers, made and removed
    as fast as the engine allows."""
    key, value = label.split("=")
    while not stop.is_set():
        image = tiny_image(
            client, label, "gpuci.content-hash=race", "gpuci.platform=race", tag=f"gpuci-race/{value}:{made[0]}"
        )
        container = client.api.create_container(
            image, ["/marker"], labels={key: value, "gpuci.run-id": f"race-{made[0]}", "gpuci.supervisor-pid": "0"}
        )
        engine.remove_container(client, container["Id"])  # gc or reap may have been first
        engine.remove_image(client, image, force=True)
        made[0] += 1


def test_gc_and_reap_never_crash_when_another_process_removes_what_they_listed(docker_client, tmp_path) -> None:
    """The race of a shared engine: docker-py's images.list inspected each image it listed, so one
    removed meanwhile raised "No such image" out of gc and reap."""
    label = f"gpuci.test-race={uuid.uuid4().hex[:12]}"
    stop, made = threading.Event(), [0]
    churners = [threading.Thread(target=_churn, args=(docker_client, label, stop, made)) for _ in range(2)]
    for thread in churners:
        thread.start()
    rounds = 0
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline or rounds < 20:
            garbage = gc.find_garbage(tmp_path, docker_client, 0, 0, (label,))
            assert gc.remove_garbage(tmp_path, docker_client, [g for g in garbage if g.kind == "image"]) == []
            leftovers = reaper.dead_run_containers(docker_client, labels=(label,))
            leftovers += [reaper.Leftover(g.kind, g.id, None, g.detail) for g in gc.dangling_images(docker_client)]
            assert reaper.clean([i for i in leftovers if i.kind == "container"], docker_client) == []
            rounds += 1
    finally:
        stop.set()
        for thread in churners:
            thread.join()
        for image in engine.list_images(docker_client, (label,)):
            engine.remove_image(docker_client, image.id, force=True)
    assert made[0] >= 10 and rounds >= 20, (made, rounds)  # they did overlap, many times


def test_gc_keeps_an_image_a_build_or_run_on_this_host_pins(docker_client, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(tmp_path))  # this test's pins only
    platform = f"gcpin{uuid.uuid4().hex[:8]}"
    mine = (SESSION_LABEL, f"gpuci.platform={platform}")
    image_id = tiny_image(
        docker_client, "gpuci.content-hash=pin", f"gpuci.platform={platform}", tag=f"gpuci/{platform}:a"
    )
    try:
        [found] = [g for g in gc.find_garbage(tmp_path, docker_client, 0, 0, mine) if g.kind == "image"]
        assert found.image_id == image_id
        with in_use.pinned(image_id):  # a run between finding its image and creating its container
            assert gc.remove_garbage(tmp_path, docker_client, [found]) == []
            assert engine.image_id(docker_client, image_id) == image_id  # kept
        assert gc.remove_garbage(tmp_path, docker_client, [found]) == []
        assert engine.image_id(docker_client, image_id) is None  # unpinned: collected
    finally:
        engine.remove_image(docker_client, image_id, force=True)


def test_dangling_layers_wait_while_a_build_runs_on_this_host(docker_client, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GPUCI_LOCK_DIR", str(tmp_path))
    image_id = tiny_image(docker_client, "gpuci.base=test-dangling")  # untagged: dangling
    try:
        old = gc.Garbage("dangling-image", image_id, 0, "interrupted build")
        assert image_id not in {g.id for g in gc.dangling_images(docker_client, (SESSION_LABEL,))}  # too young
        with in_use.building():
            assert gc.remove_garbage(tmp_path, docker_client, [old]) == []
            assert engine.image_id(docker_client, image_id) == image_id  # a build runs: kept
        assert gc.remove_garbage(tmp_path, docker_client, [old]) == []
        assert engine.image_id(docker_client, image_id) is None
    finally:
        engine.remove_image(docker_client, image_id, force=True)


def test_a_stale_build_folder_nested_3000_deep_is_listed_and_removed(tmp_path: Path) -> None:
    """`gpuci reap` measured each stale build folder with os.walk, which recursed once a level: 3,000 nested
    folders (the project's layer container writes the build folder's /tmp) raised RecursionError out of it."""
    from harness.run.cleanup.gc import stale_build_folders
    from harness.untrusted import remove_tree

    folder = tmp_path / ".gpuci" / "build" / "context-999999-1000.00-abcdef"
    folder.mkdir(parents=True)
    fd = os.open(folder, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.close(fd)
    try:
        assert [g.id for g in stale_build_folders(tmp_path)] == [str(folder)]
    finally:
        remove_tree(folder)  # pytest's own clean-up of old temporary folders recurses: never leave it one
