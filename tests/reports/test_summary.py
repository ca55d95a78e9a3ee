"""Reports people look at: the table, the HTML page with pictures, the Buildkite annotation."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from harness.reports.report import RunReport
from harness.reports.summary import collect, table, write_html

REPORT = {
    "run_id": "20261101T000000Z-rocm_engine-aaaaaa",
    "session": "rocm_engine",
    "step": "engine",
    "outcome": "passed",
    "gpuci_exit_code": 0,
    "started_at": 1.0,
    "timings": {
        "image_ensure_s": 0.01,
        "start_s": 0.3,
        "run_s": 40.0,
        "exited_s": 1.2,
        "remove_s": 0.02,
        "vram_back_s": 2.9,
        "total_s": 44.4,
    },
    "budget": {"seconds": 4.0, "stop_seconds": 4.1, "margin_seconds": -0.1},
    "lease": ["0"],
    "vram": {"wait_seconds": 2.9, "polls": 3, "holders": []},
    "tests": [
        {"test": "tests/engine/test_dp.py::test_four_servers", "phase": "shutdown-many", "seconds": 5.5, "budget": 4.0},
        {"test": "tests/engine/test_dp.py::test_one", "phase": "shutdown", "seconds": 0.8, "budget": 4.0},
        {"test": "tests/engine/test_dp.py::test_one", "phase": "call", "seconds": 12.0},
    ],
}


def write_runs(tmp_path: Path, count: int) -> Path:
    for i in range(count):
        report = json.loads(json.dumps(REPORT))
        report["run_id"] = f"2026110{i}T000000Z-rocm_engine-{i:06d}"
        report["started_at"] = float(i)
        report["tests"][0]["seconds"] = 3.0 + i  # creeping up, night after night
        (tmp_path / "runs" / report["run_id"]).mkdir(parents=True)
        (tmp_path / "runs" / report["run_id"] / "report.json").write_text(json.dumps(report))
    return tmp_path / "runs"


def test_the_table_lists_runs_and_the_slowest_tests_first(tmp_path: Path) -> None:
    reports = collect([write_runs(tmp_path, 3)])
    text = table(reports)
    assert [line.split()[0] for line in text.splitlines()[1:4]] == [r.run_id for r in reports]
    slow = text.split("slowest tests")[1].splitlines()[1]
    assert "5.000s" in slow and "shutdown-many" in slow and "test_four_servers" in slow
    assert "call" not in text.split("slowest tests")[1]


def test_the_html_page_has_each_timeline_and_the_trend(tmp_path: Path) -> None:
    reports = collect([write_runs(tmp_path, 3)])
    page = write_html(reports, tmp_path / "html" / "index.html")
    text = page.read_text()
    pictures = sorted((tmp_path / "html" / "pictures").iterdir())
    assert len(pictures) == 8  # 3 timelines and the trend, each as SVG and PNG
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pictures if p.suffix == ".png")
    assert text.count("<img") == 4 and "pictures/trend.svg" in text
    svg = (tmp_path / "html" / "pictures" / f"timeline-{reports[-1].run_id}.svg").read_text()
    assert "over budget" in svg  # the slow teardown is labelled on the picture


def test_report_cli_and_buildkite_annotation(make_project, run_harness, tmp_path: Path, sim_gpus) -> None:
    """In a Buildkite job: an annotation per session and the run folder uploaded (agent stand-in)."""
    agent_dir = tmp_path / "bin"
    agent_dir.mkdir()
    calls = tmp_path / "agent-calls.txt"
    (agent_dir / "buildkite-agent").write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat > /dev/null\n')
    (agent_dir / "buildkite-agent").chmod(0o755)
    root = make_project("platforms: [cpu]\nsteps:\n  - label: ok\n    commands: ['true']\n", name="bk")
    env = {"BUILDKITE": "true", "PATH": f"{agent_dir}:{os.environ['PATH']}", "GPUCI_SIM_GPUS": str(sim_gpus)}
    done = run_harness("run", "--platform", "cpu", "--area", "bk", "--root", str(root), "--no-container", **env)
    assert done.returncode == 0, done.stderr
    lines = calls.read_text().splitlines()
    assert any(line.startswith("annotate --context cpu_bk --style success") for line in lines)
    assert any(line.startswith("artifact upload") for line in lines)
    report = run_harness("report", str(root / ".gpuci" / "runs"), "--html", str(tmp_path / "r" / "index.html"))
    assert report.returncode == 0 and "cpu_bk" in report.stdout and (tmp_path / "r" / "index.html").exists()
    no_agent = run_harness(
        "run",
        "--platform",
        "cpu",
        "--area",
        "bk",
        "--root",
        str(root),
        "--no-container",
        BUILDKITE="true",
        PATH="/usr/bin:/bin",
        GPUCI_SIM_GPUS=str(sim_gpus),
    )
    assert no_agent.stderr.count("buildkite-agent is not on PATH") == 1


def test_a_cpu_run_has_no_gpu_figures_and_failures_come_first_with_stacks_and_links(
    tmp_path: Path, monkeypatch
) -> None:
    from harness.reports import summary, timeline

    run = tmp_path / "runs" / "20261130T000000Z-cpu_x-abcdef"
    report = {
        "run_id": "20261130T000000Z-cpu_x-abcdef",
        "session": "cpu_x",
        "step": "s",
        "outcome": "timeout",
        "gpuci_exit_code": 1,
        "timings": {"total_s": 1.0, "run_s": 0.9},
        "budget": {"seconds": 2.1, "stop_seconds": 0.01, "margin_seconds": 2.09},  # measured, but no GPUs
        "lease": [],
        "vram": None,
        "counts": {"failed": 1, "passed": 3, "timeout": 1},
        "results": [
            {
                "test": "t.py::test_bad",
                "outcome": "failed",
                "message": "boom <here>",
                "stack": "def test_bad():\n>       assert 0, 'boom <here>'\nE       AssertionError",
            },
            {"test": "t.py::test_slow", "outcome": "timeout", "message": "still running at the step's timeout"},
        ],
        "hang": {"running": ["t.py::test_slow"], "stacks": 'File "t.py", line 9 in test_slow'},
        "log": str(run / "output.log"),
        "junit": str(run / "junit.xml"),
    }
    report = RunReport.from_json(report)
    text = summary.table([report])
    assert "stop→VRAM" not in text and "budget margin" not in text and "1 failed, 3 passed, 1 timeout" in text
    monkeypatch.setattr(timeline, "can_draw", lambda: True)  # pictures could be drawn: none for a run without GPUs
    page = summary.write_html([report], tmp_path / "html" / "index.html").read_text()
    assert "<img" not in page and "VRAM" not in page and "budget" not in page
    assert page.index("To look at: 2 test(s) (1 failed, 1 timeout)") < page.index("Runs (1)")  # failures first
    assert page.index("t.py::test_bad") < page.index("t.py::test_slow")  # failed, then hung
    assert "boom &lt;here&gt;" in page and "AssertionError" in page  # message and stack, escaped
    assert "line 9 in test_slow" in page  # the hang's stacks
    assert '<a href="../runs/20261130T000000Z-cpu_x-abcdef/output.log">log</a>' in page
    assert "1 failed, 3 passed, 1 timeout" in page  # the heading's numbers are the table's


def test_report_takes_a_run_id(tmp_path: Path) -> None:
    from harness.reports import summary

    runs = tmp_path / ".gpuci" / "runs"
    (runs / "20261130T000000Z-cpu_x-abcdef").mkdir(parents=True)
    (runs / "20261130T000000Z-cpu_x-abcdef" / "report.json").write_text('{"run_id": "20261130T000000Z-cpu_x-abcdef"}')
    assert summary.resolve(Path("20261130T000000Z-cpu_x"), runs) == runs / "20261130T000000Z-cpu_x-abcdef"
    assert summary.resolve(Path("nothing-like-it"), runs) == Path("nothing-like-it")


def test_a_label_reaches_the_annotation_as_text_not_markdown_or_html(tmp_path: Path, monkeypatch) -> None:
    from harness.reports.summary import on_buildkite

    agent_dir = tmp_path / "bin"
    agent_dir.mkdir()
    body = tmp_path / "body.md"
    (agent_dir / "buildkite-agent").write_text(f'#!/bin/sh\n[ "$1" = annotate ] && cat > {body}\nexit 0\n')
    (agent_dir / "buildkite-agent").chmod(0o755)
    monkeypatch.setenv("BUILDKITE", "true")
    monkeypatch.setenv("PATH", f"{agent_dir}:{os.environ['PATH']}")
    label = "**big** [click](https://evil.example) <img src=x onerror=alert(1)>\n```\n</pre><script>x()</script>\x1b[2J"
    report = {"run_id": "r1", "session": "cpu_x", "step": label, "outcome": "passed", "gpuci_exit_code": 0}
    (tmp_path / "run").mkdir()
    on_buildkite(RunReport.from_json(report), tmp_path / "run")
    text = body.read_text()
    assert "<script>" not in text and "<img src=x" not in text and "</pre><" not in text
    assert "\x1b" not in text
    header, rest = text.split("\n", 1)
    assert header.startswith("**cpu\\_x** · ") and "\\*\\*big\\*\\*" in header  # markdown shown as text
    assert "**big**" not in header and "[click](" not in header and "\\n\\`\\`\\`" in header  # one line
    # The table is one <pre> whose end nothing in it forges: inside it, markdown is never rendered.
    assert rest.count("<pre>") == 1 and rest.count("</pre>") == 1 and "&lt;/pre&gt;&lt;script&gt;" in rest


def test_the_table_shows_control_characters_and_never_acts_on_them() -> None:
    from harness.reports.summary import table

    hostile = "s\x1b]52;c;ZXZpbA==\x07\x1b[2J\rgpuci: passed\n"
    report = {"run_id": "r1", "session": "cpu_x", "step": hostile, "outcome": "passed", "gpuci_exit_code": 0,
              "tests": [{"test": "t::" + hostile, "phase": "teardown", "seconds": 2.0}]}  # fmt: skip
    text = table([RunReport.from_json(report)])
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    assert not [line for line in text.splitlines() if line.startswith("gpuci: passed")]
    assert "\\x1b]52;c;ZXZpbA==" in text


def test_the_page_links_to_each_report_from_wherever_it_is_written(tmp_path: Path, monkeypatch) -> None:
    # `gpuci report RUN_ID --html /elsewhere/page.html` in the project: the run is found as
    # `.gpuci/runs/…`, relative to the working folder, and the page's link must still reach it.
    monkeypatch.chdir(tmp_path)
    write_runs(tmp_path / ".gpuci", 1)
    reports = collect([Path(".gpuci") / "runs"])
    page = write_html(reports, tmp_path / "elsewhere" / "page.html", pictures=False)
    hrefs = [h for h in re.findall(r'href="([^"]+)"', page.read_text()) if h.endswith("report.json")]
    assert hrefs and all((page.parent / h).resolve().is_file() for h in hrefs), hrefs
