"""The HTML page of `gpuci report`, as a person reads it: what to look at first, then the runs.

Failed, erroring and hung tests come first, each with its message, its stack (pytest's report of
the failure; the stacks faulthandler dumped for a hang) and links to its run's log and JUnit file.
Each heading counts what is listed under it, from the same counts as the runs' table. Figures of
GPUs (VRAM, the stop against its budget, the pictures of both) appear only for runs that had GPUs.
"""

from __future__ import annotations

import html
import os
from collections import Counter
from pathlib import Path
from typing import Any

from harness.reports.records import TestResult
from harness.reports.report import RunReport
from harness.reports.results import NEEDS_LOOK

STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#212121}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em}
.look{border-left:4px solid #c62828;padding:.2em 1em;margin:1em 0;background:#fff5f5}
.look.timeout{border-color:#ef6c00;background:#fff8e1}
.badge{display:inline-block;padding:0 .5em;border-radius:3px;color:#fff;background:#c62828;font-size:.85em}
.timeout .badge{background:#ef6c00}
.look h3{font-size:1em;margin:.4em 0;word-break:break-all}
.msg{font-family:monospace;white-space:pre-wrap}
pre{font-size:12px;background:#f5f5f5;padding:.6em;overflow-x:auto;max-height:28em}
table{border-collapse:collapse;font-size:.9em}
td,th{border-bottom:1px solid #e0e0e0;padding:.3em .7em;text-align:left}
span.passed{color:#2e7d32}span.failed,span.timeout,span.error,span.infrastructure{color:#c62828}
img{max-width:100%}
"""


def has_gpus(report: RunReport) -> bool:
    """Whether the run held GPUs (real or simulated): only then are VRAM and budget figures its own."""
    return bool(report.lease) and bool(report.vram)


def totals(reports: list[RunReport]) -> Counter[str]:
    found: Counter[str] = Counter()
    for report in reports:
        found.update({str(k): int(v) for k, v in (report.counts or {}).items()})
    return found


def _said(counts: dict[str, int] | Counter[str]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()) if n)


def _link(target: Any, page_dir: Path, text: str) -> str:
    if not target:
        return ""
    # Relative paths (a run id or `.gpuci/runs/…` given to `gpuci report`) are the working folder's,
    # not the page's: a page written elsewhere (`--html /tmp/x.html`) would link to nothing.
    href = os.path.relpath(os.path.abspath(str(target)), os.path.abspath(page_dir))
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def _look_item(report: RunReport, result: TestResult, page_dir: Path) -> str:
    outcome = result.outcome
    message = result.message or ""
    stack = result.stack or ""
    if outcome == "timeout" and not stack and report.hang is not None:
        stack = report.hang.stacks or ""
    links = " · ".join(x for x in (_link(report.log, page_dir, "log"), _link(report.junit, page_dir, "JUnit")) if x)
    parts = [
        f'<div class="look {html.escape(outcome)}">',
        f'<h3><span class="badge">{html.escape(outcome)}</span> {html.escape(result.test)}</h3>',
        f"<p>run {html.escape(report.run_id)} · {html.escape(str(report.session))} · "
        f"step {html.escape(str(report.step))}{' · ' + links if links else ''}</p>",
    ]
    if message:
        parts.append(f'<p class="msg">{html.escape(message)}</p>')
    if stack:
        parts.append(f"<details open><summary>stack</summary><pre>{html.escape(stack)}</pre></details>")
    parts.append("</div>")
    return "\n".join(parts)


def _runs_table(reports: list[RunReport], page_dir: Path) -> str:
    gpus = any(has_gpus(r) for r in reports)
    header = ["run", "session", "step", "outcome", "exit", "tests"]
    header += ["stop→VRAM s", "budget margin s"] if gpus else []
    header += ["total s", "files"]
    rows = []
    for r in reports:
        outcome = r.outcome or "?"
        cells = [
            html.escape(r.run_id),
            html.escape(r.session or ""),
            html.escape(r.step or ""),
            f'<span class="{html.escape(outcome)}">{html.escape(outcome)}</span>',
            html.escape(str("?" if r.gpuci_exit_code is None else r.gpuci_exit_code)),
            html.escape(_said(r.counts or {}) or "-"),
        ]
        if gpus:
            stop, margin = (r.budget.stop_seconds, r.budget.margin_seconds) if r.budget else (None, None)
            cells += [
                f"{stop:.3f}" if has_gpus(r) and stop is not None else "-",
                f"{margin:+.3f}" if has_gpus(r) and margin is not None else "-",
            ]
        links = [_link(r.log, page_dir, "log"), _link(r.junit, page_dir, "JUnit")]
        links.append(_link(r.pytest_junit, page_dir, "pytest's JUnit"))
        links.append(_link(r.path, page_dir, "report.json"))
        cells += [f"{r.timing('total_s'):.2f}", " · ".join(x for x in links if x)]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>"
    return f"<table>\n{head}\n" + "\n".join(rows) + "\n</table>"


def render(
    reports: list[RunReport],
    look: list[tuple[RunReport, TestResult]],
    slow: list[tuple[float, str, str]],
    figures: list[tuple[str, str]],
    page_dir: Path,
) -> str:
    """The page's HTML; `look` is summary.to_look_at's list, `figures` (title, relative image path)."""
    counted = totals(reports)
    body = [f"<h1>gpuci: {len(reports)} run(s){': ' + _said(counted) if counted else ''}</h1>"]
    if look:
        kinds = Counter(result.outcome for _, result in look)
        body.append(f'<h2 id="look">To look at: {len(look)} test(s) ({_said(kinds)})</h2>')
        order = {outcome: i for i, outcome in enumerate(NEEDS_LOOK)}
        for report, result in sorted(look, key=lambda x: order.get(x[1].outcome, 99)):
            body.append(_look_item(report, result, page_dir))
    body += [f'<h2 id="runs">Runs ({len(reports)})</h2>', _runs_table(reports, page_dir)]
    if slow:
        body.append("<h2>Slowest teardowns, VRAM waits and startups</h2><pre>")
        body += [html.escape(f"{s:8.3f}s  {phase:17} {test}") for s, phase, test in slow[:15]]
        body.append("</pre>")
    for title, src in figures:
        body += [f"<h2>{html.escape(title)}</h2>", f'<img src="{html.escape(src)}" alt="{html.escape(title)}">']
    page = "<!doctype html><meta charset=utf-8><title>gpuci report</title>\n"
    return page + f"<style>{STYLE}</style>\n" + "\n".join(body) + "\n"
