"""`python -m harness …` entry points: exit codes and one-paragraph errors, never tracebacks."""

from __future__ import annotations

import json


def test_supervise_runs_any_command_on_the_host(run_harness, sim_gpus, tmp_path) -> None:
    script = "from harness.gpu.vram import sim; h = sim.hold(1 << 30, 0); print('held')"
    done = run_harness(
        "supervise",
        "--vram-backend",
        "sim",
        "--report-dir",
        str(tmp_path),
        "--quiet",
        "--",
        "python3",
        "-c",
        script,
        GPUCI_SIM_GPUS=str(sim_gpus),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["mode"] == "host" and report["outcome"] == "passed"
    assert report["vram"]["backend"] == "sim" and report["vram"]["released"] is True
    assert "held" in (tmp_path / "output.log").read_text()


def test_supervise_runs_a_command_in_an_image(run_harness, cpu_image, tmp_path) -> None:
    done = run_harness(
        "supervise",
        "--image",
        cpu_image.tag,
        "--report-dir",
        str(tmp_path),
        "--quiet",
        "--",
        "sh",
        "-c",
        "exit 4",
    )
    assert done.returncode == 1
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["mode"], report["exit_code"], report["outcome"]) == ("container", 4, "failed")


def test_supervise_without_a_command_is_a_usage_error(run_harness) -> None:
    done = run_harness("supervise")
    assert done.returncode == 2 and "needs a command" in done.stderr and "Traceback" not in done.stderr


def test_an_unknown_area_names_the_known_ones(run_harness) -> None:
    done = run_harness("run", "--platform", "cpu", "--area", "samplr")
    assert done.returncode == 2 and "known areas: sampler" in done.stderr


def test_image_tag_prints_the_content_tag(run_harness, cpu_image) -> None:
    done = run_harness("image", "tag", "--platform", "cpu")
    assert done.returncode == 0 and done.stdout.strip() == cpu_image.tag
