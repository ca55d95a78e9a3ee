"""Debian packages on top of a base, as an image of their own: the project's system layer.

The compiler toolchain a project with extensions needs (harness.images.toolchain) and the packages
`[tool.gpuci] system_packages` names are installed by apt in one image `gpuci/system:<hash>` built
FROM the platform's base; its tag hashes the base and the sorted package names, so every project
asking for the same set on the same base shares it (built once per engine, cached like the base),
and projects that need nothing keep building on the bare base. The platform's recipe then builds
FROM this layer. This is the one build step that reaches Debian's mirror (the base's own apt
sources): a package apt does not know is the user's to fix (exit 2, naming the setting), a mirror it
cannot reach is infrastructure (75).
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors

from harness.console import printable, say
from harness.errors import ImageBuildError, UsageError
from harness.gpu.locks import host_lock
from harness.images.build_auth import granted_credentials, granted_hosts

REPOSITORY = "gpuci/system"
MAX_OUTPUT = 2**20
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# A base whose own Python already has its headers (a vendor's conda Python) needs no python3-dev.
HAS_HEADERS = (
    'python3 -c "import os, sys, sysconfig; '
    "sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))\""
)
UNKNOWN = re.compile(r"E: (?:Unable to locate package |Package '?)(\S+?)'?(?: has no installation candidate|$)", re.M)
NETWORK = ("Temporary failure resolving", "Could not connect", "Failed to fetch", "Could not resolve",
           "Connection timed out", "No space left on device")  # fmt: skip


@dataclass(frozen=True)
class SystemLayer:
    base: str  # the image it builds on
    packages: tuple[str, ...]  # sorted
    why: str = ""  # for the log: what asked for them
    # Its build's Docker network mode (harness.images.recipe.build_network), and where the project set it
    # (None: the host's or the default): apt reaches the mirror through it. Not part of the tag.
    network: str | None = field(default=None, compare=False)
    network_origin: str | None = field(default=None, compare=False)

    @property
    def tag(self) -> str:
        digest = hashlib.sha256(f"{self.base}\n{' '.join(self.packages)}\n".encode()).hexdigest()
        return f"{REPOSITORY}:{digest[:16]}"

    def dockerfile(self) -> str:
        names = " ".join(self.packages)
        return (
            f"FROM {self.base}\n"
            f"RUN set -e; PKGS=' {names} '; \\\n"
            f"    if {HAS_HEADERS} 2>/dev/null; then PKGS=$(echo \"$PKGS\" | sed 's/ python3-dev / /'); fi; \\\n"
            '    export DEBIAN_FRONTEND=noninteractive; echo "gpuci: apt-get install$PKGS"; \\\n'
            "    apt-get update -qq; apt-get install -y -qq --no-install-recommends $PKGS >/dev/null; \\\n"
            "    apt-get clean; rm -rf /var/lib/apt/lists/*\n"
        )


def ensure_layer(client: docker.DockerClient, layer: SystemLayer, pyproject: Path) -> str:
    """The layer's image, built unless its tag exists (once per host: a lock); returns the tag."""
    with host_lock(f"build-{layer.tag}"):
        try:
            client.images.get(layer.tag)
            return layer.tag
        except docker.errors.ImageNotFound:
            pass
        say(f"building the system layer {layer.tag} on {layer.base}: {' '.join(layer.packages)} ({layer.why})")
        started, output = time.monotonic(), ""
        try:
            with granted_credentials(client, granted_hosts(pyproject.parent)):  # its base may be the project's
                stream = client.api.build(
                    fileobj=io.BytesIO(layer.dockerfile().encode()),
                    tag=layer.tag,
                    labels={"gpuci.system-layer": layer.tag, "gpuci.base": layer.base},
                    rm=True,
                    forcerm=True,
                    decode=True,
                    pull=False,
                    network_mode=layer.network or None,
                )
            shown = BuildLines()
            for chunk in stream:
                text = chunk.get("stream", "") + chunk.get("error", "")
                output = (output + text)[-MAX_OUTPUT:]
                show(shown.feed(text))
                if "error" in chunk:
                    show(shown.end())
                    _fail(layer, plain_lines(output), pyproject)
            show(shown.end())
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"building the system layer {layer.tag} failed: {exc.explanation or exc}") from None
        say(f"built the system layer {layer.tag} in {time.monotonic() - started:.1f} s")
    return layer.tag


# The engine wraps what a RUN step writes to stderr in red: its own framing, not the step's text.
_ENGINE_RED, _ENGINE_RESET = "\x1b[91m", "\x1b[0m"


class BuildLines:
    """The engine's build output as gpuci prints it: whole lines, the engine's colour framing taken off each
    message, a line the engine sent in two messages (a write it read in two parts, under load) joined
    again, and every other control character shown inert (the step's output is the project's)."""

    def __init__(self) -> None:
        self.partial = ""

    def feed(self, message: str) -> list[str]:
        if message.startswith(_ENGINE_RED) and message.endswith(_ENGINE_RESET):
            message = message[len(_ENGINE_RED) : -len(_ENGINE_RESET)]
        *lines, self.partial = (self.partial + message).split("\n")
        if len(self.partial) > MAX_LINE:  # a line with no end is printed in parts, never held unbounded
            lines.append(self.partial)
            self.partial = ""
        return [printable(line.rstrip()) for line in lines if line.strip()]

    def end(self) -> list[str]:
        rest, self.partial = self.partial, ""
        return [printable(rest.rstrip())] if rest.strip() else []


def show(lines: list[str]) -> None:
    """Build output lines on stderr, indented under gpuci's own."""
    for line in lines:
        sys.stderr.write(f"  {line}\n")  # the recipe is the project's
    sys.stderr.flush()


MAX_LINE = 64 * 2**10


def plain_lines(output: str) -> list[str]:
    """A build's output as lines: the engine sends stderr in pieces, colored, that join into lines."""
    return ANSI.sub("", output).splitlines()


def _fail(layer: SystemLayer, lines: list[str], pyproject: Path) -> None:
    text = "\n".join(lines)
    unknown = UNKNOWN.search(text)
    if unknown and not any(word in text for word in NETWORK):
        raise UsageError(
            f"{pyproject}: apt on {layer.base} knows no package {unknown.group(1)!r} (asked for: "
            f"{' '.join(layer.packages)}); fix its name in [tool.gpuci] system_packages (Debian's names, as "
            "`apt-cache search` gives them)."
        )
    last = next((line for line in reversed(lines) if line.strip()), "no output")
    if layer.network == "none" and layer.network_origin:  # the project cut the build off: its to fix
        raise UsageError(
            f"{layer.network_origin}: [tool.gpuci] network is 'none', which every build step runs with too, so apt "
            f"cannot reach Debian's mirror for the system layer ({' '.join(layer.packages)}); remove it and set "
            "`network: none` on the steps instead (a step's own network is not its image's)."
        )
    said = f" (it ran with the network {layer.network!r}, GPUCI_NETWORK)" if layer.network else ""
    raise ImageBuildError(
        f"building the system layer {layer.tag} ({' '.join(layer.packages)}) on {layer.base} failed: "
        f"{last.strip()[:300]}. apt reaches the mirror of the base's sources{said}; check the engine's network."
    )
