"""A file's stamp: another size, time or file is another stamp; a link is its own, never its target's."""

from __future__ import annotations

import os
from pathlib import Path

from harness.ci.lint.stamps import stamp


def test_a_changed_file_has_another_stamp_and_a_link_is_not_followed(tmp_path: Path) -> None:
    path = tmp_path / "test_a.py"
    path.write_text("def test_a(): pass\n")
    first = stamp(str(path))
    assert first is not None and first == stamp(str(path))
    path.write_text("def test_a(): assert 0\n")
    assert stamp(str(path)) != first
    link = tmp_path / "test_b.py"
    link.symlink_to(path)
    assert stamp(str(link)) != stamp(str(path))
    assert stamp(str(link)).endswith(f":{os.lstat(link).st_ino}")  # type: ignore[union-attr]
    assert stamp(str(tmp_path / "gone.py")) is None
