"""Reports people look at: a terminal table, an HTML page with pictures, Buildkite annotations."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

from harness.ci_provider import detect
from harness.console import printable, say
from harness.reports.page import has_gpus
from harness.reports.records import TestResult
from harness.reports.report import MalformedReport, RunReport
from harness.reports.results import NEEDS_LOOK
from harness.untrusted import Refused, parse_json, read_capped

REPORT_LIMIT = 32 * 2**20  # a report with every outcome of a very large suite is a few MiB

STYLE = {"passed": "success", "failed": "error", "timeout": "error", "teardown-failed": "warning"}


def resolve(source: Path, runs: Path) -> Path:
    """A report.json, a run folder, a folder of runs, or a run id (or the start of one) in `runs`."""
    if source.exists() or len(source.parts) != 1:
        return source
    matches = sorted(p for p in runs.glob(f"{source.name}*") if (p / "report.json").is_file())
    return matches[0] if len(matches) == 1 else source


def collect(sources: list[Path], runs: Path | None = None) -> list[RunReport]:
    """Reports from report.json files, run folders, or folders of runs (e.g. a nightly's artifacts)."""
    reports = []
    for source in (resolve(s, runs) if runs else s for s in sources):
        paths = [source] if source.is_file() else sorted(source.rglob("report.json"))
        for path in paths:
            try:  # a checkout can hold any file there: bounded, regular, not too deep
                data = parse_json(read_capped(path, REPORT_LIMIT))
            except (OSError, ValueError) as exc:
                if isinstance(exc, Refused):
                    say(f"warning: {exc}; skipped")
                continue
            if not isinstance(data, dict) or "run_id" not in data:
                continue  # some other JSON file of that name
            try:
                report = RunReport.from_json(data)  # each field of the kind the tables read
            except MalformedReport as problem:
                say(f"warning: {path} {problem}; skipped")
                continue
            reports.append(replace(report, path=str(path)))
    unique = {r.run_id: r for r in reports}  # `latest` and its target are the same run
    return sorted(unique.values(), key=lambda r: _started(r.started_at))


def _started(started_at: float | str | None) -> float:
    return started_at if isinstance(started_at, (int, float)) else 0.0


def _stop(report: RunReport) -> str:
    stop = report.budget.stop_seconds if report.budget else None
    return "-" if stop is None else f"{stop:.3f}"


def _margin(report: RunReport) -> str:
    margin = report.budget.margin_seconds if report.budget else None
    return "-" if margin is None else f"{margin:+.3f}"


def _tests(report: RunReport) -> str:
    counts = report.counts or {}
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) if counts else "-"


def table(reports: list[RunReport]) -> str:
    header = ("run", "session", "step", "outcome", "exit", "tests", "stop→VRAM s", "budget margin s", "total s")
    rows = [
        (r.run_id, r.session or "", r.step or "", r.outcome or "?",
         str("?" if r.gpuci_exit_code is None else r.gpuci_exit_code), _tests(r), _stop(r) if has_gpus(r) else "-",
         _margin(r) if has_gpus(r) else "-", f"{r.timing('total_s'):.2f}")
        for r in reports
    ]  # fmt: skip
    # Columns with nothing in any row (the GPU columns of cpu runs) are left out, not shown as dashes.
    keep = [i for i in range(len(header)) if i < 5 or any(row[i] != "-" for row in rows)]
    header = tuple(header[i] for i in keep)
    rows = [tuple(row[i] for i in keep) for row in rows]
    slow = slowest_tests(reports)
    rows = [tuple(printable(str(x)) for x in row) for row in rows]  # labels, ids: shown, never acted on
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=False)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False)) for row in [header, *rows]]
    if slow:
        lines += ["", "slowest tests (teardown, VRAM waits, startup):"]
        lines += [f"  {s:8.3f}s  {printable(phase):17} {printable(test)}" for s, phase, test in slow[:15]]
    return "\n".join(lines) + "\n"


def to_look_at(reports: list[RunReport]) -> list[tuple[RunReport, TestResult]]:
    """(report, result) of each failed, erroring and hung test, in that order: what a person reads first.
    A hang in a report written before hung tests were results (only `hang.running`) counts too."""
    found = []
    for outcome in NEEDS_LOOK:
        for report in reports:
            results = report.results or []
            found += [(report, r) for r in results if r.outcome == outcome]
            if outcome == "timeout" and report.hang is not None:
                listed = {r.test for r in results}
                for test in report.hang.running:
                    if test not in listed:
                        found.append((report, TestResult(test, "timeout", message="still running")))
    return found


def look_lines(reports: list[RunReport], limit: int = 50) -> list[str]:
    """The failed and hung tests with the first line of their messages, for the terminal."""
    found = to_look_at(reports)
    lines = [f"{len(found)} test(s) to look at (failed, errors, hung):"] if found else []
    for report, result in found[:limit]:
        message = (result.message or "").strip().splitlines()
        first = f" — {message[0][:200]}" if message else ""
        lines.append(f"  {result.outcome}: {result.test} [{report.run_id}]{first}")
    if len(found) > limit:
        lines.append(f"  … and {len(found) - limit} more (each run's report.json, `results`)")
    return lines


def slowest_tests(reports: list[RunReport]) -> list[tuple[float, str, str]]:
    found = [(rec.seconds, rec.phase, rec.test) for r in reports for rec in r.tests or [] if rec.phase != "call"]
    return sorted(found, reverse=True)


def write_html(reports: list[RunReport], out: Path, pictures: bool = True) -> Path:
    """One page (harness/reports/page.py): the tests to look at first, the runs, and for runs that had
    GPUs their timelines (up to 20) and the trend across runs."""
    from harness.reports.page import has_gpus, render
    from harness.reports.timeline import can_draw, draw_timeline, draw_trend, has_trend

    out.parent.mkdir(parents=True, exist_ok=True)
    figures = []
    with_gpus = [r for r in reports if has_gpus(r)]
    if pictures and with_gpus and can_draw():  # without matplotlib: the page, with no pictures
        for report in with_gpus[-20:]:
            svg, _ = draw_timeline(report, out.parent / "pictures" / f"timeline-{report.run_id}")
            figures.append((f"run {report.run_id}", os.path.relpath(svg, out.parent)))
        if has_trend(with_gpus):
            svg, _ = draw_trend(with_gpus, out.parent / "pictures" / "trend")
            figures.insert(0, ("shutdown times across runs", os.path.relpath(svg, out.parent)))
    out.write_text(render(reports, to_look_at(reports), slowest_tests(reports), figures, out.parent.resolve()))
    return out


def on_buildkite(report: RunReport, directory: Path) -> None:
    """Inside a Buildkite job: an annotation for the session, and the run's folder as artifacts."""
    agent = shutil.which("buildkite-agent")
    if not detect().in_job():
        return
    if agent is None:
        say("BUILDKITE is set but buildkite-agent is not on PATH: no annotation, no artifact upload")
        return
    picture = None
    try:
        from harness.reports.timeline import draw_timeline

        picture = draw_timeline(report, directory / "timeline")[1]
    except Exception as exc:  # a missing plotting library must not fail the run
        say(f"no timeline picture: {exc}")
    subprocess.run([agent, "artifact", "upload", f"{directory}/**/*"], capture_output=True)
    style = STYLE.get(str(report.outcome), "warning")
    from harness.reports.annotate import annotate, block, inline

    session, step, outcome = (inline(str(value)) for value in (report.session, report.step, report.outcome))
    looks = "".join("\n" + line for line in look_lines([report], limit=20))
    text = f"**{session}** · {step} · {outcome}\n\n{block(table([report]) + looks)}"
    if picture:
        text += f'\n<img src="artifact://{html.escape(os.path.relpath(picture))}" alt="timeline">\n'

    annotate(text, report.session or "gpuci", style)
