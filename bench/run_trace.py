"""How far a reader travels following one run from `run_command` to its container's start.

Runs a real `gpuci run --platform cpu --area sampler` in this checkout (image, lease, plan: all real)
under `sys.setprofile`, and stops it where the container would start (`ContainerWorkload.start`
raises before anything is made on the engine, so the run ends as a failed one and cleans up).
Every call between gpuci's modules is recorded and measured in two ways:

- followed: the path a reader takes through the run stage (harness.run.*). A call out of it (into
  images, gpu, declare, reports) enters that module but is not followed inside; the small shared
  modules (errors, console, units, redact, untrusted, git, owned, state, host_python) are not counted.
- everything: every gpuci module any call reaches, at any depth.

Imports (a module's top level) and the methods dataclasses generate are not followed: no reader
opens a file for them. For each: the modules entered; `came back`: calls into a module entered before and left since (a
file a reader closed and opens again); `climbed back`: calls into a module that is still below on
the stack (a callee calling up into its caller's module, against the flow).

Usage: python bench/run_trace.py [--out bench/results/run-trace.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = {"errors", "console", "units", "redact", "untrusted", "git", "owned", "state", "host_python"}


class ContainerStarting(BaseException):
    """Raised where the container would start: the trace ends there."""


@dataclass
class Path_:
    """One way of following the run: the modules it enters and how often it goes back."""

    follow_only_run_stage: bool
    stack: list[str] = field(default_factory=list)
    entered: list[str] = field(default_factory=list)
    left: set[str] = field(default_factory=set)
    came_back: Counter[str] = field(default_factory=Counter)
    climbed_back: Counter[str] = field(default_factory=Counter)
    depth_skipped: int = 0  # frames below a module not followed

    def counted(self, module: str) -> bool:
        return not (self.follow_only_run_stage and module.split(".")[1] in SHARED)

    def call(self, module: str) -> None:
        if self.depth_skipped:
            self.depth_skipped += 1
            return
        top = self.stack[-1] if self.stack else None
        if module != top and self.counted(module):
            if module in self.stack:
                self.climbed_back[module] += 1
            elif module in self.left:
                self.came_back[module] += 1
            if module not in self.entered:
                self.entered.append(module)
        self.stack.append(module)
        if self.follow_only_run_stage and not module.startswith("harness.run"):
            self.depth_skipped = 1  # entered, not followed inside

    def ret(self) -> None:
        if self.depth_skipped > 1:
            self.depth_skipped -= 1
            return
        self.depth_skipped = 0
        if self.stack:
            gone = self.stack.pop()
            if gone not in self.stack:
                self.left.add(gone)

    def figures(self) -> dict[str, Any]:
        return {
            "modules_entered": len(self.entered),
            "came_back": sum(self.came_back.values()),
            "climbed_back": sum(self.climbed_back.values()),
            "entered": self.entered,
            "came_back_to": dict(self.came_back),
            "climbed_back_to": dict(self.climbed_back),
        }


def trace(argv: list[str]) -> tuple[dict[str, Any], int | str]:
    from harness import cli
    from harness.run.container import docker

    followed, everything = Path_(True), Path_(False)
    started = False
    unread = 0  # depth inside code nobody follows: a module's import, a dataclass's generated method

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal started, unread
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("harness.") or event not in ("call", "return"):
            return
        if not started:
            if event != "call" or frame.f_code.co_name != "run_command" or module != "harness.run.commands":
                return
            started = True
        if event == "call":
            code = frame.f_code
            if unread or code.co_name == "<module>" or code.co_filename.startswith("<"):
                unread += 1
                return
            followed.call(module)
            everything.call(module)
        elif unread:
            unread -= 1
        else:
            followed.ret()
            everything.ret()

    def stop_here(self: Any) -> None:
        sys.setprofile(None)  # the trace ends here, not in the clean-up of the stopped run
        raise ContainerStarting

    docker.ContainerWorkload.start = stop_here  # type: ignore[method-assign]
    began = time.monotonic()
    sys.setprofile(profile)
    try:
        outcome: int | str = cli.main(argv)
    except ContainerStarting:
        outcome = "stopped at the container's start"
    finally:
        sys.setprofile(None)
    reached = "stopped at the container's start" if outcome == "stopped at the container's start" else outcome
    figures = {
        "followed (run stage; other stages entered, not followed; shared modules not counted)": followed.figures(),
        "everything (every gpuci module, any depth)": everything.figures(),
        "seconds": round(time.monotonic() - began, 3),
    }
    return figures, reached


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "run-trace.json")
    args = parser.parse_args()
    argv = ["run", "--platform", "cpu", "--area", "sampler", "--root", str(ROOT), "--quiet"]
    figures, reached = trace(argv)
    result = {
        "what": "modules a reader enters following `gpuci " + " ".join(argv[:5]) + "` from run_command to the "
        "container's start (bench/run_trace.py: sys.setprofile over a real run, stopped at ContainerWorkload.start)",
        "acceptance (issue 32)": "at most 12 modules entered and at most 6 times back",
        "reached": reached,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **figures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in figures.items():
        if isinstance(value, dict):
            print(f"{name}: {value['modules_entered']} modules, came back {value['came_back']}, "
                  f"climbed back {value['climbed_back']}")  # fmt: skip
    return 0 if reached == "stopped at the container's start" else 1


if __name__ == "__main__":
    sys.exit(main())
