"""A new vendor is one module and one registration: a fake vendor, registered here and nowhere else, gets
a platform, sessions, pipeline steps, container options that reach a real container, pinning, an image
recipe, lint names and foreign pipelines' marks; unregistered, it is gone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.ci.buildkite import Selection, generate
from harness.ci.init_recipes import dockerfile
from harness.ci.lint.check import other_hardware
from harness.ci.lint.platform_skips import platform_skip
from harness.declare.areas import load_area, session_name
from harness.declare.config import ProjectConfig
from harness.declare.platforms import get_platform, platform_names
from harness.errors import UsageError
from harness.gpu.devices import container_devices, missing_gpu
from harness.gpu.for_run import visible_env
from harness.gpu.vendors import backend_names, for_backend, open_backend, register, registered, vendors
from harness.gpu.vendors.vendor import (
    BaseImage,
    DeviceOptions,
    DriverNode,
    EngineRuntimes,
    ForeignNames,
    HostPaths,
    LintNames,
    Vendor,
    by_id,
)
from harness.gpu.vram import sim
from harness.gpu.vram.base import Device
from harness.gpu.vram.release import VramWatch

LEASED = [Device(0, "FAKE-0", "Fake accelerator", 1), Device(1, "FAKE-1", "Fake accelerator", 1)]


def fake_devices(leased: list[Device], runtimes: EngineRuntimes, paths: HostPaths) -> DeviceOptions:
    # /dev/null stands in for the accelerator's node: harmless to open in a container.
    nodes = tuple(f"/dev/null:/dev/fake{d.index}:rwm" for d in leased)
    return DeviceOptions(nodes=nodes, env={"FAKE_VISIBLE_DEVICES": by_id(leased)}, route="fake-nodes")


def fake_vendor(sim_dir: Path | None = None) -> Vendor:
    return Vendor(
        name="fake",
        platform="fakegpu",
        shutdown_budget_s=3.5,
        backend="fakesmi",
        open_backend=lambda: sim.SimBackend(sim_dir),
        visible_variable="FAKE_VISIBLE_DEVICES",
        visible_value=by_id,
        container_devices=fake_devices,
        driver_node=DriverNode("/dev/fakectl", "Fake", "fake driver"),
        probe=False,
        image=BaseImage("# gpuci fakegpu image: fake accelerators.", "python:3.11-slim-bookworm", env="FAKE=1"),
        lint=LintNames(skip_calls=("is_fake",), toolkit_variables=("FAKE_HOME",)),
        foreign=ForeignNames(agent_device=r"fk\d", mirror_key="fake"),
    )


@pytest.fixture
def fake() -> Vendor:
    with registered(fake_vendor()) as vendor:
        yield vendor


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "area.yaml"
    path.write_text(text)
    return path


def test_a_registered_vendor_has_a_platform_sessions_and_pipeline_steps(fake: Vendor, tmp_path: Path) -> None:
    assert platform_names() == ("cpu", "cuda", "rocm", "fakegpu")
    platform = get_platform("fakegpu")
    assert (platform.vendor, platform.recipe, platform.shutdown_budget_s, platform.vram_backend) == (
        fake,
        "fakegpu",
        3.5,
        "fakesmi",
    )
    area = load_area(write(tmp_path, "group: g\nplatforms: [cpu, fakegpu]\nsteps:\n- label: t\n  commands: [pytest]\n"))
    assert area.platforms == ("cpu", "fakegpu")
    assert session_name("fakegpu", area.name) == "fakegpu_area"
    steps = [s for group in generate([area], ProjectConfig(), Selection(None))["steps"] for s in group["steps"]]
    fake_step = next(s for s in steps if s["env"]["GPUCI_PLATFORM"] == "fakegpu")
    assert fake_step["command"] == "gpuci run --platform fakegpu --area area --step t"
    # No host policy names the new platform: its steps go to the host's fallback queue, never a KeyError.
    assert fake_step["agents"]["queue"] == "default"


def test_foreign_pipelines_mark_the_new_vendors_steps_by_its_names(fake: Vendor, tmp_path: Path) -> None:
    text = (
        "steps:\n- label: mirrored\n  commands: [pytest a]\n  mirror:\n    fake:\n      commands: [pytest b]\n"
        "- label: own agent\n  device: fk8\n  commands: [pytest c]\n- label: plain\n  commands: [pytest d]\n"
    )
    mirrored, own, plain = load_area(write(tmp_path, text)).steps
    assert mirrored.platforms == ("cuda", "fakegpu") and mirrored.on("fakegpu").commands == ("pytest b",)
    assert own.platforms == ("fakegpu",) and plain.platforms == ("cuda",)


def test_container_options_pinning_and_image_come_from_the_vendor(fake: Vendor, cpu_image, docker_client) -> None:
    options = container_devices("fakegpu", LEASED[1:], lambda: pytest.fail("the fake vendor never asks the engine"))
    assert options.route == "fake-nodes" and options.env == {"FAKE_VISIBLE_DEVICES": "FAKE-1"}
    out = docker_client.containers.run(
        cpu_image.tag,
        ["sh", "-c", "ls /dev; head -c0 /dev/fake1 && echo opened"],
        devices=list(options.nodes),
        remove=True,
    ).decode()
    assert "fake1" in out.split() and "fake0" not in out.split() and "opened" in out
    assert container_devices("fakegpu", [], lambda: ()) == DeviceOptions()  # no GPUs leased: nothing passed
    assert for_backend("fakesmi") is fake and "fakesmi" in backend_names()
    assert fake.visible_env(LEASED) == {"FAKE_VISIBLE_DEVICES": "FAKE-0,FAKE-1"}
    recipe = dockerfile("fakegpu")
    assert recipe.startswith("# gpuci fakegpu image") and "ARG BASE_IMAGE=python:3.11-slim-bookworm" in recipe
    assert "    LANG=C.UTF-8 \\\n    FAKE=1\n" in recipe  # the vendor's ENV joins the recipe's one ENV step


def test_the_vendors_backend_opens_by_name_and_pins_host_workloads(sim_gpus: Path) -> None:
    with registered(fake_vendor(sim_gpus)):
        backend = open_backend("fakesmi")
        try:
            watch = VramWatch(backend, backend.devices()[:1], timeout_s=1.0)
            # The backend reports its own name; a backend named like the vendor's is pinned by its rule.
            assert visible_env(watch) == {sim.VISIBLE_ENV: "0"}
            renamed = VramWatch(type("FakeSmi", (), {"name": "fakesmi"})(), watch.devices, 1.0)  # type: ignore[arg-type]
            assert visible_env(renamed) == {"FAKE_VISIBLE_DEVICES": watch.devices[0].id}
        finally:
            backend.close()


def test_lint_and_missing_gpu_know_the_new_vendor(fake: Vendor, tmp_path: Path) -> None:
    assert other_hardware("intel_gpu") and not other_hardware("fk1")
    with registered(
        replace(fake_vendor(), name="intel", platform="xpu", backend="xpusmi", foreign=ForeignNames("intel_gpu"))
    ):
        assert not other_hardware("intel_gpu")  # a vendor's own agents are its platform's, not unknown hardware
    skip = platform_skip("import pytest\npytestmark = pytest.mark.skipif(not current_platform.is_fake(), reason='x')\n")
    assert skip is not None and skip.platforms == frozenset({"cpu", "cuda", "rocm"})
    message = missing_gpu("fakegpu", "nox -s cpu_x", dev=str(tmp_path))
    assert message is not None and f"{tmp_path}/fakectl" in message and "no Fake GPU" in message


def test_unregistered_it_is_gone_and_names_cannot_be_taken_twice() -> None:
    with registered(fake_vendor()):
        with pytest.raises(ValueError, match="already taken"):
            register(fake_vendor())
        clash = Vendor("other", "cuda", 1.0, "othersmi", lambda: sim.SimBackend(), "OTHER_VISIBLE")
        with pytest.raises(ValueError, match="cuda already taken by 'cuda'"):
            register(clash)
    assert [v.name for v in vendors()] == ["simulated", "cuda", "rocm"]
    with pytest.raises(UsageError, match="unknown platform 'fakegpu'; gpuci knows cpu, cuda, rocm"):
        get_platform("fakegpu")
