"""Shell gates by meaning: a variable is a gate only when its being set is what makes tests run.

Scripts in the shape of a large GPU project's test scripts (our own words and names).
"""

from __future__ import annotations

import pytest

from harness.ci.lint.shell_gates import shell_gates

ADDS_TESTS = """\
#!/bin/bash
MODELS="llama mistral"
if [[ -n "${FULL_SWEEP:-}" ]]; then
    MODELS="$MODELS qwen"
fi
for m in $MODELS; do
    pytest -v "tests/models/test_$m.py"
done
"""

EARLY_EXIT = """\
#!/bin/bash
set -e
[[ -z "${RUN_NIGHTLY_ONLY_TESTS:-}" ]] && exit 0
pytest -v tests/nightly
"""

RUNS_UNDER_COMPARISON = """\
if [ "${USE_DEEPGEMM:-0}" == "1" ]; then
  pytest tests/kernels/test_deepgemm.py
fi
"""


@pytest.mark.parametrize(
    ("script", "gates"),
    [
        (ADDS_TESTS, {"FULL_SWEEP": 3}),
        (EARLY_EXIT, {"RUN_NIGHTLY_ONLY_TESTS": 3}),
        (RUNS_UNDER_COMPARISON, {"USE_DEEPGEMM": 1}),
    ],
)
def test_a_variable_whose_being_set_runs_tests_is_a_gate(script: str, gates: dict[str, int]) -> None:
    assert shell_gates(script) == gates


LOCALS_AND_ARRAYS = """\
#!/bin/bash
run_one() {
  local port=$1
  if [[ -n "$port" ]]; then
    python3 -m pytest -s -x tests/v1/kv/test_accuracy.py
  fi
}
cfg_parts=(KV_LAYOUT=HND)
if [[ -n "${cfg_parts[*]}" ]]; then
  env "${cfg_parts[@]}" bash tests/v1/kv/run_accuracy_test.sh
fi
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GIT_ROOT="${GIT_ROOT:-$(cd "${SCRIPT_DIR}/../../.." && pwd -P)}"
if [[ -n "$GIT_ROOT" ]]; then
  pytest "${GIT_ROOT}/tests/v1/kv/test_edge_cases.py"
fi
"""

DISABLING = """\
if [[ -z "${SKIP_CROSS_LAYOUT:-}" ]]; then
  pytest tests/v1/kv/test_cross_layout.py
fi
if [[ "${RUN_FAST:-1}" == "1" ]]; then
  pytest tests/v1/kv/test_fast.py
fi
"""

NOT_ABOUT_TESTS = """\
pytest tests/ray/test_compat.py
if [[ -n "${RAY_COMPAT_SLACK_WEBHOOK_URL:-}" ]]; then
  curl -X POST -d '{"text": "ray compat failed"}' "$RAY_COMPAT_SLACK_WEBHOOK_URL"
fi
if [[ -n "$VLLM_SERVE_EXTRA_ARGS" ]]; then
  echo "extra args: $VLLM_SERVE_EXTRA_ARGS"
fi
"""

LOUD_OR_ALTERNATIVE = """\
if [[ -z "${MODEL_PATH:-}" ]]; then
  echo "MODEL_PATH must be set" >&2
  exit 1
fi
if [[ "${ARTIFACT_ONLY:-0}" == "1" ]]; then
  bash .buildkite/scripts/bake.sh artifacts
  exit 0
fi
bash .buildkite/scripts/bake.sh full
"""


@pytest.mark.parametrize(
    "script",
    [LOCALS_AND_ARRAYS, DISABLING, NOT_ABOUT_TESTS, LOUD_OR_ALTERNATIVE],
    ids=[
        "locals, arrays and paths the script computes",
        "disabling flags and defaults that run",
        "notifications and log lines",
        "a loud error or an alternative",
    ],
)
def test_variables_that_do_not_hold_tests_back_are_not_gates(script: str) -> None:
    assert shell_gates(script) == {}


def test_a_condition_on_what_only_the_machine_knows_is_not_judged() -> None:
    script = 'if [[ -f /opt/rocm/bin/rocminfo && -n "$ROCM_TESTS" ]]; then pytest tests/rocm; fi\n'
    assert shell_gates(script) == {}
