"""The platform finding: a test module that skips itself whole on the only platforms whose steps run it.

Modules and steps in the shape of a large GPU project's (our own words and names).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from harness.ci.lint import lint
from harness.ci.lint.platform_skips import platform_skip, platform_skip_if_it_parses
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


def test_a_module_naming_no_platform_check_is_not_parsed_and_says_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    by_package = 'import pytest\npytestmark = pytest.mark.skipif(not HAS_TRITON, reason="triton")\n'
    parsed: list[str] = []
    real = ast.parse
    monkeypatch.setattr(ast, "parse", lambda text, *a, **k: parsed.append(text) or real(text, *a, **k))
    assert platform_skip(by_package) is None and parsed == []  # the byte scan answered
    assert platform_skip_if_it_parses(CUDA_ONLY) is not None
    assert parsed == [CUDA_ONLY.splitlines()[3] + "\n\n"]  # a check named: its skip statement, alone (then shifted)
    assert platform_skip(CUDA_ONLY) is not None and parsed[-1] == CUDA_ONLY  # a skip found: the whole parses?


def test_a_skip_in_a_module_that_does_not_parse_is_none_once_checked() -> None:
    broken = CUDA_ONLY + "\ndef test_broken():\n    x = = 1\n"
    assert platform_skip_if_it_parses(broken) is not None  # the skip statement parses alone
    assert platform_skip(broken) is None  # but pytest could not import the module: no skip to report


def test_a_skip_written_inside_a_string_or_a_function_is_no_module_skip() -> None:
    in_string = (
        'import pytest\nfrom vllm.platforms import current_platform\nNOTES = """\n'
        + CUDA_ONLY.splitlines()[3]
        + '\n"""\n'
    )
    in_function = "def helper():\n    " + CUDA_ONLY.splitlines()[3] + "\n"
    for text in (in_string, in_function):
        assert platform_skip_if_it_parses(text) is None and platform_skip(text) is None


def test_a_module_that_is_not_ascii_is_parsed_whatever_it_names() -> None:
    # NFKC makes the fullwidth ｉｓ＿ｃｕｄａ the identifier is_cuda: the byte scan cannot tell, the parse can.
    text = CUDA_ONLY.replace("is_cuda", "\uff49\uff53\uff3f\uff43\uff55\uff44\uff41")
    skip = platform_skip(text)
    assert skip is not None and skip.platforms == frozenset({"cpu", "rocm"})
