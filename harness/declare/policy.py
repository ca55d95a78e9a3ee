"""The host's policy: what a project may ask of the agent that runs it.

A pull request controls its checkout, so `[tool.gpuci]` and the declarations are the project's
words, never the host's. Whatever reaches outside the container - a host variable, a registry and
its credentials, a host folder, a network, the size of the machine, a Buildkite queue - is granted
here, in a TOML file outside any checkout: `GPUCI_POLICY`, else /etc/gpuci/policy.toml, else the
defaults below (nothing of the host beyond the checkout). The project may ask only within it; a
request beyond it is exit 2, naming the setting, where the project set it and the rule that forbids
it (Buildkite's agents do the same with `no-command-eval` and secrets that belong to the agent).

    env = ["HF_TOKEN"]                          # host variables a project may name in `secrets`
    mounts = ["~/.cache/huggingface", "/models:rw"]   # host folders (and below) it may mount; ro unless :rw
    networks = ["bridge"]                       # network modes beyond `none` and the engine's default
    queues_allowed = ["gpu-h100"]               # queues it may ask for beyond those named in [queues]
    allow_dangerous_mounts = false              # let host mounts that give the host away run
    [limits]                                    # caps on what a step may ask (defaults: this machine)
    memory = "64g"
    cpus = 16
    pids = 32768
    grace = 60                                  # seconds between SIGTERM and SIGKILL a project may ask
    [queues]                                    # the host's queue per platform or device; "*" the rest
    cuda = "gpu"
    "*" = "default"
    [registries."registry.example.com:5000/ci"] # registries images may use, with their credentials
    username_env = "REG_USER"
    password_env = "REG_PASS"
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.units import docker_size

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

POLICY_ENV = "GPUCI_POLICY"
SYSTEM_POLICY = Path("/etc/gpuci/policy.toml")
MAX_POLICY_BYTES = 1 << 20
DEFAULT_QUEUE = "default"
DEFAULT_MAX_PIDS = 32768
# The janitor waits the grace before its SIGKILL once a supervisor is gone: a step that traps SIGTERM
# outlives its supervisor by that long, so the project's grace is bounded by the host.
DEFAULT_MAX_GRACE_S = 60.0
# The checkout's folders the host itself trusts: never writable from a container.
GUARDED = (".git", ".gpuci", ".nox")
# Network modes any project may ask for: none is less than the default, never more.
ALWAYS_ALLOWED_NETWORKS = ("none",)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
KEYS = {"env", "mounts", "networks", "queues_allowed", "allow_dangerous_mounts", "limits", "queues", "registries"}


@dataclass(frozen=True)
class RegistryGrant:
    address: str
    username_env: str | None = None
    password_env: str | None = None


@dataclass(frozen=True)
class MountGrant:
    folder: Path  # resolved
    writable: bool = False


@dataclass(frozen=True)
class HostPolicy:
    source: str = "none set, so gpuci's defaults"
    env: tuple[str, ...] = ()
    mounts: tuple[MountGrant, ...] = ()
    networks: tuple[str, ...] = ()
    queues: dict[str, str] = field(default_factory=dict)
    queues_allowed: tuple[str, ...] = ()
    registries: dict[str, RegistryGrant] = field(default_factory=dict)
    allow_dangerous_mounts: bool = False
    max_memory: int | None = None  # bytes; None: this machine's memory
    max_cpus: float | None = None  # None: this machine's CPUs
    max_pids: int = DEFAULT_MAX_PIDS
    max_grace_s: float = DEFAULT_MAX_GRACE_S

    def rule(self, key: str) -> str:
        return f"the host policy's {key} ({self.source})"

    def queue_for(self, device: str | None, platform: str) -> str:
        for name in (device, platform, "*"):
            if name and name in self.queues:
                return self.queues[name]
        return DEFAULT_QUEUE

    def allows_queue(self, queue: str) -> bool:
        """The host's own queues, those it allows besides, and `default` only where it is the host's fallback."""
        fallback = self.queues.get("*", DEFAULT_QUEUE)
        return queue == fallback or queue in self.queues.values() or queue in self.queues_allowed

    def memory_cap(self) -> int:
        if self.max_memory is not None:
            return self.max_memory
        import psutil

        return int(psutil.virtual_memory().total)

    def cpu_cap(self) -> float:
        return self.max_cpus if self.max_cpus is not None else float(os.cpu_count() or 1)

    def grant_for(self, source: Path) -> MountGrant | None:
        """The policy's folder that holds `source` (resolved), the narrowest first."""
        held = [g for g in self.mounts if source == g.folder or source.is_relative_to(g.folder)]
        return max(held, key=lambda g: len(g.folder.parts), default=None)


def policy_path(environ: dict[str, str] | os._Environ[str] = os.environ) -> Path | None:
    named = environ.get(POLICY_ENV)
    if named:
        return Path(named)
    return SYSTEM_POLICY if SYSTEM_POLICY.exists() else None


def load_policy(checkout: Path | None = None, environ: dict[str, str] | os._Environ[str] = os.environ) -> HostPolicy:
    """The agent's policy. A policy inside the checkout would be the pull request's own: refused."""
    path = policy_path(environ)
    if path is None:
        return HostPolicy()
    where = f"{POLICY_ENV}={path}" if environ.get(POLICY_ENV) else str(path)
    resolved = path.expanduser().resolve()
    if checkout is not None and resolved.is_relative_to(Path(checkout).resolve()):
        raise UsageError(
            f"the host policy {where} is inside the checkout, which the pull request controls; keep the policy "
            "outside any checkout (e.g. /etc/gpuci/policy.toml)."
        )
    try:
        with open(resolved, "rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        what = f"the host policy {where} cannot be read ({exc.strerror})"
        raise UsageError(f"{what}; fix the path or unset {POLICY_ENV}.") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise UsageError(f"the host policy {where} is over {MAX_POLICY_BYTES // 1024} KiB; it is a short TOML file.")
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"the host policy {where} is not valid TOML ({exc}); fix it.") from None
    return _parse(data, where)


def _parse(data: dict[str, Any], where: str) -> HostPolicy:
    def fail(key: str, wanted: str) -> UsageError:
        return UsageError(f"the host policy {where}: {key} must be {wanted}, not {data.get(key)!r}.")

    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise UsageError(f"the host policy {where} has unknown keys {unknown}; known: {sorted(KEYS)}.")

    def names(key: str, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(
            isinstance(v, str) and v and (pattern is None or pattern.match(v)) for v in value
        ):
            raise fail(key, "a list of names")
        return tuple(value)

    mounts = []
    for entry in names("mounts"):
        folder, _, mode = entry.partition(":")
        if mode not in ("", "ro", "rw") or not folder:
            raise fail("mounts", "a list of host folders, each PATH or PATH:rw")
        mounts.append(MountGrant(Path(folder).expanduser().resolve(), writable=mode == "rw"))
    limits = data.get("limits", {})
    if not isinstance(limits, dict) or set(limits) - {"memory", "cpus", "pids", "grace"}:
        raise fail("limits", "a table of memory, cpus, pids and grace")
    try:
        memory = docker_size(str(limits["memory"])) if "memory" in limits else None
    except UsageError:
        raise fail("limits", 'a table whose memory is a size ("64g")') from None
    for key in ("cpus", "pids", "grace"):
        value = limits.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf")
        ):
            raise fail("limits", f"a table whose {key} is a number greater than 0")
    queues = data.get("queues", {})
    if not isinstance(queues, dict) or not all(isinstance(v, str) and v for v in queues.values()):
        raise fail("queues", 'a table of queue names ([queues] cuda = "gpu")')
    registries = {}
    table = data.get("registries", {})
    if not isinstance(table, dict):
        raise fail("registries", "a table of registries")
    for address, grant in table.items():
        grant = grant or {}
        if not isinstance(grant, dict) or set(grant) - {"username_env", "password_env"}:
            raise fail("registries", "a table of registries, each with username_env and password_env or nothing")
        user, password = grant.get("username_env"), grant.get("password_env")
        if bool(user) != bool(password) or not all(_NAME.match(str(v)) for v in (user, password) if v):
            raise fail("registries", "a table of registries naming both username_env and password_env, or neither")
        registries[address.strip().rstrip("/")] = RegistryGrant(address, user, password)
    dangerous = data.get("allow_dangerous_mounts", False)
    if not isinstance(dangerous, bool):
        raise fail("allow_dangerous_mounts", "true or false")
    return HostPolicy(
        source=where,
        env=names("env", _NAME),
        mounts=tuple(mounts),
        networks=names("networks"),
        queues={str(k): str(v) for k, v in queues.items()},
        queues_allowed=names("queues_allowed"),
        registries=registries,
        allow_dangerous_mounts=dangerous,
        max_memory=memory,
        max_cpus=None if limits.get("cpus") is None else float(limits["cpus"]),
        max_pids=int(limits.get("pids", DEFAULT_MAX_PIDS)),
        max_grace_s=float(limits.get("grace", DEFAULT_MAX_GRACE_S)),
    )
