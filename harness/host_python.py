"""Every Python subprocess gpuci starts on the host: isolated from the checkout it works on.

`python -m pip` run with a checkout as its working directory imports the checkout's `pip/`
before the real one, and `sitecustomize.py`/`usercustomize.py` on the path run at every start. So
each host Python here runs with `-I` (no working directory or script folder on `sys.path`, no
user site, no `PYTHON*` variables), in a working directory no project writes, and with the
`PYTHON*` variables taken out of its environment, for the Pythons it starts in turn (a build
backend pip runs) as much as for itself. Paths handed to it must be absolute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["NEUTRAL_CWD", "host_env", "python_command", "run_python", "start_python"]

# No checkout is `/`, and nothing is imported from a working directory under -I anyway.
NEUTRAL_CWD = "/"


def python_command(*args: str) -> list[str]:
    """`python -I ARGS` with gpuci's own interpreter."""
    return [sys.executable, "-I", *args]


def host_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (the process's environment) without any PYTHON* variable."""
    return {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("PYTHON")}


def run_python(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """subprocess.run of `python -I ARGS`, isolated (see the module)."""
    return subprocess.run(python_command(*args), cwd=NEUTRAL_CWD, env=host_env(), **kwargs)


def start_python(args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen of `python -I ARGS`, isolated (see the module)."""
    return subprocess.Popen(python_command(*args), cwd=NEUTRAL_CWD, env=host_env(), **kwargs)
