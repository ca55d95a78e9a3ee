"""Is this a gpuci run report? The fields `report` and `repro` read, each of the kind they expect.

A report may come from another version of gpuci, a hand edit or a broken download: a field of the
wrong kind is said once, in a sentence, instead of failing deep inside a table or a checkout.
"""

from __future__ import annotations

from typing import Any

NUMBER = (int, float)
# field: the kinds it may have (absent is always allowed, except for the required ones below).
FIELDS: dict[str, tuple[type, ...]] = {
    "run_id": (str,),
    "session": (str,),
    "area": (str,),
    "step": (str,),
    "platform": (str,),
    "mode": (str,),
    "outcome": (str,),
    "gpuci_exit_code": (int,),
    "started_at": (*NUMBER, str),
    "budget": (dict, type(None)),
    "timings": (dict,),
    "tests": (list,),
    "git": (dict,),
    "image": (dict,),
    "spec": (dict, type(None)),
    "pytest_args": (list, type(None)),
}
NUMERIC_MAPS = ("timings",)


def malformed(report: object, required: tuple[str, ...] = ("run_id",)) -> str | None:
    """Why `report` is not a run report gpuci can read; None when it is."""
    if not isinstance(report, dict):
        return f"is a JSON {type(report).__name__}, not a run report (an object)"
    missing = [key for key in required if key not in report]
    if missing:
        return f"lacks {', '.join(missing)}"
    for key, kinds in FIELDS.items():
        if key in report and (
            not isinstance(report[key], kinds) or (isinstance(report[key], bool) and bool not in kinds)
        ):
            return f"has {key} = {_short(report[key])}, not {' or '.join(k.__name__ for k in kinds)}"
    for key in NUMERIC_MAPS:
        for name, value in (report.get(key) or {}).items():
            if value is not None and (not isinstance(value, NUMBER) or isinstance(value, bool)):
                return f"has {key}.{name} = {_short(value)}, not a number"
    budget = report.get("budget") or {}
    for name in ("stop_seconds", "margin_seconds"):
        if budget.get(name) is not None and not isinstance(budget[name], NUMBER):
            return f"has budget.{name} = {_short(budget[name])}, not a number"
    for record in report.get("tests") or []:
        if not isinstance(record, dict) or not isinstance(record.get("seconds", 0) or 0, NUMBER):
            return f"has a test record {_short(record)} that is not {{phase, test, seconds}}"
    git = report.get("git") or {}
    if not isinstance(git.get("commit"), (str, type(None))):
        return f"has git.commit = {_short(git.get('commit'))}, not a commit id"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
