"""Secrets reach a step's container in a file, never in its configuration (`docker inspect`).

The variables passed by `--env` or [tool.gpuci] secrets, and any variable whose name or value says
it is a credential, are written (0600, in a private temporary folder outside the checkout) as
`export NAME='value'` lines; the folder is mounted read-only and the step's shell sources it
before its commands. The folder is removed when the run ends.
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from harness.owned import make_owned_dir, remove_stale

SECRETS_MOUNT = "/gpuci/secrets"
SECRETS_PREFIX = "gpuci-secrets-"
SOURCE_LINE = f". {SECRETS_MOUNT}/env"


def secrets_parent() -> Path:
    """Where runs' secrets folders are made: the host's temporary folder, outside every checkout."""
    return Path(tempfile.gettempdir())


def write_secrets(secret: Mapping[str, str]) -> Path:
    """A private folder holding the `env` file the step's shell sources."""
    parent = secrets_parent()
    remove_stale(parent, SECRETS_PREFIX)  # a SIGKILLed run's secrets do not stay on disk (reap and gc too)
    folder = make_owned_dir(parent, SECRETS_PREFIX)
    fd = os.open(folder / "env", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.writelines(f"export {name}={shlex.quote(value)}\n" for name, value in secret.items())
    return folder


def remove_secrets(folder: Path | None) -> None:
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
