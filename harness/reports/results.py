"""What a run says about its tests: counts per outcome, the failures, the test a timeout caught.

From the per-test results the plugin wrote as tests ran (so a step stopped at its timeout still
has them). Also a JUnit file for what ran when pytest wrote none (a stopped step).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.reports.records import TestResult

FAILED = ("failed", "error")
# Characters XML 1.0 forbids (a workload's \x1b would make the whole file unreadable to CI tools).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def _xml_safe(text: str) -> str:
    return _NOT_XML.sub(lambda m: m.group(0).encode("unicode_escape", "backslashreplace").decode("ascii"), text)


# xml.sax is imported only where JUnit is written.
def escape(text: str) -> str:
    from xml.sax.saxutils import escape as xml_escape

    return xml_escape(_xml_safe(text))


def quoteattr(text: str) -> str:
    from xml.sax.saxutils import quoteattr as xml_quoteattr

    return xml_quoteattr(_xml_safe(text))


def masked(results: list[TestResult], mask: Callable[[str], str]) -> list[TestResult]:
    """The results with `mask` (a redactor's) applied to each test's name and message."""
    return [replace(r, test=mask(r.test), message=None if r.message is None else mask(r.message)) for r in results]


# Outcomes a person must look at, in the order reports list them.
NEEDS_LOOK = ("failed", "error", "timeout")


def hung_results(running: list[str], stacks: str, outcome: str | None) -> list[TestResult]:
    """The tests still running when the step was stopped, as results: `timeout` when the step's
    timeout stopped it (any other stop, a cancel or a crash, leaves them an `error`), with the
    innermost frame of the stacks the plugin dumped as their message."""
    kind = "timeout" if outcome == "timeout" else "error"
    why = "still running at the step's timeout" if kind == "timeout" else f"still running as the run ended ({outcome})"
    where = innermost_frame(stacks)
    message = f"{why}{f'; at {where}' if where else ''}"
    return [TestResult(test, kind, None, message) for test in running]


def innermost_frame(stacks: str) -> str:
    """`File "t.py", line 5 in test_x`: the first frame faulthandler lists (most recent call first)."""
    for line in stacks.splitlines():
        if line.strip().startswith('File "'):
            return line.strip()[:300]
    return ""


def counts(results: list[TestResult]) -> dict[str, int]:
    return dict(sorted(Counter(r.outcome for r in results).items()))


def summary_lines(results: list[TestResult], running: list[str], limit: int = 10) -> list[str]:
    """A few lines for the end of the terminal output: counts (the hung tests' results among them,
    as report.json counts them), failed tests, the hung test (named once, as still running)."""
    lines = []
    if results:
        lines.append("tests: " + ", ".join(f"{n} {outcome}" for outcome, n in counts(results).items()))
    failures = [r for r in results if r.outcome in FAILED and r.test not in running]
    for result in failures[:limit]:
        message = result.message.splitlines()[0][:160] if result.message else ""
        lines.append(f"  {result.outcome}: {result.test}" + (f" — {message}" if message else ""))
    if len(failures) > limit:
        lines.append(f"  … and {len(failures) - limit} more failed (report.json's results)")
    for test in running[:limit]:
        lines.append(f"  still running when the step was stopped: {test}")
    if len(running) > limit:
        lines.append(f"  … and {len(running) - limit} more still running (report.json's hang)")
    return lines


def write_junit(results: list[TestResult], path: Path, running: list[str]) -> Path:
    """A JUnit file for what ran; a test that was running at the stop is an error."""
    cases = []
    for r in results:
        module, _, name = r.test.rpartition("::")
        seconds = quoteattr(str(r.seconds or 0))
        attrs = f"classname={quoteattr(module)} name={quoteattr(name or r.test)} time={seconds}"
        body = ""
        if r.outcome in FAILED:
            tag = "failure" if r.outcome == "failed" else "error"
            message = r.message or ""
            body = f"<{tag} message={quoteattr(message[:500])}>{escape(message)}</{tag}>"
        elif r.outcome in ("skipped", "xfailed"):
            body = "<skipped/>"
        cases.append(f"<testcase {attrs}>{body}</testcase>")
    for test in running:
        module, _, name = test.rpartition("::")
        cases.append(
            f'<testcase classname={quoteattr(module)} name={quoteattr(name or test)} time="0">'
            '<error message="still running when the step was stopped at its timeout"/></testcase>'
        )
    errors = sum(r.outcome == "error" for r in results) + len(running)
    failures = sum(r.outcome == "failed" for r in results)
    skipped = sum(r.outcome in ("skipped", "xfailed") for r in results)
    suite = (
        f'<testsuite name="gpuci" tests="{len(cases)}" failures="{failures}" errors="{errors}" skipped="{skipped}">'
        + "".join(cases)
        + "</testsuite>"
    )
    path.write_text(f'<?xml version="1.0" encoding="utf-8"?>\n<testsuites>{suite}</testsuites>\n')
    return path
