"""`gpuci report`: a table of runs and an HTML page."""

from __future__ import annotations

import argparse
import sys

from harness.errors import UsageError


def report_command(args: argparse.Namespace) -> int:
    from harness.reports import summary
    from harness.reports.report import RUNS_DIR

    reports = summary.collect(args.runs or [RUNS_DIR], runs=RUNS_DIR)
    if not reports:
        raise UsageError(
            f"no run reports in {', '.join(map(str, args.runs or [RUNS_DIR]))}; give report.json files, run "
            f"folders or run ids of {RUNS_DIR}."
        )
    sys.stdout.write(summary.table(reports))
    looks = summary.look_lines(reports)
    if looks:
        sys.stdout.write("\n" + "\n".join(looks) + "\n")
    page = summary.write_html(reports, args.html, pictures=not args.no_pictures)
    print(f"gpuci: wrote {page}", file=sys.stderr)
    return 0
