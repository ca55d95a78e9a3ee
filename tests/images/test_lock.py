"""gpuci.lock: what the requirements resolved to, kept and hashed into the tag; read as untrusted input."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.images import engine
from harness.images.lock import LOCK_FILE, read_lock
from harness.images.recipe import recipe_for
from tests.conftest import ROOT

AREA = """\
platforms: [cpu]
steps:
  - label: which
    num_gpus: 0
    commands: ["python3 -c 'import six; print(\\"six is\\", six.__version__)'"]
"""


def project(root: Path) -> Path:
    shutil.copytree(ROOT / "containers", root / "containers")
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "six.yaml").write_text(AREA)
    (root / "pyproject.toml").write_text('[tool.gpuci]\nrequirements = ["requirements-test.txt"]\n')
    # Unpinned, as people write it; a comment of this test's own makes its tags its own: each run builds
    # (the build is what said "resolved" a second time), and removes what it built.
    (root / "requirements-test.txt").write_text(f"# {uuid.uuid4().hex}\nsix\n")
    return root


def test_the_resolution_is_locked_and_a_changed_one_is_a_new_image(
    run_harness, cpu_image, docker_client, tmp_path: Path
) -> None:
    root = project(tmp_path / "p")
    made: list[str] = []  # this test's tags (its marker makes them its own): removed at the end
    try:
        first = run_harness("run", "--platform", "cpu", "--area", "six", "--root", str(root), timeout=900)
        made.append(recipe_for(root, "cpu").tag)  # before any assertion: removed however the test ends
        assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
        assert f"wrote {LOCK_FILE}" in first.stderr and "six is 1.17.0" in first.stdout
        # Resolved once: the build that follows uses the pins just resolved (it said so a second time).
        assert first.stderr.count("resolved 1 package(s)") == 1 and "fetched gpuci.lock's" not in first.stderr
        lock = json.loads((root / LOCK_FILE).read_text())
        (entry,) = lock["entries"].values()
        assert "six==1.17.0" in entry["pins"] and entry["python"] == "3.11"
        report = json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())
        assert "six==1.17.0" in report["image"]["resolved"] and report["image"]["built"]
        # Unchanged inputs, same lock: the same tag, nothing resolved again.
        again = run_harness("run", "--platform", "cpu", "--area", "six", "--root", str(root), timeout=900)
        assert again.returncode == 0 and "resolving" not in again.stderr and f"wrote {LOCK_FILE}" not in again.stderr
        tag = report["image"]["tag"]
        assert json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())["image"]["tag"] == tag
        # The same written requirements, another resolution (as a newer or older release would give): a new image.
        entry["pins"] = [p if not p.startswith("six==") else "six==1.16.0" for p in entry["pins"]]
        (root / LOCK_FILE).write_text(json.dumps(lock))
        assert recipe_for(root, "cpu").tag != tag
        older = run_harness("run", "--platform", "cpu", "--area", "six", "--root", str(root), timeout=900)
        made.append(recipe_for(root, "cpu").tag)
        assert older.returncode == 0, older.stderr[-3000:]
        assert "six is 1.16.0" in older.stdout
        # A build from the lock's pins fetches them (not a resolution): said as such, once.
        assert older.stderr.count("fetched gpuci.lock's 1 package(s)") == 1, older.stderr[-3000:]
        assert "resolved 1 package" not in older.stderr
        # A changed requirement file is new inputs: resolved again, the lock rewritten.
        (root / "requirements-test.txt").write_text("six>=1.17\n")
        assert recipe_for(root, "cpu").pins == ()
    finally:
        for tag in made:
            engine.remove_image(docker_client, tag)


def test_a_lock_that_is_not_what_gpuci_writes_is_refused_with_its_name(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"version": 1, "entries": {"k": {"pins": ["six==1.17.0; rm -rf /"]}}}))
    with pytest.raises(UsageError, match="not a list of name==version pins"):
        read_lock(tmp_path)
    (tmp_path / LOCK_FILE).write_text("{not json")
    with pytest.raises(UsageError, match=f"{LOCK_FILE}: is not JSON"):
        read_lock(tmp_path)
    (tmp_path / LOCK_FILE).unlink()
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"version": 1, "entries": {}}))
    os.symlink(outside, tmp_path / LOCK_FILE)  # a pull request's link to a host file
    with pytest.raises(UsageError, match="regular file"):
        read_lock(tmp_path)
