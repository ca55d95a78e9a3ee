"""The platform finding: a test module that skips itself whole on the only platforms whose steps run it.

Modules and steps in the shape of a large GPU project's (our own words and names).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.ci.lint import lint
from harness.ci.lint.platform_skips import platform_skip
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from tests.ci.test_lint import project

CUDA_ONLY = """\
import pytest
from vllm.platforms import current_platform

pytestmark = pytest.mark.skipif(not current_platform.is_cuda(), reason="CUDA kernels")


def test_cutlass_mm(): pass
"""
ROCM_ONLY = """\
import pytest
from vllm.platforms import current_platform

if not current_platform.is_rocm():
    pytest.skip("AITER kernels are ROCm's", allow_module_level=True)


def test_aiter_moe(): pass
"""
BY_CAPABILITY = """\
import pytest
from vllm.platforms import current_platform

pytestmark = pytest.mark.skipif(current_platform.get_device_capability() < (9, 0), reason="Hopper")


def test_fp8(): pass
"""


@pytest.mark.parametrize(
    ("text", "skipped"),
    [(CUDA_ONLY, {"rocm", "cpu"}), (ROCM_ONLY, {"cuda", "cpu"}), (BY_CAPABILITY, None), ("def test_x(): pass\n", None)],
)
def test_where_a_module_skips_itself(text: str, skipped: set[str] | None) -> None:
    found = platform_skip(text)
    assert (set(found.platforms) if found else None) == skipped


def test_a_cuda_only_test_run_only_by_an_amd_step_is_reported_with_both_places(tmp_path: Path) -> None:
    files = {
        "tests/kernels/test_cutlass.py": CUDA_ONLY,
        "tests/kernels/test_aiter.py": ROCM_ONLY,
        "tests/kernels/test_capability.py": BY_CAPABILITY,
    }
    steps = [
        {"label": "Kernels (MI300)", "device": "mi300_1", "commands": ["pytest -v -s tests/kernels/test_cutlass.py"]},
        {"label": "Kernels (H100)", "commands": ["pytest -v -s tests/kernels/test_capability.py"]},
        {
            "label": "Kernels AITER",
            "commands": ["pytest -v -s tests/kernels/test_aiter.py"],
            "mirror": {"amd": {"device": "mi300_1"}},
        },
    ]
    root = project(tmp_path, steps, files)
    findings, _ = lint(root, load_areas(root), ProjectConfig())
    [finding] = [f for f in findings if f.kind == "platform-skip"]
    assert (finding.step, finding.path) == ("Kernels (MI300)", "tests/kernels/test_cutlass.py")
    assert finding.file == ".buildkite/test_areas/ci.yaml" and finding.line > 0
    assert finding.message.startswith("tests/kernels/test_cutlass.py:4 skips itself on rocm")
