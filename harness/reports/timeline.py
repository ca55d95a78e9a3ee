"""Pictures of runs, drawn with matplotlib: a run's timeline, and shutdown times across runs.

The timeline shows each phase (image ensure, start, run, stop requested → exited, removal,
VRAM back) and each test's shutdown and VRAM waits against the platform's budget; phases over
budget are labelled. The trend shows each test's shutdown time across runs, so a creeping
regression shows before it breaks the budget.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.reports.report import RunReport

PHASES = [
    ("image_ensure_s", "image", "#9e9e9e"),
    ("start_s", "start", "#90caf9"),
    ("run_s", "run", "#42a5f5"),
    ("exited_s", "stop → exited", "#ffa726"),
    ("remove_s", "remove", "#bdbdbd"),
    ("vram_back_s", "VRAM back", "#66bb6a"),
]
TEST_PHASES = {"shutdown": "#ffa726", "shutdown-many": "#fb8c00", "vram-wait-after": "#66bb6a",
               "vram-wait-before": "#a5d6a7", "startup-cold": "#7e57c2", "startup-warm": "#b39ddb"}  # fmt: skip


def has_trend(reports: list[RunReport]) -> bool:
    """Whether a trend has anything to show: shutdown records, or two runs with a measured stop."""
    stops = sum(_stop_seconds(r) is not None and bool(r.vram) for r in reports)
    shutdowns = any(rec.phase in SHUTDOWNS for r in reports for rec in r.tests or [])
    return shutdowns or stops > 1


SHUTDOWNS = ("shutdown", "shutdown-many")


def _stop_seconds(report: RunReport) -> float | None:
    return report.budget.stop_seconds if report.budget else None


def _budget_seconds(report: RunReport) -> float | None:
    """The stop's budget, for a run that had GPUs: a budget is for releasing them."""
    return report.budget.seconds if report.budget and report.vram else None


def can_draw() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        from harness.errors import UsageError

        raise UsageError(
            "pictures need matplotlib: `pip install 'gpuci-harness[report]'` (or `pip install matplotlib`)."
        ) from None
    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.pyplot as plt

    return plt


def draw_timeline(report: RunReport, out: Path) -> list[Path]:
    """The run's phases and its tests' teardown records; writes OUT.svg and OUT.png."""
    plt = _pyplot()
    # A budget is for releasing GPUs: a run with none (the cpu platform) draws no budget line.
    budget = _budget_seconds(report)
    tests = [r for r in report.tests or [] if r.phase in TEST_PHASES]
    rows = 1 + len(tests)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.38 * rows))
    start = 0.0
    for key, name, color in PHASES:
        width = report.timing(key)
        if width <= 0:
            continue
        ax.barh(0, width, left=start, color=color, edgecolor="white", label=name)
        start += width
    labels = [f"{report.session or '?'} · {report.step or '?'} ({report.outcome or '?'})"]
    for row, record in enumerate(tests, start=1):
        seconds = record.seconds
        ax.barh(row, seconds, color=TEST_PHASES[record.phase])
        over = bool(record.budget) and seconds > float(record.budget or 0)
        if over or seconds > 1.0:
            ax.annotate(f"{seconds:.2f}s{' over budget' if over else ''}", (seconds, row), xytext=(4, -3),
                        textcoords="offset points", fontsize=8, color="#c62828" if over else "#424242")  # fmt: skip
        labels.append(f"{record.test.split('::')[-1][:48]} · {record.phase}")
    if budget:
        ax.axvline(budget, color="#c62828", linestyle="--", linewidth=1, label=f"budget {budget:.1f}s")
    ax.set_yticks(range(rows), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds")
    ax.set_title(f"gpuci run {report.run_id}", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, ncol=4)
    fig.tight_layout()
    return _save(plt, fig, out)


def draw_trend(reports: list[RunReport], out: Path) -> list[Path]:
    """Shutdown time per test (and the run's own stop time) across runs, oldest first."""
    plt = _pyplot()
    ordered = sorted(reports, key=lambda r: r.started_at if isinstance(r.started_at, (int, float)) else 0.0)
    series: dict[str, list[tuple[int, float]]] = {}
    for index, report in enumerate(ordered):
        stop = _stop_seconds(report)
        if stop is not None:
            series.setdefault(f"{report.session} (run stop)", []).append((index, stop))
        for record in report.tests or []:
            if record.phase in SHUTDOWNS:
                series.setdefault(record.test.split("::")[-1][:40], []).append((index, record.seconds))
    fig, ax = plt.subplots(figsize=(11, 4.5))
    for name, points in sorted(series.items()):
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", linewidth=1, label=name)
    budgets = {budget for r in ordered if (budget := _budget_seconds(r))}
    for budget in sorted(budgets):
        ax.axhline(budget, color="#c62828", linestyle="--", linewidth=1, label=f"budget {budget:.1f}s")
    every = max(1, len(ordered) // 20)  # at most ~20 labels, however many runs
    ticks = list(range(0, len(ordered), every))
    ax.set_xticks(ticks, [ordered[i].run_id[:15] for i in ticks], rotation=30, fontsize=7)
    ax.set_ylabel("shutdown seconds")
    ax.set_title("shutdown times across runs", fontsize=10)
    if series or budgets:
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return _save(plt, fig, out)


def _save(plt: Any, fig: Any, out: Path) -> list[Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".svg"), out.with_suffix(".png")]
    for path in paths:
        fig.savefig(path, dpi=110)
    plt.close(fig)
    return paths
