"""The project's asks held against the host's policy: a request beyond it is exit 2 naming the
setting, where the project set it, and the rule that forbids it.

Only what the project set is checked: a flag or the agent's environment is the host's own word.
Mounts are checked where they are made (harness.declare.mounts), once their sources are resolved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from harness.declare.policy import ALWAYS_ALLOWED_NETWORKS, HostPolicy
from harness.errors import UsageError
from harness.units import docker_size

if TYPE_CHECKING:
    from harness.declare.areas import Area, Step


def refuse(where: str, what: str, policy: HostPolicy, rule: str, fix: str) -> UsageError:
    return UsageError(f"{where}: {what}, which {policy.rule(rule)} does not allow; {fix}")


def check_config(config: Any, policy: HostPolicy) -> None:  # a ProjectConfig (config imports this module)
    """Every [tool.gpuci] key that reaches past the container, against the policy."""

    def at(key: str) -> str:
        return config.origins[key]

    from harness.declare.settings import SETTINGS

    for key in (s.key for s in SETTINGS if s.owner == "host"):
        if config.set_by_project(key):
            raise UsageError(
                f"{at(key)}: [tool.gpuci] {key} is the host's to set, never the project's (a pull request could "
                f"name any host variable or host folder through it); remove it and ask the agent's owner to put it "
                f"in the host policy ({policy.source})."
            )
    if config.set_by_project("secrets"):
        for name in config.secrets:
            if name not in policy.env:
                raise refuse(
                    at("secrets"), f"[tool.gpuci] secrets names the host variable {name}", policy, "env",
                    f"ask the agent's owner to add {name!r} to the policy's env, or remove it from secrets.",
                )  # fmt: skip
    if config.set_by_project("registry") and config.registry and config.registry not in policy.registries:
        raise refuse(
            at("registry"), f"[tool.gpuci] registry is {config.registry!r}", policy, "registries",
            "remove it, or ask the agent's owner to add that registry (with its credentials) to the policy.",
        )  # fmt: skip
    if config.set_by_project("mounts"):
        for entry in config.mounts:
            if entry.split(":")[2:] and "dangerous" in entry.split(":")[2:]:
                raise UsageError(
                    f"{at('mounts')}: [tool.gpuci] mounts entry {entry!r} marks itself ':dangerous'; only the host "
                    f"policy ({policy.source}) can let such a mount run. Remove the mark and mount a narrower folder."
                )
    limits = {k: getattr(config, k) for k in ("memory", "cpus", "pids_limit", "network") if config.set_by_project(k)}
    check_limits(policy, lambda key: f"{at(key)}: [tool.gpuci] {key}", **limits)
    if config.set_by_project("grace") and config.grace > policy.max_grace_s:
        raise refuse(
            at("grace"), f"[tool.gpuci] grace asks for {config.grace:g} s between SIGTERM and SIGKILL", policy,
            "limits.grace", f"ask for at most {policy.max_grace_s:g} (a stop that waits longer holds the host).",
        )  # fmt: skip
    if config.set_by_project("queues"):
        for name, queue in config.queues.items():
            check_queue(policy, f"{at('queues')}: [tool.gpuci.queues] {name}", queue)


def check_limits(
    policy: HostPolicy,
    where,  # type: ignore[no-untyped-def]  # key -> "file:line: the setting"
    memory: str | None = None,
    cpus: float | None = None,
    pids_limit: int | None = None,
    network: str | None = None,
) -> None:
    if memory is not None and docker_size(str(memory)) == 0:
        raise refuse(
            where("memory"), "asks for memory 0, which Docker takes for no limit at all", policy, "limits.memory",
            f"ask for a size, at most {policy.memory_cap() // 2**20}m.",
        )  # fmt: skip
    if memory is not None and docker_size(str(memory)) > policy.memory_cap():
        raise refuse(
            where("memory"), f"asks for {memory} of memory", policy, "limits.memory",
            f"ask for at most {policy.memory_cap() // 2**20}m.",
        )  # fmt: skip
    if cpus is not None and cpus > policy.cpu_cap():
        raise refuse(
            where("cpus"), f"asks for {cpus:g} CPUs", policy, "limits.cpus", f"ask for at most {policy.cpu_cap():g}."
        )
    if pids_limit is not None and pids_limit > policy.max_pids:
        raise refuse(
            where("pids_limit"), f"asks for {pids_limit} processes", policy, "limits.pids",
            f"ask for at most {policy.max_pids}.",
        )  # fmt: skip
    if network is not None and network not in (*ALWAYS_ALLOWED_NETWORKS, *policy.networks):
        raise refuse(
            where("network"), f"asks for the network {network!r}", policy, "networks",
            "leave network unset (the host's default) or use 'none'.",
        )  # fmt: skip


def check_queue(policy: HostPolicy, where: str, queue: str) -> None:
    if not policy.allows_queue(queue):
        raise refuse(
            where, f"asks for the Buildkite queue {queue!r}", policy, "queues",
            "remove it (the host's queue for the platform is used) or ask the agent's owner to allow it.",
        )  # fmt: skip


def check_step(policy: HostPolicy, area: Area, step: Step) -> None:
    """A declared step's own limits, network and agent queue."""
    check_limits(
        policy,
        lambda key: f"{area.path}:{step.line}: step {step.label!r} {key}",
        memory=step.memory,
        cpus=step.cpus,
        pids_limit=step.pids_limit,
        network=step.network,
    )
    queue = step.agent_tags.get("queue") if isinstance(step.agent_tags, dict) else None
    if queue is not None:
        check_queue(policy, f"{area.path}:{step.line}: step {step.label!r} agent_tags", str(queue))


def check_areas(policy: HostPolicy, areas: list[Area]) -> None:
    for area in areas:
        for step in area.steps:
            for platform in step.platforms:
                check_step(policy, area, step.on(platform))
