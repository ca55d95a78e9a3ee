"""Reports people look at: a terminal table, an HTML page with pictures, Buildkite annotations."""

from __future__ import annotations

import html
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from harness.console import printable, say
from harness.reports.report import MalformedReport, RunReport
from harness.untrusted import Refused, parse_json, read_capped

REPORT_LIMIT = 32 * 2**20  # a report with every outcome of a very large suite is a few MiB

STYLE = {"passed": "success", "failed": "error", "timeout": "error", "teardown-failed": "warning"}


def resolve(source: Path, runs: Path) -> Path:
    """A report.json, a run folder, a folder of runs, or a run id (or the start of one) in `runs`."""
    if source.exists() or len(source.parts) != 1:
        return source
    matches = sorted(p for p in runs.glob(f"{source.name}*") if (p / "report.json").is_file())
    return matches[0] if len(matches) == 1 else source


def collect(sources: list[Path], runs: Path | None = None) -> list[dict[str, Any]]:
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
                RunReport.from_json(data)  # each field of the kind the tables read
            except MalformedReport as problem:
                say(f"warning: {path} {problem}; skipped")
                continue
            data["_path"] = str(path)
            reports.append(data)
    unique = {r["run_id"]: r for r in reports}  # `latest` and its target are the same run
    return sorted(unique.values(), key=lambda r: r.get("started_at") or 0)


def _stop(report: dict[str, Any]) -> str:
    stop = (report.get("budget") or {}).get("stop_seconds")
    return "-" if stop is None else f"{stop:.3f}"


def _margin(report: dict[str, Any]) -> str:
    margin = (report.get("budget") or {}).get("margin_seconds")
    return "-" if margin is None else f"{margin:+.3f}"


def _tests(report: dict[str, Any]) -> str:
    counts = report.get("counts") or {}
    return ", ".join(f"{n} {outcome}" for outcome, n in counts.items()) if counts else "-"


def table(reports: list[dict[str, Any]]) -> str:
    header = ("run", "session", "step", "outcome", "exit", "tests", "stop→VRAM s", "budget margin s", "total s")
    rows = [
        (r["run_id"], str(r.get("session", "")), str(r.get("step", "")), str(r.get("outcome", "?")),
         str(r.get("gpuci_exit_code", "?")), _tests(r), _stop(r) if r.get("vram") else "-",
         _margin(r) if r.get("vram") else "-", f"{(r.get('timings') or {}).get('total_s', 0):.2f}")
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


def slowest_tests(reports: list[dict[str, Any]]) -> list[tuple[float, str, str]]:
    found = [
        (float(rec.get("seconds") or 0), str(rec.get("phase")), str(rec.get("test")))
        for r in reports
        for rec in r.get("tests") or []
        if rec.get("phase") != "call"
    ]
    return sorted(found, reverse=True)


def write_html(reports: list[dict[str, Any]], out: Path, pictures: bool = True) -> Path:
    """One page: the table, each run's timeline (up to 20 runs), the trend across runs."""
    from harness.reports.timeline import can_draw, draw_timeline, draw_trend, has_trend

    out.parent.mkdir(parents=True, exist_ok=True)
    figures = []
    if pictures and reports and can_draw():  # without matplotlib: the page, with no pictures
        for report in reports[-20:]:
            svg, _ = draw_timeline(report, out.parent / "pictures" / f"timeline-{report['run_id']}")
            figures.append((f"run {report['run_id']}", svg))
        if has_trend(reports):
            svg, _ = draw_trend(reports, out.parent / "pictures" / "trend")
            figures.insert(0, ("shutdown times across runs", svg))
    body = [f"<h1>gpuci: {len(reports)} run(s)</h1>"]
    failures = [(r, t) for r in reports for t in r.get("results") or [] if t.get("outcome") in ("failed", "error")]
    hung = [(r, test) for r in reports for test in (r.get("hang") or {}).get("running") or []]
    if failures or hung:  # what needs looking at, first
        body.append(f"<h2>failed tests ({len(failures) + len(hung)})</h2><ul>")
        for report, test in failures:
            message = str(test.get("message") or "").splitlines()[0][:300] if test.get("message") else ""
            body.append(
                f"<li><b>{html.escape(str(test['test']))}</b> ({html.escape(str(report.get('session')))}): "
                f"<code>{html.escape(message)}</code></li>"
            )
        for _, test in hung:
            body.append(f"<li><b>{html.escape(str(test))}</b>: still running at the step's timeout</li>")
        body.append("</ul>")
    body += ["<pre>", html.escape(table(reports)), "</pre>"]
    for title, svg in figures:
        body += [f"<h2>{html.escape(title)}</h2>", f'<img src="{html.escape(os.path.relpath(svg, out.parent))}">']
    page = "<!doctype html><meta charset=utf-8><title>gpuci report</title>\n"
    page += "<style>body{font-family:sans-serif;margin:2em}img{max-width:100%}pre{font-size:12px}</style>\n"
    out.write_text(page + "\n".join(body) + "\n")
    return out


def on_buildkite(report: dict[str, Any], directory: Path) -> None:
    """Inside a Buildkite job: an annotation for the session, and the run's folder as artifacts."""
    agent = shutil.which("buildkite-agent")
    if os.environ.get("BUILDKITE") != "true":
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
    style = STYLE.get(str(report.get("outcome")), "warning")
    from harness.reports.annotate import annotate, block, inline

    session, step, outcome = (inline(str(report.get(k))) for k in ("session", "step", "outcome"))
    text = f"**{session}** · {step} · {outcome}\n\n{block(table([report]))}"
    if picture:
        text += f'\n<img src="artifact://{html.escape(os.path.relpath(picture))}" alt="timeline">\n'

    annotate(text, str(report.get("session", "gpuci")), style)
