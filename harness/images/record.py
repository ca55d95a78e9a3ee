"""What a run learns of its image, typed: the request the run makes and the `ImageRecord` it gets back.

The run asks once (`harness.images.obtain.for_run`) and plans with the answer; its report holds
`ImageRecord.to_report()`, the keys report.json has always had for the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Docker SDK is imported only where used
    from harness.declare.config import ProjectConfig
    from harness.images.registry import Registry


@dataclass(frozen=True)
class ImageRequest:
    """The image a run asks for: its recipe's inputs, where to pull from, and a repro's pinned image."""

    root: Path
    platform: str
    base_image: str | None = None
    ca_bundle: Path | None = None
    python: str | None = None  # the Python the image runs, where the platform builds on gpuci's base
    # Images by digest: pulled from this registry before a build is considered (None: the one `config`
    # names, if any); `build` skips the pull.
    registry: Registry | None = None
    build: bool = False
    # A repro's exact image (by ID) and what the original report said of it.
    pinned_id: str | None = None
    pinned_report: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""  # labels the short-lived container that lists the image's packages
    # The settings the run's command resolved (workspace, install, requirements, the pyproject.toml it
    # read): the recipe is made from them, never from the files again. None: read them (no command).
    config: ProjectConfig | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ArchiveRef:
    """The saved image file an image was loaded from (`gpuci image load`)."""

    file: str
    sha256: str


@dataclass(frozen=True)
class ImageRecord:
    """The image a run uses and what its report says of it: content tag, image ID and the registry's
    digest (the same digest is the same bytes), how it was obtained, and its packages."""

    id: str
    tag: str | None = None
    built: bool = False
    pulled: bool = False
    repo_digest: str | None = None
    content_hash: str | None = None
    base_image: str | None = None
    resolved: tuple[str, ...] = ()  # the project's resolution, in the tag (gpuci.lock)
    pinned: bool = False  # a repro's: taken by ID, as the original run recorded it
    archive: ArchiveRef | None = None
    packages: dict[str, dict[str, str]] | None = None
    seconds: float = 0.0  # found, pulled or built in this long
    # A pinned image's original record, kept as it was (keys of other gpuci versions included).
    recorded: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def pinned_from(cls, image_id: str, recorded: dict[str, Any]) -> ImageRecord:
        return cls(image_id, pinned=True, recorded=dict(recorded))

    def described(self, archive: ArchiveRef | None, packages: dict[str, dict[str, str]] | None) -> ImageRecord:
        return replace(self, archive=archive, packages=packages)

    def to_report(self) -> dict[str, Any]:
        """report.json's `image`, with the keys it has always had."""
        if self.pinned:
            said: dict[str, Any] = {**self.recorded, "id": self.id, "pinned": True}
        else:
            said = {
                "tag": self.tag,
                "id": self.id,
                "built": self.built,
                "pulled": self.pulled,
                "repo_digest": self.repo_digest,
                "content_hash": self.content_hash,
                "base_image": self.base_image,
                "resolved": list(self.resolved),
            }
        if self.archive is not None:
            said["archive"] = {"file": self.archive.file, "sha256": self.archive.sha256}
        said["packages"] = self.packages
        return said
