"""A gpuci error wrapped by a library on its way up is still found (a cancel inside the Docker SDK)."""

from __future__ import annotations

from harness.errors import UsageError, gpuci_cause
from harness.run.cancel import Cancelled


def test_a_wrapped_cancel_is_found_through_causes_and_arguments() -> None:
    try:
        try:
            raise Cancelled("SIGTERM")
        except Cancelled as inner:
            raise ConnectionError("aborted", inner) from None
    except ConnectionError as outer:
        found = gpuci_cause(RuntimeError(outer))
    assert isinstance(found, Cancelled) and found.signal_name == "SIGTERM"


def test_an_error_with_no_gpuci_cause_gives_none() -> None:
    assert gpuci_cause(ValueError("x")) is None
    assert isinstance(gpuci_cause(UsageError("y")), UsageError)
