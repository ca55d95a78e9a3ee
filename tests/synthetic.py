"""A synthetic project in the shape large GPU projects write, for pipeline tests and benchmarks."""

from __future__ import annotations

from pathlib import Path

import yaml


def synthetic_project(root: Path, areas: int = 25, steps_per_area: int = 20) -> Path:
    """500 steps in the shape large GPU projects write, each with an AMD mirror."""
    folder = root / ".buildkite" / "test_areas"
    folder.mkdir(parents=True)
    for a in range(areas):
        steps = [
            {
                "label": f"Area {a} step {s}",
                "timeout_in_minutes": 30,
                "device": "h100",
                "num_devices": 2,
                "source_file_dependencies": [
                    f"pkg/area{a}",
                    f"!pkg/area{a}/docs",
                    f"tests/area{a}/test_{s}.py",
                ],
                "commands": [f"pytest -v -s tests/area{a}/test_{s}.py"],
                "parallelism": 2 if s % 5 == 0 else 1,
                "concurrency": 1 if s % 7 == 0 else None,
                "concurrency_group": f"area{a}-serial" if s % 7 == 0 else None,
                "optional": s == 19,
                "mirror": {"amd": {"device": "mi325_1", "commands": [f"pytest -v tests/area{a}/test_{s}.py"]}},
            }
            for s in range(steps_per_area)
        ]
        for step in steps:
            for key in [k for k, v in step.items() if v is None]:
                del step[key]
        (folder / f"area{a}.yaml").write_text(yaml.safe_dump({"group": f"Area {a}", "steps": steps}))
    return root
