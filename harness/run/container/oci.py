"""An OCI runtime bundle written from the same RunSpec and device options gpuci gives Docker.

For hosts with a container runtime (runc) but no Docker Engine, such as a GPU test machine:
the root filesystem is an empty read-only directory with the host's /usr, /etc and /opt
bind-mounted read-only (the host's top-level symlinks such as /lib → usr/lib recreated), so
nothing needs pulling. Device nodes go into `linux.devices` with matching device-cgroup allow
rules. Never privileged: Docker's default capability set, no new privileges.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from harness.run.spec import RunSpec

# Docker's default capabilities: what an unprivileged container gets.
DEFAULT_CAPS = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
]
HOST_DIRS = ("/usr", "/etc", "/opt")
# The character devices every container has (null, zero, full, random, urandom, tty, ptmx, pts).
BASE_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    *({"allow": True, "type": "c", "major": 1, "minor": m, "access": "rwm"} for m in (3, 5, 7, 8, 9)),
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
]


def _device(node: str) -> dict[str, Any]:
    """`host:container:perms` → an OCI device entry, with the host node's numbers."""
    host, inside = node.split(":")[:2]
    info = os.stat(host)
    kind = "c" if stat.S_ISCHR(info.st_mode) else "b"
    return {
        "path": inside,
        "type": kind,
        "major": os.major(info.st_rdev),
        "minor": os.minor(info.st_rdev),
        "fileMode": 0o666,
        "uid": 0,
        "gid": 0,
    }


def _rootfs(bundle: Path) -> Path:
    """An empty root with the host's top-level symlinks (/bin → usr/bin, /lib → usr/lib, …)."""
    rootfs = bundle / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    for entry in Path("/").iterdir():
        target = rootfs / entry.name
        if entry.is_symlink() and not target.is_symlink():
            target.symlink_to(os.readlink(entry))
    return rootfs


def write_bundle(
    spec: RunSpec,
    bundle: Path,
    *,
    device_nodes: tuple[str, ...] = (),
    extra_mounts: tuple[tuple[str, str], ...] = (),
    pid_namespace: bool = True,
    cgroup_parent: str = "gpuci",
) -> Path:
    """config.json for `runc run --bundle BUNDLE`; returns its path. `pid_namespace=False` shares
    the host's PID namespace (as `docker run --pid=host`), where processes outlive the init."""
    _rootfs(bundle)
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755"]},
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"],
        },
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "nodev", "size=1g"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
    ]
    for host in HOST_DIRS:
        mounts.append({"destination": host, "type": "bind", "source": host, "options": ["rbind", "ro"]})
    for source, destination in extra_mounts:
        mounts.append({"destination": destination, "type": "bind", "source": source, "options": ["rbind", "ro"]})
    for mount in spec.mounts:
        options = ["rbind", "ro" if mount.read_only else "rw"]
        mounts.append({"destination": mount.target, "type": "bind", "source": mount.source, "options": options})
    devices = [_device(node) for node in device_nodes]
    namespaces = [{"type": t} for t in ("ipc", "uts", "mount")] + ([{"type": "pid"}] if pid_namespace else [])
    config = {
        "ociVersion": "1.0.2",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(spec.command),
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
            + [f"{k}={v}" for k, v in spec.env.items()],
            "cwd": spec.working_dir,
            "capabilities": {k: DEFAULT_CAPS for k in ("bounding", "effective", "permitted")},
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "gpuci",
        "mounts": mounts,
        "annotations": dict(spec.labels),
        "linux": {
            "namespaces": namespaces,
            "devices": devices,
            "resources": {
                "devices": BASE_DEVICE_RULES
                + [
                    {"allow": True, "type": d["type"], "major": d["major"], "minor": d["minor"], "access": "rwm"}
                    for d in devices
                ]
            },
            "cgroupsPath": f"/{cgroup_parent}/{spec.name}",
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    path = bundle / "config.json"
    path.write_text(json.dumps(config, indent=1))
    return path
