"""A requirement line judged as pip on the host will read it, not only as it looks.

The project's requirement files and `pyproject.toml` entries are the pull request's, and pip resolves
them on the host. pip does more with a requirements file than split it into lines: it decodes it by a
PEP 263 `coding:` comment among its first two lines (UTF-7 turns `+AC0-r` into `-r`), joins a line that
ends in a backslash with the next (`x @ fi\\` + `le:///etc`), and expands `${NAME}` from its own
environment, the agent's. Each would let a line gpuci checked become another one: a pip option, a
local or URL reference, or a host variable in pip's words. Such lines are refused, as are the options
and references themselves.
"""

from __future__ import annotations

import re

# Options (`-r /etc/shadow`, `--index-url`, `-e git+…`), local and URL references.
_OPTION_OR_REFERENCE = re.compile(
    r"^\s*-|@\s*(file|git\+|hg\+|svn\+|bzr\+|https?)|^\s*(\.{0,2}/|~|file:|https?:)", re.I
)
_CODING = re.compile(r"^\s*#.*coding[:=]")  # pip's PEP 263 test, on any line (the files are concatenated)
_VARIABLE = re.compile(r"\$\{")  # pip's ${NAME}, and anything that would grow into it


def refusal(line: str) -> str | None:
    """Why pip must not be handed `line` (one physical line), or None where it is a plain requirement
    or comment."""
    if _CODING.search(line):
        return "a `coding:` comment, which makes pip decode the file otherwise than gpuci reads it"
    if line.startswith("#") or not line.strip():
        return None
    if line.rstrip().endswith("\\"):
        return "a line continued on the next (it ends with a backslash), which pip joins before reading"
    if _VARIABLE.search(line):
        return "a `${…}`, which pip fills in from the host's environment"
    if _OPTION_OR_REFERENCE.search(line):
        return "a pip option or a local or URL reference"
    return None


def entry_refusal(entry: str) -> str | None:
    """`refusal` for one entry of a list in pyproject.toml: it must be one line, and a plain one."""
    if len(entry.splitlines()) > 1 or "\n" in entry:
        return "more than one line, which pip reads as separate lines"
    return refusal(entry)
