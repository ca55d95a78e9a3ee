"""A cold gpuci image against a cold uv venv, side by side, on a real library with numpy/scipy/pandas extras.

The project: networkx 3.6.1 from PyPI (its sdist, gathered here into a scratch folder, never
committed), with its `default` extra (numpy, scipy, matplotlib, pandas) and `test` extra (pytest,
pytest-cov, pytest-xdist). Alternating, `--runs` times each, on the same machine in the same minutes:

  (a) uv: `uv venv` and `uv pip install -e '.[default,test]'` with an empty uv cache (so every wheel
      is downloaded), uv 0.13.9 from gpuci's own pinned wheel;
  (f) the engine's floor: that venv handed to the engine as one layer over gpuci's base, the way gpuci
      loads its layers (harness/images/layer_load.py). No image of these packages, even one without
      bytecode, can be made in less than (a) + (f);
  (a') uv again with `--compile-bytecode`: bytecode, as an image holds it (uv's Docker guide compiles
      for images; gpuci's images run without writing bytecode, so theirs is compiled at build);
  (b) gpuci: `gpuci image ensure --platform cpu` with `[tool.gpuci] extras = ["default", "test"]`,
      an empty wheelhouse, an empty host cache (GPUCI_CACHE_DIR: uv's cache, the wheels by hash, the
      images' Pythons), no gpuci.lock, and no image of it on the engine: every layer above gpuci's
      Debian base counts (gpuci's own layer, the project's, and the metadata steps), the base itself
      (built once per machine by debootstrap) is excluded. The build's output is read line by line
      to time each phase and step (the profile); any step the engine's cache answered is listed
      (`cached_steps`);
  (c) gpuci, project-cold: as a machine that has built another project before (a small one, requiring
      `six`, built first and not timed): gpuci's layer, its host archive and gpuci's own wheels are there,
      the project's wheels, lock, uv cache and image are not. The engine's layer cache kept warm across
      projects that share a base (issue 34, item 8) is this case.

Writes bench/results/cold-image.json: every time per run, their medians, the ratios (goal ≤ 2 against
uv's plain venv), the load average around each run, the storage driver.

    python bench/cold_image_bench.py [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
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

from harness.images.airgap import BaseRecipe  # noqa: E402
from harness.images.installer import UV, fetch_uv, host_uv  # noqa: E402

PROJECT, VERSION = "networkx", "3.6.1"
EXTRAS = ("default", "test")


def gather(scratch: Path) -> Path:
    """networkx's sdist from PyPI as a git checkout, with `gpuci init`'s recipes and the extras set."""
    subprocess.run(
        # -I from /: `python -m pip` in a checkout would import the checkout's own pip/ first.
        [sys.executable, "-I", "-m", "pip", "download", "--no-binary", ":all:", "--no-deps", "-q", "-d", str(scratch),
         f"{PROJECT}=={VERSION}"], check=True, cwd="/",
    )  # fmt: skip
    with tarfile.open(scratch / f"{PROJECT}-{VERSION}.tar.gz") as tar:
        tar.extractall(scratch, filter="data")
    repo = scratch / f"{PROJECT}-{VERSION}"
    subprocess.run([sys.executable, "-m", "harness", "init", "--root", str(repo)], check=True, cwd=ROOT)
    text = (repo / "pyproject.toml").read_text()
    extras = ", ".join(f'"{e}"' for e in EXTRAS)
    (repo / "pyproject.toml").write_text(text.replace("[tool.gpuci]\n", f"[tool.gpuci]\nextras = [{extras}]\n", 1))
    ident = ["-c", "user.email=bench@gpuci", "-c", "user.name=bench"]
    for args in (["init", "-q"], ["add", "-A"], [*ident, "commit", "-qm", PROJECT]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    return repo


def uv_venv(uv: str, repo: Path, scratch: Path, compile_bytecode: bool = False) -> float:
    """(a): a venv with the project editable and its extras, uv's cache empty."""
    cache, venv = scratch / "uv-cache", scratch / "venv"
    shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    env = {**os.environ, "UV_CACHE_DIR": str(cache), "UV_PYTHON_DOWNLOADS": "never"}
    started = time.perf_counter()
    subprocess.run([uv, "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=env, cwd=repo)
    subprocess.run(
        [uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"),
         *(["--compile-bytecode"] if compile_bytecode else []), "-e", f".[{','.join(EXTRAS)}]"],
        check=True, env=env, cwd=repo,
    )  # fmt: skip
    return time.perf_counter() - started


def engine_floor(client: docker.DockerClient, scratch: Path, base: str) -> tuple[float, int]:
    """(f): the venv (a) made, as one layer over the base, loaded as gpuci loads its own; seconds, bytes."""
    from harness.images.layer_load import image_config, load
    from harness.images.layer_tar import Layer

    parent = client.images.get(base).id
    tag = f"gpuci-bench-floor:{os.getpid()}"
    started = time.perf_counter()
    layer = Layer(scratch, ["venv"], {})
    load(client, image_config(client, parent, {}, "bench"), layer, tag)
    seconds = time.perf_counter() - started
    client.images.remove(tag)
    return seconds, layer.size


WARMUP = "six==1.17.0"  # another project's one requirement, in none of networkx's extras


def warm_other_project(scratch: Path) -> set[str]:
    """(c)'s machine: a small other project built with the bench's host cache; the cache's wheels after it."""
    other = scratch / "other"
    shutil.rmtree(other, ignore_errors=True)
    other.mkdir()
    subprocess.run([sys.executable, "-m", "harness", "init", "--root", str(other)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip
    (other / "requirements-test.txt").write_text(f"{WARMUP}\n")
    text = (other / "pyproject.toml").read_text()
    (other / "pyproject.toml").write_text(
        text.replace("[tool.gpuci]\n", '[tool.gpuci]\nrequirements = ["requirements-test.txt"]\n', 1)
    )
    (other / ".gpuci" / "wheelhouse").mkdir(parents=True)
    for wheel in (scratch / "tools").glob("uv-*.whl"):
        shutil.copyfile(wheel, other / ".gpuci" / "wheelhouse" / wheel.name)
    env = {**os.environ, "GPUCI_CACHE_DIR": str(scratch / "gpuci-cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "harness", "image", "ensure", "--platform", "cpu", "--root", str(other)],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit("cold_image_bench: the other project's build failed:\n" + done.stdout[-3000:])
    other_tag = done.stdout.strip().splitlines()[-1].strip()
    docker.from_env().images.remove(other_tag)
    return set(os.listdir(scratch / "gpuci-cache" / "wheels"))


def gpuci_cold(client: docker.DockerClient, repo: Path, scratch: Path, machine: bool = True) -> tuple[float, dict]:
    """(b): gpuci's image from nothing but the base (`machine`), or (c) the host cache left as it is (the
    caller made it a project-cold one); the seconds and the build's profile."""
    for made in (repo / ".gpuci", repo / "gpuci.lock", *([scratch / "gpuci-cache"] if machine else [])):
        shutil.rmtree(made, ignore_errors=True) if made.is_dir() else made.unlink(missing_ok=True)
    (repo / ".gpuci" / "wheelhouse").mkdir(parents=True)  # uv's own wheel only: both sides have uv
    for wheel in (scratch / "tools").glob("uv-*.whl"):
        shutil.copyfile(wheel, repo / ".gpuci" / "wheelhouse" / wheel.name)
    env = {**os.environ, "GPUCI_CACHE_DIR": str(scratch / "gpuci-cache"), "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "image", "ensure", "--platform", "cpu", "--root", str(repo)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append((time.perf_counter() - started, line.rstrip()))
    seconds = time.perf_counter() - started
    if proc.wait() != 0:
        raise SystemExit("cold_image_bench: the build failed:\n" + "\n".join(t for _, t in lines[-40:]))
    tag = lines[-1][1].strip()
    if not any("built gpuci/" in text for _, text in lines):
        raise SystemExit(f"cold_image_bench: {tag} was on the engine already (remove it): nothing was built")
    return seconds, {"tag": tag, **profile(lines, seconds)}


# The build's own lines that time a part of it: (name, regular expression with the seconds).
TIMED = (
    ("gpucis_layer_install", r"installed gpuci's layer in ([0-9.]+) s"),
    ("gpucis_layer_write_and_load", r"wrote and loaded gpuci's layer .* in ([0-9.]+) s"),
    ("project_venv_copy", r"copied /opt/gpuci/venv out of \S+ in ([0-9.]+) s"),
    ("project_layer_install", r"installed the project's layer in ([0-9.]+) s"),
    ("project_layer_write_and_load", r"wrote and loaded the project's layer .* in ([0-9.]+) s"),
)


def profile(lines: list[tuple[float, str]], total: float) -> dict:
    """Each phase's seconds and each builder step's, from the build's own lines."""
    marks = {
        "backend_question": ("asking the build backend", "the build backend asks"),
        "host_resolve_all": ("resolving ", "wrote gpuci.lock"),  # the backend question included
        "gpucis_wheels_and_context": ("wrote gpuci.lock", "building gpuci's layer"),
        "gpucis_layer": ("building gpuci's layer", "wrote and loaded gpuci's layer"),
    }
    phases = {}
    for name, (first, last) in marks.items():
        begin = next((t for t, text in lines if first in text), None)
        end = next((t for t, text in lines if last in text and begin is not None and t >= begin), None)
        if begin is not None and end is not None:
            phases[name] = round(end - begin, 1)
    own = next((t for t, x in lines if "building gpuci's layer" in x or "is here already" in x), total)
    phases["before_the_build"] = round(own, 1)
    made = next((t for t, x in lines if "wrote and loaded gpuci's layer" in x or "is here already" in x), None)
    end = next((t for t, x in lines if "built gpuci/" in x), None)
    if made is not None and end is not None:
        phases["project_layer"] = round(end - made, 1)
    for name, pattern in TIMED:
        found = next((float(m.group(1)) for _, x in lines if (m := re.search(pattern, x))), None)
        if found is not None:
            phases[name] = found
    steps, cached = [], []
    starts = [(t, text) for t, text in lines if re.match(r"\s*Step \d+/\d+ : ", text)]
    done = next((t for t, text in lines if "Successfully built" in text), total)
    for (t, text), (t_next, _) in zip(starts, [*starts[1:], (done, "")][: len(starts)], strict=True):
        steps.append({"step": text.strip()[:90], "s": round(t_next - t, 1)})
        if any("Using cache" in x for tt, x in lines if t <= tt < t_next):
            cached.append(text.strip()[:60])
    installs = [float(m.group(1)) for _, x in lines if (m := re.search(r"gpuci: installed in ([0-9.]+) s", x))]
    compiles = [float(m.group(1)) for _, x in lines if (m := re.search(r"compiled the bytecode in ([0-9.]+) s", x))]
    trace = [f"{t:6.1f} {x.strip()[:160]}" for t, x in lines if x.startswith("gpuci: ") or "gpuci: " in x[:12]]
    return {"phases_s": phases, "steps": steps, "cached_steps": cached, "uv_install_in_image_s": installs,
            "bytecode_s": compiles, "trace": trace}  # fmt: skip


def remove_image(client: docker.DockerClient, tag: str) -> None:
    """The image a run built and its untagged parents (the engine keeps any another image uses)."""
    try:
        client.images.remove(tag, force=False, noprune=False)
    except docker.errors.APIError as exc:
        print(f"  could not remove {tag}: {exc}", flush=True)


OWN_TAG = re.compile(r"(?:building gpuci's layer|gpuci's layer) (gpuci/[a-z]+-recipe:[0-9a-f]+)")


def recipe_images(client: docker.DockerClient, built: list[dict]) -> set[str]:
    """The gpuci's layer images (`gpuci/<platform>-recipe:…`, and the `-steps` image under them) this bench's
    builds named, on the engine now: removed around each run, so that every machine-cold run is one. Only
    these: another checkout's builds on the same engine keep theirs."""
    named = {m.group(1) for run in built for line in run.get("trace", []) if (m := OWN_TAG.search(line))}
    named |= {f"{tag}-steps" for tag in named}
    # The plain list (docker-py's `images.list` inspects each image and fails when a neighbour removes one).
    return {tag for row in client.api.images() for tag in row.get("RepoTags") or () if tag in named}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "cold-image.json")
    args = parser.parse_args(argv)
    client = docker.from_env()
    base = BaseRecipe().tag
    client.images.get(base)  # built once per machine (`gpuci image bootstrap`): excluded from the figure
    runs: list[dict] = []
    made: list[dict] = []  # every gpuci build's profile: the recipe tags it named
    with tempfile.TemporaryDirectory(prefix="gpuci-cold-bench-") as tmp:
        scratch = Path(tmp)
        repo = gather(scratch)
        tools = scratch / "tools"
        if not fetch_uv(tools) or (uv := host_uv(tools)) is None:
            raise SystemExit(f"cold_image_bench: {UV} does not run here; the comparison needs it")
        for run in range(args.runs):
            load = os.getloadavg()[0]
            venv_s = uv_venv(uv, repo, scratch)
            print(f"  run {run + 1}: uv venv + install -e .[{','.join(EXTRAS)}], cold: {venv_s:.1f} s", flush=True)
            floor_s, floor_bytes = engine_floor(client, scratch, base)
            compiled_s = uv_venv(uv, repo, scratch, compile_bytecode=True)
            print(f"  run {run + 1}: the engine's load of that venv ({floor_bytes / 2**20:.0f} MB): {floor_s:.1f} s; "
                  f"uv's venv with --compile-bytecode: {compiled_s:.1f} s", flush=True)  # fmt: skip
            for tag in sorted(recipe_images(client, made)):  # gpuci's layer counts: none may be cached
                remove_image(client, tag)
            image_s, built = gpuci_cold(client, repo, scratch)
            made.append(built)
            if any("is here already" in line for line in built["trace"]):  # made before this bench: once more
                for tag in [built["tag"], *sorted(recipe_images(client, made))]:
                    remove_image(client, tag)
                image_s, built = gpuci_cold(client, repo, scratch)
            print(f"  run {run + 1}: gpuci cold image: {image_s:.1f} s ({built['phases_s']})", flush=True)
            remove_image(client, built["tag"])
            shutil.rmtree(scratch / "gpuci-cache", ignore_errors=True)
            for tag in sorted(recipe_images(client, made)):
                remove_image(client, tag)
            kept = warm_other_project(scratch)  # (c): another project built on this machine first
            shutil.rmtree(scratch / "gpuci-cache" / "uv-cache", ignore_errors=True)
            project_s, project_built = gpuci_cold(client, repo, scratch, machine=False)
            made.append(project_built)
            fresh = set(os.listdir(scratch / "gpuci-cache" / "wheels")) - kept
            print(f"  run {run + 1}: gpuci project-cold image: {project_s:.1f} s ({project_built['phases_s']}; "
                  f"{len(fresh)} wheels new to the cache)", flush=True)  # fmt: skip
            for tag in [project_built["tag"], *sorted(recipe_images(client, made))]:
                remove_image(client, tag)
            runs.append({"uv_venv_s": round(venv_s, 1), "uv_venv_compiled_s": round(compiled_s, 1),
                         "engine_load_of_that_venv_s": round(floor_s, 1), "that_venv_mb": round(floor_bytes / 2**20),
                         "gpuci_cold_image_s": round(image_s, 1), "gpuci_project_cold_image_s": round(project_s, 1),
                         "ratio": round(image_s / venv_s, 2), "load_before": round(load, 2),
                         "load_after": round(os.getloadavg()[0], 2), **built,
                         "project_cold": {"wheels_new_to_the_cache": len(fresh), **project_built}})  # fmt: skip

    def median(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 1)

    uv_median, gpuci_median = median("uv_venv_s"), median("gpuci_cold_image_s")
    compiled, floor, project = (
        median("uv_venv_compiled_s"),
        median("engine_load_of_that_venv_s"),
        median("gpuci_project_cold_image_s"),
    )
    info = client.info()
    result = {
        "project": f"{PROJECT} {VERSION} (PyPI sdist), extras {', '.join(EXTRAS)}",
        "uv_venv_median_s": uv_median,
        "gpuci_cold_image_median_s": gpuci_median,
        "ratio": round(gpuci_median / uv_median, 2),
        "goal_ratio": 2.0,
        "uv_venv_compiled_median_s": compiled,
        "engine_load_of_that_venv_median_s": floor,
        "floor_ratio": round((uv_median + floor) / uv_median, 2),
        "gpuci_project_cold_image_median_s": project,
        "project_cold_ratio": round(project / uv_median, 2),
        "project_cold_ratio_to_uv_compiled": round(project / compiled, 2),
        "floor_note": "no image of the same packages, even without bytecode, can be made in less than uv's venv "
        "plus the engine's own load of that venv as one layer: floor_ratio is that sum over uv's venv",
        "counted": "every layer above gpuci's Debian base: gpuci's own layer, the project's, metadata steps; "
        "the host's resolve, fetch and backend question",
        "excluded": f"the base {base} (debootstrap, once per machine); uv's own binary (both sides use it)",
        "runs": runs,
        "machine": {
            "cores": os.cpu_count(),
            "storage_driver": info.get("Driver"),
            "docker": info.get("ServerVersion"),
        },
        "uv": UV,
    }
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
