"""Typed errors and the exit codes every entry point maps them to (the README lists them)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    PASSED = 0
    TESTS_FAILED = 1
    USAGE = 2
    TEARDOWN_FAILED = 3
    INFRASTRUCTURE = 75


# From least to most severe: of several runs' codes, the one a whole job ends with.
SEVERITY = (
    ExitCode.PASSED,
    ExitCode.TESTS_FAILED,
    ExitCode.TEARDOWN_FAILED,
    ExitCode.USAGE,
    ExitCode.INFRASTRUCTURE,
)


def worst(codes: list[int]) -> int:
    """The most severe of `codes` (0 for none); a code gpuci does not know counts as infrastructure."""
    rank = {int(code): i for i, code in enumerate(SEVERITY)}
    return max(codes, key=lambda code: rank.get(int(code), len(SEVERITY)), default=0)


class GpuciError(Exception):
    """An error with a one-paragraph message meant for people, and an exit code."""

    exit_code: ExitCode = ExitCode.INFRASTRUCTURE


class UsageError(GpuciError):
    exit_code = ExitCode.USAGE


MAX_MESSAGE = 600


class DeclarationError(UsageError):
    """A test-area declaration is malformed; the message names file and line."""

    def __init__(self, path: object, line: int | None, message: str) -> None:
        where = f"{path}:{line}" if line else f"{path}"
        if len(message) > MAX_MESSAGE:  # a value quoted from a hostile file stays a line, not megabytes
            message = f"{message[:MAX_MESSAGE]}… ({len(message) - MAX_MESSAGE} characters cut)"
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class InfrastructureError(GpuciError):
    """Docker down, image build failed, GPU busy: the pipeline retries these."""

    exit_code = ExitCode.INFRASTRUCTURE


class DockerUnavailable(InfrastructureError):
    pass


class ImageBuildError(InfrastructureError):
    pass


def gpuci_cause(exc: BaseException) -> GpuciError | None:
    """A gpuci error (a cancel, say) that a library wrapped in its own exception on the way up."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, GpuciError):
            return current
        stack += [e for e in (current.__cause__, current.__context__) if e is not None]
        stack += [a for a in current.args if isinstance(a, BaseException)]
    return None
