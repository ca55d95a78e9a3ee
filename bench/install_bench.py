"""A real project's dependency layer installed with pip and with uv, side by side.

The project: tabulate 0.9.0 from PyPI (its sdist), with the test requirements its suite uses as
people write them (pytest, numpy, pandas, wcwidth: compiled wheels among them), resolved by gpuci
for its cpu image as `gpuci run` does. Then the image is built from scratch (no layer cache) with
`GPUCI_INSTALLER=pip` and with uv, alternating, `--runs` times each; timed is the project's
dependency layer (the `RUN set -e` step gpuci appends after its own layer, which every project on a
base shares): the install command alone (the recipe prints it) and the whole layer (from the build's
own output: its `RUN` line to the next step, the layer's commit included). Also timed: a whole gpuci
session on that project cold (its image removed first if an earlier run left it) and warm (image
present), as a user meets them.

Writes bench/results/install.json.

    python bench/install_bench.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

import docker  # noqa: E402

from harness.images import engine  # noqa: E402
from harness.images.airgap import wheelhouse_dir  # noqa: E402
from harness.images.context import project_steps, write_layers  # noqa: E402
from harness.images.installer import UV, fetch_uv  # noqa: E402

REQUIREMENTS = "pytest\nnumpy\npandas\nwcwidth\n"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def project(scratch: Path) -> Path:
    """tabulate's sdist as a git checkout, with gpuci init and an area for its suite."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(scratch),
         "tabulate==0.9.0"], check=True,
    )  # fmt: skip
    with tarfile.open(scratch / "tabulate-0.9.0.tar.gz") as tar:
        tar.extractall(scratch, filter="data")
    repo = scratch / "tabulate-0.9.0"
    (repo / "requirements-test.txt").write_text(REQUIREMENTS)
    ident = ["-c", "user.email=bench@gpuci", "-c", "user.name=bench"]
    for args in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", "tabulate"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "harness", "init", "--root", str(repo)], check=True, cwd=ROOT)
    text = (repo / "pyproject.toml").read_text()
    (repo / "pyproject.toml").write_text(text.replace("# requirements = [", "requirements = ["))
    (repo / ".buildkite" / "test_areas" / "example.yaml").unlink()
    (repo / ".buildkite" / "test_areas" / "tabulate.yaml").write_text(
        "group: tabulate\nplatforms: [cpu]\nsteps:\n  - label: suite\n    num_gpus: 0\n    commands: [pytest -q test]\n"
    )
    return repo


def session(repo: Path) -> tuple[float, dict]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--platform", "cpu", "--area", "tabulate", "--root", str(repo)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"install_bench: the session failed:\n{done.stderr[-3000:]}")
    return seconds, json.loads((repo / ".gpuci" / "runs" / "latest" / "report.json").read_text())


def layer_context(repo: Path, client: docker.DockerClient, tag: str, wheelhouse: Path, into: Path) -> None:
    """The image's build context as gpuci makes it: the recipe, gpuci's pins, the project's resolved pins."""
    pins = client.images.get(tag).labels["gpuci.resolved"].split(",")
    write_layers(into, repo, wheelhouse, repo / "containers" / "requirements.txt", b"", pins)
    recipe = (repo / "containers" / "cpu" / "Dockerfile").read_text()
    (into / "Dockerfile").write_text(recipe + project_steps({"gpuci.bench": "install"}, None, True))


def build_layer(client: docker.DockerClient, context: Path, base: str, installer: str) -> tuple[float, float]:
    """Seconds of the install step (the layer, from the build's own output: its RUN line to the next
    step, the layer's commit included), and of the install command alone (as the recipe reports it)."""
    started = ended = installed = None
    lines: list[str] = []  # the build's last lines, said when it fails
    for chunk in client.api.build(
        path=str(context), buildargs={"BASE_IMAGE": base, "GPUCI_INSTALLER": installer}, nocache=True,
        rm=True, forcerm=True, decode=True, pull=False,
    ):  # fmt: skip
        text = ANSI.sub("", chunk.get("stream", ""))  # a step's stderr comes coloured, and its next line after
        lines = [*lines[-40:], text]
        if "error" in chunk:
            raise SystemExit(f"install_bench: build failed: {chunk['error']}\n{''.join(lines)}")
        for line in text.splitlines():
            if re.match(r"Step \d+/\d+ : RUN set -e", line):  # the project's layer (gpuci's own comes before)
                started = time.perf_counter()
            elif started and ended is None and (re.match(r"Step \d+/\d+ : ", line) or "Successfully built" in line):
                ended = time.perf_counter()
            if started and line.startswith("gpuci: installing with"):
                print(f"    {line.strip()}", flush=True)
            took = re.match(r"gpuci: installed in ([0-9.]+) s", line)
            if started and took:
                installed = float(took.group(1))
    if not (started and ended and installed is not None):
        raise SystemExit("install_bench: the project layer's install step was not seen:\n" + "".join(lines))
    return ended - started, installed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "install.json")
    args = parser.parse_args(argv)
    client = docker.from_env()
    with tempfile.TemporaryDirectory(prefix="gpuci-install-bench-") as tmp:
        scratch = Path(tmp)
        repo = project(scratch)
        print("  a whole session, cold (no image; wheels fetched or found in the wheelhouse)", flush=True)
        cold, report = session(repo)
        if not report["image"].get("built"):  # an earlier run's image of this project: not cold; untagged, again
            print(f"    found {report['image']['tag']} from an earlier run: removed, and the session run again")
            engine.remove_image(client, report["image"]["tag"])
            cold, report = session(repo)
        if not report["image"].get("built"):
            raise SystemExit("install_bench: the cold session built no image; the comparison needs its wheelhouse")
        print(f"    {cold:.1f} s ({report['counts']})", flush=True)
        warm = [session(repo)[0] for _ in range(args.runs)]
        print(f"  warm (image present): {statistics.median(warm):.2f} s", flush=True)
        tag = report["image"]["tag"]
        base = report["image"]["base_image"]
        wheelhouse = wheelhouse_dir(repo)
        if not fetch_uv(wheelhouse):
            raise SystemExit(f"install_bench: {UV} could not be fetched; the comparison needs it")
        context = scratch / "context"
        context.mkdir()
        layer_context(repo, client, tag, wheelhouse, context)
        times: dict[str, list[float]] = {"pip": [], "uv": []}
        installs: dict[str, list[float]] = {"pip": [], "uv": []}
        for run in range(args.runs):
            for installer, arg in (("pip", "pip"), ("uv", "auto")):
                layer, install = build_layer(client, context, base, arg)
                times[installer].append(layer)
                installs[installer].append(install)
                print(f"  run {run + 1}: {installer}: install {install:.1f} s, layer {layer:.1f} s", flush=True)
        client.images.prune(filters={"dangling": True, "label": "gpuci.bench=install"})  # its own only
    pip, uv = statistics.median(times["pip"]), statistics.median(times["uv"])
    pip_install, uv_install = statistics.median(installs["pip"]), statistics.median(installs["uv"])
    result = {
        "project": "tabulate 0.9.0 (PyPI sdist) with pytest, numpy, pandas, wcwidth",
        "resolved": client.images.get(tag).labels["gpuci.resolved"].split(","),
        "layer_s": {k: [round(t, 2) for t in v] for k, v in times.items()},
        "layer_median_s": {"pip": round(pip, 2), "uv": round(uv, 2)},
        "layer_uv_over_pip": round(uv / pip, 3),
        "install_s": {k: [round(t, 2) for t in v] for k, v in installs.items()},
        "install_median_s": {"pip": round(pip_install, 2), "uv": round(uv_install, 2)},
        "install_uv_over_pip": round(uv_install / pip_install, 3),
        "storage_driver": client.info().get("Driver"),
        "session_cold_s": round(cold, 1),
        "session_warm_median_s": round(statistics.median(warm), 2),
        "uv": UV,
        "machine": f"{os.cpu_count()} cores",
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "resolved"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
