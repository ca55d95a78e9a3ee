"""nox sessions from a repository's test-area declarations: `<platform>_<area>` for each.

In a noxfile (what `gpuci init` writes):

    from pathlib import Path
    from harness.sessions import area_sessions
    area_sessions(Path(__file__).resolve().parent)

A session is nothing but `python -m harness run --platform P --area A [--step LABEL] --
PYTEST_ARGS`, called in-process (one Python start less), the same command a Buildkite step runs.
`nox -s cpu_sampler -- --step "sampler" -k topk` selects a step and passes `-k topk` to pytest.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys
from pathlib import Path

import nox

from harness.ci_provider import on_ci
from harness.declare.areas import session_name
from harness.declare.config import load_config
from harness.declare.pythons import builds_on_local_base
from harness.declare.sources import load_areas
from harness.errors import DeclarationError, UsageError, worst

__all__ = ["area_sessions", "end_session", "split_posargs"]


def split_posargs(posargs: list[str]) -> tuple[list[str], list[str]]:
    """Leading options of `run` (--step LABEL, --timeout S, --ca-bundle PEM, --no-container, …, each
    read off run's own parser) out of posargs; the rest go to pytest."""
    from harness.arguments import run_flags

    flags, switches = run_flags()
    harness, rest = [], list(posargs)
    while rest and rest[0].split("=", 1)[0] in flags:
        flag = rest.pop(0)
        harness.append(flag)
        if "=" not in flag and flag not in switches and rest:
            harness.append(rest.pop(0))
    return harness, rest


# What each of gpuci's exit codes means, for nox's failure line.
CODE_MEANINGS = {
    1: "tests failed or the run was cancelled",
    2: "bad declaration or usage",
    3: "teardown failed",
    75: "infrastructure failure",
}


def end_session(s: nox.Session, code: int, what: str) -> None:
    """A session's end: on CI the process exits with gpuci's code (one session a job; the pipeline
    retries 75 and never 1); elsewhere nox's own failure line, saying what the code means, so a
    run of several sessions goes on to the next."""
    if not code:
        return
    meaning = CODE_MEANINGS.get(code, "failed")
    if on_ci():  # any CI service: the process ends with gpuci's own code, so the CI can retry on 75
        print(f"gpuci: {what} exited {code}: {meaning}", file=sys.stderr)
        sys.stderr.flush()
        raise SystemExit(code)
    s.error(f"{what} exited {code}: {meaning}")


def _area_session(
    root: Path, platform: str, area: str, pythons: tuple[str | None, ...] = (None,), name: str = ""
) -> str:
    """A session that runs the area on `platform`, once per Python of `pythons` (None: the default)."""

    def session(s: nox.Session) -> None:
        from harness.cli import main

        # nox's logging shows every library's debug lines; the Docker SDK's HTTP calls are noise.
        for noisy in ("urllib3", "docker"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        harness, pytest_args = split_posargs(s.posargs)
        codes: list[int] = []
        for python in pythons:  # each in turn, whatever the one before it gave
            chosen = ["--python", python] if python and "--python" not in harness else []
            argv = ["run", "--platform", platform, "--area", area, "--root", str(root), *chosen, *harness]
            argv += ["--", *pytest_args]
            s.log("python -m harness " + shlex.join(argv))
            codes.append(main(argv))
            if codes[-1] and len(pythons) > 1:
                s.log(f"Python {python}: python -m harness run exited {codes[-1]}: {CODE_MEANINGS.get(codes[-1], '?')}")
        if len(pythons) > 1:
            s.log("Pythons: " + ", ".join(f"{p} exited {c}" for p, c in zip(pythons, codes, strict=True)))
        end_session(s, worst(codes), "python -m harness run")

    name = name or session_name(platform, area)
    on = f" on Python {', '.join(p for p in pythons if p)}" if any(pythons) else ""
    session.__doc__ = f"Run the {area} area on {platform}{on}."
    # No environment: the session runs gpuci in nox's own Python. `--force-venv-backend uv|virtualenv`
    # makes nox create one anyway; reused, it is made once rather than at every call (seconds each).
    nox.session(name=name, venv_backend="none", reuse_venv=True, tags=[platform, area])(session)
    return name


def area_sessions(root: Path, reserved: tuple[str, ...] = (), needs: str | None = None) -> list[str]:
    """Register a session per declared area and platform; the names registered.

    A bad declaration ends nox with exit 2 and the file and line; `reserved` names (the
    noxfile's own sessions) may not be taken by an area, as nox would silently keep one of two.
    `needs` (`gpuci-harness>=0.1.0`, what `gpuci init` writes) is checked against the gpuci installed.
    """
    if needs:
        _check_installed(needs)
    try:
        config = load_config(root, for_host=False)  # read once: the areas it declares and its Pythons
        areas = load_areas(root, config.declarations)
        pythons = config.python
    except (DeclarationError, UsageError) as exc:
        print(f"gpuci: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    taken: dict[str, str] = {}
    for area in areas:
        for platform in area.platforms:
            name = session_name(platform, area.name)
            if name in taken or name in reserved:
                print(
                    f"gpuci: error: {area.path}: session {name!r} is declared twice "
                    f"(also by {taken.get(name, 'noxfile.py')}); rename the area.",
                    file=sys.stderr,
                )
                raise SystemExit(2)
            taken[name] = str(area.path)
            if len(pythons) > 1 and builds_on_local_base(platform):
                # As nox parametrizes: `cpu_x-3.13` runs one version, `cpu_x` every one in turn.
                for python in pythons:
                    taken[_area_session(root, platform, area.name, (python,), f"{name}-{python}")] = str(area.path)
                _area_session(root, platform, area.name, pythons)
            else:
                _area_session(root, platform, area.name)
    if _asked_only_for(set(taken), sys.argv[1:]):
        # An agent's cancel can land while nox itself starts (its first 0.1 s): noted from here, it
        # stops the run in order with a report, as `python -m harness run` does from its first line.
        from harness.run.cancel import GATE

        GATE.install()
    return list(taken)


def _check_installed(needs: str) -> None:
    """Exit 2, saying what to do, when the installed gpuci is older than the noxfile needs."""
    import importlib.metadata

    from packaging.requirements import InvalidRequirement, Requirement

    try:
        wanted = Requirement(needs)
    except InvalidRequirement:
        print(f"gpuci: error: noxfile.py: needs={needs!r} is no requirement; write e.g. 'gpuci-harness>=0.1'.",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2) from None
    try:
        have = importlib.metadata.version(wanted.name)
    except importlib.metadata.PackageNotFoundError:
        return  # gpuci from a checkout on the path (its own noxfile, its tests): nothing to compare
    if not wanted.specifier.contains(have, prereleases=True):
        print(f"gpuci: error: noxfile.py needs {needs}, and the gpuci installed here is {have}; install a newer "
              "gpuci (its README: 'Use gpuci in your project') and run nox again.", file=sys.stderr)  # fmt: skip
        raise SystemExit(2)


def _asked_only_for(names: set[str], argv: list[str]) -> bool:
    """Whether this nox was asked to run area sessions only (`-s A B`, `--session A`, NOXSESSION);
    other sessions (the test suite) keep the default SIGTERM."""
    asked: list[str] = [s for s in os.environ.get("NOXSESSION", "").split(",") if s]
    taking = False
    for arg in argv:
        if arg == "--":
            break
        if arg in ("-s", "-e", "--session", "--sessions"):
            taking = True
        elif arg.startswith(("--session=", "--sessions=")):
            asked += arg.split("=", 1)[1].split(",")
        elif arg.startswith("-"):
            taking = False
        elif taking:
            asked.append(arg)
    return bool(asked) and all(a in names for a in asked)
