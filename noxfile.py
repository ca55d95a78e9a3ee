"""gpuci's sessions: `<platform>_<area>` for every declared test area, plus the project's own.

Needs nothing but nox: where gpuci's dependencies are missing, the first run makes one
environment for them (.nox/_gpuci) and nox re-runs itself there; later runs go straight in
(nox's own script mode would re-run pip on every call, a second or more each time). An area
session is nothing but
`python -m harness run --platform P --area A [--step LABEL] -- PYTEST_ARGS`, the same command
a Buildkite step runs. `nox -s cpu_sampler -- --step "sampler (cpu)" -k topk` selects a step.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).resolve().parent
DEPENDENCIES = [
    "nox>=2024.4.15",
    "docker>=7.0,<8",
    "PyYAML>=6.0,<7",
    "psutil>=5.9,<8",
    "nvidia-ml-py>=12.535",
]


def _ensure_dependencies() -> None:
    # find_spec looks without importing: Docker's SDK alone takes 0.1 s to import.
    if all(importlib.util.find_spec(name) for name in ("docker", "psutil", "yaml")):
        return
    if os.environ.get("GPUCI_NOX_REEXEC"):
        raise SystemExit("gpuci: error: .nox/_gpuci lacks gpuci's dependencies; delete it and run again.")
    env = ROOT / ".nox" / "_gpuci"
    python = env / "bin" / "python"
    stamp = env / "gpuci-dependencies.txt"
    wanted = "\n".join(DEPENDENCIES)
    if not python.exists() or not stamp.exists() or stamp.read_text() != wanted:
        print("gpuci: installing gpuci's dependencies into .nox/_gpuci (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-I", "-m", "venv", str(env)], check=True, cwd="/")
        subprocess.run([str(python), "-I", "-m", "pip", "install", "--quiet", *DEPENDENCIES], check=True, cwd="/")
        stamp.write_text(wanted)
    os.environ["GPUCI_NOX_REEXEC"] = "1"
    os.execv(str(python), [str(python), "-m", "nox", "-f", str(Path(__file__).resolve()), *sys.argv[1:]])


_ensure_dependencies()
sys.path.insert(0, str(ROOT))

from harness.sessions import area_sessions, end_session  # noqa: E402

# uv where it is installed, else the standard library's venv; `--force-venv-backend virtualenv|uv|venv`
# works as well: a session installs what it needs through nox (uv's venvs have no pip; gpuci names pip).
nox.options.default_venv_backend = "uv|venv"
nox.options.sessions = ["cpu_sampler"]


STATIC_SESSIONS = ("tests", "lint", "bench", "repro", "image", "corpus", "soak", "build")


@nox.session(venv_backend="none")
def image(session: nox.Session) -> None:
    """Images: `nox -s image -- publish --platform cuda` (also ensure, tag, save -o FILE, load FILE)."""
    from harness.cli import main

    if not session.posargs:
        session.error("give the image command: nox -s image -- publish --platform cpu")
    end_session(session, main(["image", *session.posargs, "--root", str(ROOT)]), "python -m harness image")


@nox.session(venv_backend="none")
def repro(session: nox.Session) -> None:
    """Reproduce a run from its report: `nox -s repro -- REPORT [--env NAME] [--shell]`."""
    from harness.cli import main

    if not session.posargs:
        session.error("give the report: nox -s repro -- path/or/url/of/report.json")
    end_session(session, main(["repro", "--root", str(ROOT), *session.posargs]), "python -m harness repro")


@nox.session
def build(session: nox.Session) -> None:
    """gpuci's wheel in dist/ (`pip install dist/gpuci_harness-*.whl` anywhere: gpuci is on no index yet)."""
    session.install("build>=1")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(ROOT / "dist"), str(ROOT))


@nox.session
def tests(session: nox.Session) -> None:
    """The harness's own test suite (needs a Docker Engine; builds and runs real containers)."""
    session.install("-e", ".[test]")
    workers = os.environ.get("GPUCI_TEST_WORKERS", "2")
    session.run("pytest", "-n", workers, "--durations=15", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Speed figures against their baselines: bench/results/{cpu,registry,install,first-command,cold-image}.json,
    plugin-overhead.json (gpuci's pytest plugin per test), and how far a reader travels from `run_command`
    to the container's start: run-trace.json (Docker)."""
    session.install("-e", ".")
    session.run("python", "bench/cpu_bench.py", *session.posargs)
    session.run("python", "bench/registry_bench.py")
    session.run("python", "bench/install_bench.py")  # pip and uv on a real dependency layer: install.json
    session.run("python", "bench/first_command_bench.py")  # nox -l and a warm run's overhead: first-command.json
    session.run("python", "bench/cold_image_bench.py")  # a cold image against a cold uv venv: cold-image.json
    session.run("python", "bench/run_trace.py")  # modules entered and come back to, up to the container: run-trace.json
    session.install("pytest>=8,<10")  # the plugin's bench runs pytest itself
    session.run("python", "bench/plugin_overhead.py")  # gpuci's pytest plugin per test: plugin-overhead.json


@nox.session
def soak(session: nox.Session) -> None:
    """Many runs with faults at random moments: bench/results/soak.json (`-- --runs 200 --seed 3`)."""
    session.install("-e", ".")
    session.run("python", "bench/soak.py", *session.posargs)


@nox.session
def corpus(session: nox.Session) -> None:
    """Real pipelines of public projects, gathered, loaded and linted: bench/results/corpus.json and
    bench/results/lint-precision.json (findings by kind, the sample judged in bench/corpus/judged.toml)
    and bench/results/lint-speed.json (lint's time on the largest trees, cold and warm).

    `nox -s corpus -- --mirror-root DIR` reads local git mirrors; without it, blobless clones from GitHub.
    """
    session.install("-e", ".")
    session.run("python", "bench/corpus/gather.py", *session.posargs)
    session.run("python", "bench/corpus/load.py")
    session.run("python", "bench/corpus/precision.py")  # lint findings by kind, judged: lint-precision.json
    session.run("python", "bench/corpus/speed.py")  # lint and lint --since on the largest trees: lint-speed.json


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the project, and gpuci's CI-coverage lint over its declarations."""
    session.install("-e", ".", "ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", "-m", "harness", "lint", *session.posargs)


area_sessions(ROOT, STATIC_SESSIONS)
