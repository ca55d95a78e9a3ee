"""The lint's store of what each file says: read back, keyed by the file's text, never trusted blind."""

from __future__ import annotations

import json
from pathlib import Path

from harness.ci.lint.cache import Analysis, AnalysisCache, code_version

AREA = """\
group: models
platforms: [cpu]
steps:
- label: models
  commands:
  - pytest -v tests/test_models.py
"""
MODULE = "import os\nimport pytest\n\n\ndef test_a():\n    pass\n"


def checkout(root: Path) -> Path:
    (root / ".buildkite" / "test_areas").mkdir(parents=True)
    (root / ".buildkite" / "test_areas" / "models.yaml").write_text(AREA)
    (root / "tests").mkdir()
    (root / "tests" / "test_models.py").write_text(MODULE)
    return root


def store_of(folder: Path) -> Path:
    (store,) = folder.glob("lint-*.json")
    return store


def test_a_second_run_reads_the_store_and_a_changed_file_is_a_new_key(tmp_path: Path, run_harness) -> None:
    root, cache = checkout(tmp_path / "project"), tmp_path / "cache"
    first = run_harness("lint", "--root", str(root), "--format", "json", GPUCI_CACHE_DIR=str(cache))
    assert first.returncode == 0 and json.loads(first.stdout) == [], first.stderr
    store = store_of(cache)
    assert store.name == f"lint-{code_version()}.json"  # another version of the lint's rules: another store
    entries = json.loads(store.read_text())
    (gates_key,) = [k for k in entries if k.startswith("python-gates:")]
    # An answer planted for the module's exact text is what the next run uses: the store is read...
    entries[gates_key] = ["PLANTED_GATE"]
    store.write_text(json.dumps(entries))
    planted = run_harness("lint", "--root", str(root), "--format", "json", GPUCI_CACHE_DIR=str(cache))
    assert [f["variable"] for f in json.loads(planted.stdout)] == ["PLANTED_GATE"]
    # ...by the text's hash only: one changed byte and the module is judged afresh.
    (root / "tests" / "test_models.py").write_text(MODULE + "# edited\n")
    edited = run_harness("lint", "--root", str(root), "--format", "json", GPUCI_CACHE_DIR=str(cache))
    assert json.loads(edited.stdout) == []
    (root / "tests" / "test_models.py").write_text(MODULE)
    fresh = run_harness("lint", "--root", str(root), "--format", "json", "--no-cache", GPUCI_CACHE_DIR=str(cache))
    assert json.loads(fresh.stdout) == []  # --no-cache reads nothing stored


def test_a_corrupt_store_is_computed_again_and_rewritten(tmp_path: Path, run_harness) -> None:
    root, cache = checkout(tmp_path / "project"), tmp_path / "cache"
    cache.mkdir()
    (cache / f"lint-{code_version()}.json").write_text("{not json")
    (cache / "lint-0123456789abcdef.json").write_text("{}")  # an older version's store
    done = run_harness("lint", "--root", str(root), "--format", "json", GPUCI_CACHE_DIR=str(cache))
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert [p.name for p in cache.glob("lint-*.json")] == [f"lint-{code_version()}.json"]
    assert any(k.startswith("python-gates:") for k in json.loads(store_of(cache).read_text()))


def test_an_entry_that_no_longer_decodes_is_computed_again(tmp_path: Path) -> None:
    def decode(data: dict[str, int]) -> dict[str, int]:
        return {"chars": int(data["chars"])}

    counted = Analysis("count", lambda text: {"chars": len(text)}, decode=decode)
    store = tmp_path / "lint-x.json"
    first = AnalysisCache(store)
    assert first.get(counted, "abc") == {"chars": 3} and first.misses == 1
    first.save()
    key = next(iter(json.loads(store.read_text())))
    store.write_text(json.dumps({key: "not a mapping"}))
    second = AnalysisCache(store)
    assert second.get(counted, "abc") == {"chars": 3} and (second.hits, second.misses) == (0, 1)
    second.save()
    third = AnalysisCache(store)
    assert third.get(counted, "abc") == {"chars": 3} and (third.hits, third.misses) == (1, 0)


def test_a_store_that_cannot_be_written_is_no_error(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("")
    cache = AnalysisCache(blocked / "lint-x.json")  # its folder is a file
    assert cache.get(Analysis("n", len), "abcd") == 4
    cache.save()
