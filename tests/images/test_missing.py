"""pip's "no matching distribution" told apart by its cause, against the real package index."""

from __future__ import annotations

from harness.images.missing import advice, on_index

NONE = "ERROR: Could not find a version that satisfies the requirement {0} (from versions: none)"


def test_a_name_no_index_has_is_called_a_spelling_or_index_matter() -> None:
    assert on_index("no-such-package-gpuci-test") is False
    said = advice("no-such-package-gpuci-test==1.0", NONE.format("no-such-package-gpuci-test==1.0"), "3.11")
    assert "does not have; check its spelling" in said and "ships wheels" not in said


def test_a_package_the_index_has_with_no_wheel_for_the_python_is_told_to_pin_or_change_base() -> None:
    # termcolor has releases (wheels and sdists); pip found no wheel among them for this Python.
    assert on_index("termcolor") is True
    said = advice("termcolor", NONE.format("termcolor"), "3.11")
    assert said.startswith("has no wheel for the image's Python 3.11: pin a version that ships wheels")


def test_a_pin_that_no_listed_version_matches_names_the_newest_versions() -> None:
    output = NONE.format("termcolor==99").replace("none", "1.0, 2.4.0, 2.5.0")
    said = advice("termcolor==99", output, "3.11")
    assert "(the newest: 1.0, 2.4.0, 2.5.0)" in said and "correct or loosen its version" in said
