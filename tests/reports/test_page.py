"""The HTML page as a person sees it: rendered by headless Chromium (Debian's `chromium`), failures first."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from harness.reports.report import RunReport
from harness.reports.summary import write_html

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
RED = (198, 40, 40)  # the badge and border of a failed test (page.STYLE's #c62828)


def failing_run(tmp_path: Path, passed: int = 40) -> dict:
    run = tmp_path / "runs" / "20261203T000000Z-cpu_x-abcdef"
    run.mkdir(parents=True)
    (run / "output.log").write_text("the workload's log\n")
    results = [{"test": f"tests/test_ok.py::test_{i}", "outcome": "passed", "seconds": 0.01} for i in range(passed)]
    results += [
        {"test": "tests/test_math.py::test_bad", "outcome": "failed", "seconds": 0.02,
         "message": "AssertionError: one is not two",
         "stack": "    def test_bad():\n>       assert 1 == 2, 'one is not two'\n"
                  "E       AssertionError: one is not two"},
        {"test": "tests/test_io.py::test_hangs", "outcome": "timeout", "seconds": None,
         "message": "still running at the step's timeout; at File \"tests/test_io.py\", line 7 in test_hangs"},
    ]  # fmt: skip
    return {
        "run_id": run.name, "session": "cpu_x", "step": "suite", "outcome": "timeout", "gpuci_exit_code": 1,
        "timings": {"total_s": 31.0, "run_s": 30.0}, "lease": [], "vram": None,
        "budget": {"seconds": 2.1, "stop_seconds": 0.2, "margin_seconds": 1.9},
        "counts": {"failed": 1, "passed": passed, "timeout": 1}, "results": results,
        "hang": {"running": ["tests/test_io.py::test_hangs"],
                 "stacks": 'Thread 0x1 (most recent call first):\n  File "tests/test_io.py", line 7 in test_hangs'},
        "log": str(run / "output.log"), "junit": None,
    }  # fmt: skip


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install -y chromium; .ci/run installs it)")
def test_in_chromium_the_failures_come_first_with_their_stacks_and_the_log_a_click_away(tmp_path: Path) -> None:
    from PIL import Image

    page = write_html([RunReport.from_json(failing_run(tmp_path))], tmp_path / "html" / "index.html")
    dom = chromium("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    # In the rendered document: the heading that counts what is under it, the failed test, then the
    # hung one, each with its stack, all before the table of runs; no GPU figures for a run without GPUs.
    assert text.index("To look at: 2 test(s) (1 failed, 1 timeout)") < text.index("test_bad") < text.index("Runs (1)")
    assert text.index("test_bad") < text.index("test_hangs") < text.index("Runs (1)")
    assert "E       AssertionError: one is not two" in text and "line 7 in test_hangs" in text
    assert '<a href="../runs/20261203T000000Z-cpu_x-abcdef/output.log">log</a>' in text
    assert (page.parent / "../runs/20261203T000000Z-cpu_x-abcdef/output.log").resolve().is_file()
    assert "VRAM" not in text and "budget" not in text and "<img" not in text

    shot = tmp_path / "page.png"
    done = chromium(f"--screenshot={shot}", "--window-size=1200,900", page.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 900)
    # What a person sees without scrolling: the failed test's red marks in the first screen, the
    # 40 passing tests nowhere (they are counts in the table, not a list to scroll past).
    top = image.crop((0, 0, 1200, 450))
    pixels = top.get_flattened_data() if hasattr(top, "get_flattened_data") else top.getdata()
    red = sum(1 for pixel in pixels if all(abs(a - b) < 20 for a, b in zip(pixel, RED, strict=True)))
    assert red > 200, red
    assert "test_ok.py::test_0" not in text
