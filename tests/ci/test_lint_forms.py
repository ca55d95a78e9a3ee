"""Command forms as the agent runs them: find with -maxdepth and -not, torchrun and python3 FILE.

Snippets in the shape of a large GPU project's steps (our own words and paths).
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.ci.lint import Finding, lint
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from tests.ci.test_lint import project

FILES = {
    "tests/compile/test_basic.py": "def test_a(): pass\n",
    "tests/compile/test_slow.py": "def test_b(): pass\n",
    "tests/compile/fullgraph/test_full.py": "def test_c(): pass\n",
    "tests/distributed/test_same_node.py": "def test_d(): pass\n",
    "tests/distributed/test_events.py": "def test_e(): pass\n",
}


def found(root: Path, config: ProjectConfig | None = None) -> list[Finding]:
    return lint(root, load_areas(root), config or ProjectConfig())[0]


def unrun(root: Path) -> list[str]:
    return sorted(f.path or "" for f in found(root) if f.kind == "unrun-test")


def test_find_with_maxdepth_does_not_reach_a_test_moved_one_folder_down(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Compile",
            "platforms": ["cpu"],
            "commands": [
                "find tests/compile -maxdepth 1 -name 'test_*.py' -not -name 'test_slow.py' | xargs pytest -v",
                "pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == ["tests/compile/fullgraph/test_full.py", "tests/compile/test_slow.py"]


def test_find_exec_pytest_and_a_last_continued_line_reach_their_files(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Compile",
            "platforms": ["cpu"],
            "commands": [
                "find tests/compile/ -name 'test_*.py' -not -name 'test_slow.py' -exec pytest -s -v {} \\;",
                "pytest tests/compile/test_slow.py tests/distributed/test_same_node.py \\\n",
                "pytest --junitxml=junit.xml tests/distributed/test_events.py \\\n",
                "cd tests && pytest distributed --deselect=tests/distributed/test_events.py::test_e",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == []


def test_torchrun_and_python3_run_the_file_they_name(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Distributed",
            "platforms": ["cpu"],
            "commands": [
                "pytest tests/compile",
                "VLLM_TEST_SAME_HOST=1 torchrun --nproc-per-node=4 tests/distributed/test_same_node.py | grep passed",
                "python3 tests/distributed/test_events.py",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == []


CONFTEST = """\
def pytest_addoption(parser):
    parser.addoption("--model", action="store", default="facebook/opt-125m")
    parser.addoption(
        "--metric", type=float, help="accuracy to reach"
    )
    parser.addoption("--full", action="store_true")
"""


def test_values_of_the_projects_own_pytest_options_are_not_paths(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Accuracy",
            "platforms": ["cpu"],
            "commands": [
                "pytest -s tests/compile --model meta-llama/Llama-3-8B --metric 0.58 --full",
                "pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, {**FILES, "tests/conftest.py": CONFTEST})
    findings = found(root)
    assert [(f.kind, f.path) for f in findings] == []  # neither the model name nor 0.58 is a missing path


def test_cd_back_to_the_repository_root_is_the_root(tmp_path: Path) -> None:
    """`cd ..` from the tests folder, in a step and in a script it runs: paths resolve from the root."""
    steps = [
        {
            "label": "From the root",
            "platforms": ["cpu"],
            "working_dir": "/vllm-workspace/tests",
            "commands": ["cd .. && pytest tests/compile"],
        },
        {
            "label": "Script",
            "platforms": ["cpu"],
            "working_dir": "/vllm-workspace/tests",
            "commands": ["bash ../scripts/run_distributed.sh"],
        },
    ]
    files = {**FILES, "scripts/run_distributed.sh": "cd ..\npytest tests/distributed\n"}
    root = project(tmp_path, steps, files)
    config = ProjectConfig(workspace="/vllm-workspace", default_working_dir="/vllm-workspace/tests")
    findings = found(root, config)
    assert [(f.kind, f.path) for f in findings] == []  # not tests/tests/…


GATED_MODULE = """\
import os

import pytest

RUN_SLOW = os.getenv("VLLM_RUN_SLOW")
QUICK = os.environ.get("VLLM_QUICK", "1")


@pytest.mark.skipif(not RUN_SLOW, reason="slow: set VLLM_RUN_SLOW")
def test_slow():
    pass


@pytest.mark.skipif(os.getenv("VLLM_SKIP_BIG"), reason="turned off by a flag")
def test_big():
    pass


@pytest.mark.skipif(not QUICK, reason="runs unless QUICK is emptied")
def test_quick():
    pass


@pytest.mark.skipif("HF_TOKEN" not in os.environ, reason="needs the agent's token")
def test_hub():
    pass


pytestmark = pytest.mark.skipif(os.environ.get("VLLM_USE_V2_RUNNER", "0") != "1", reason="V2 only")


@pytest.mark.skipif(os.environ.get("VLLM_NO_COMPILE") == "1", reason="turned off by a flag")
def test_compiled():
    pass
"""


def test_only_variables_that_turn_tests_on_are_gates(tmp_path: Path) -> None:
    steps = [{"label": "Models", "platforms": ["cpu"], "commands": ["pytest tests/models/test_gated.py"]}]
    root = project(tmp_path, steps, {"tests/models/test_gated.py": GATED_MODULE})
    findings = found(root)
    # Module-level gates (through a name, or compared with the value that runs) are seen; disabling
    # flags, a default that runs, the agent's secret are not.
    assert [(f.kind, f.variable) for f in findings] == [
        ("unset-gate", "VLLM_RUN_SLOW"),
        ("unset-gate", "VLLM_USE_V2_RUNNER"),
    ]


def test_a_tree_exported_into_an_ignored_folder_of_another_repository_is_read(tmp_path: Path) -> None:
    from tests.conftest import git

    git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text(".corpus/\n")
    steps = [{"label": "Compile", "platforms": ["cpu"], "commands": ["pytest tests/compile"]}]
    root = project(tmp_path / ".corpus" / "proj", steps, FILES)
    findings = found(root)
    # Read as git's (empty) list of the enclosing repository, every path would be missing.
    assert not [f for f in findings if f.kind == "missing-path"]
    assert sorted(f.path or "" for f in findings if f.kind == "unrun-test") == [
        "tests/distributed/test_events.py",
        "tests/distributed/test_same_node.py",
    ]


RUNNER = """\
#!/bin/bash
SCRIPT_DIR="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)"
GIT_ROOT="${GIT_ROOT:-$(cd -- "${SCRIPT_DIR}/../../.." && pwd -P)}"
python3 -m pytest -s -x "${GIT_ROOT}"/tests/v1/kv/test_accuracy.py
"""
SWEEP = """\
#!/bin/bash
SCRIPT="v1/kv/run_accuracy.sh"
cfg_parts=(KV_LAYOUT=HND)
if ! env "${cfg_parts[@]}" bash "${SCRIPT}"; then exit 1; fi
"""
ON_THE_AGENT = """\
#!/bin/bash
docker exec cpu-test bash -c "
  set -e
  pytest -x -v -s tests/kernels/test_cpu_attn.py"
"""


def test_scripts_find_their_tests_through_the_paths_they_compute(tmp_path: Path) -> None:
    files = {
        "tests/v1/kv/run_accuracy.sh": RUNNER,
        "tests/v1/kv/sweep.sh": SWEEP,
        "tests/v1/kv/test_accuracy.py": "def test_gsm8k(): pass\n",
        "tests/v1/kv/kv_utils_test.py": "def make_cache(): ...\n",  # a library module named like a test
        "tests/v1/kv/gated.sh": 'if [[ -n "$NEVER_SET" ]]; then pytest tests/v1/kv; fi\n',  # run by no step
    }
    steps = [
        {"label": "KV", "platforms": ["cpu"], "working_dir": "/workspace/tests", "commands": ["bash v1/kv/sweep.sh"]}
    ]
    root = project(tmp_path, steps, files)
    findings = found(root)
    assert [(f.kind, f.path) for f in findings] == []


def test_a_step_on_the_agent_itself_runs_from_the_checkout_root(tmp_path: Path) -> None:
    files = {
        ".buildkite/scripts/run-cpu-test.sh": ON_THE_AGENT,
        "tests/kernels/test_cpu_attn.py": "def test_attn(): pass\n",
        "tests/kernels/test_gpu_attn.py": "def test_attn(): pass\n",
    }
    steps = [
        {
            "label": "CPU",
            "platforms": ["cpu"],
            "no_plugin": True,
            "commands": ["bash .buildkite/scripts/run-cpu-test.sh"],
        }
    ]
    root = project(tmp_path, steps, files)
    config = ProjectConfig(default_working_dir="/workspace/tests")
    findings = found(root, config)
    # The script is found at the root, and the half-quoted pytest line reaches its one file, not all of tests/.
    assert [(f.kind, f.path) for f in findings] == [("unrun-test", "tests/kernels/test_gpu_attn.py")]


BENCH_SCRIPT = """\
#!/bin/bash
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python3 benchmarks/bench_latency.py
cd "${THIRD_PARTY_DIR}/other-project"
pytest tests/integration/test_rl.py
"""


def test_commands_as_generators_quote_them_and_directories_only_the_machine_knows(tmp_path: Path) -> None:
    files = {
        "tests/lora/test_a.py": "def test_a(): pass\n",
        "tests/lora/test_tp.py": "def test_tp(): pass\n",
        "tests/models/test_vlm.py": "def test_v(): pass\n",
        "examples/offline/rlhf.py": "",
        "benchmarks/bench_latency.py": "",
        "scripts/run-bench.sh": BENCH_SCRIPT,
        ".buildkite/steps/tests.sh": "pytest tests/models\n",
    }
    steps = [
        {
            "label": "LoRA",
            "platforms": ["cpu"],
            "working_dir": "/workspace/tests",
            # A plain YAML scalar folds `\`-continued lines into `\ `; the generator's double quotes make it a space.
            "commands": ['pytest -v -s lora \\ --ignore=lora/test_tp.py \\ -m \\"not vlm\\"', "pytest lora/test_tp.py"],
        },
        {
            "label": "Examples",
            "platforms": ["cpu"],
            "working_dir": "/workspace/tests",
            "commands": ["pushd ../examples/offline", "python3 rlhf.py", "popd", "pytest models"],
        },
        {"label": "Bench", "platforms": ["cpu"], "commands": ["bash scripts/run-bench.sh"]},
        {"label": "Windows", "platforms": ["cpu"], "commands": ["bash .buildkite\\steps\\tests.sh"]},
    ]
    root = project(tmp_path, steps, files)
    findings = found(root)
    assert [(f.kind, f.path) for f in findings] == []


TPU_SCRIPT = """\
#!/bin/bash
run_and_track_test() { echo "$2"; eval "$2"; }
docker run --rm -v "$(pwd)":/workspace/proj tpu-image bash -c '
  run_and_track_test 1 "python3 -m pytest -s -v /workspace/proj/tests/tpu/test_compile.py"
'
"""


def test_scripts_ci_runs_from_outside_the_pipeline_files_count_when_declared(tmp_path: Path) -> None:
    files = {
        ".buildkite/scripts/hardware_ci/run-tpu-test.sh": TPU_SCRIPT,
        "tests/tpu/test_compile.py": "def test_compile(): pass\n",
        "tests/engine/test_core.py": "def test_core(): pass\n",
    }
    steps = [{"label": "Engine", "platforms": ["cpu"], "commands": ["pytest tests/engine"]}]
    root = project(tmp_path, steps, files)
    unrun = [(f.kind, f.path) for f in found(root)]
    assert unrun == [("unrun-test", "tests/tpu/test_compile.py")]
    config = ProjectConfig(external_scripts=(".buildkite/scripts/hardware_ci/run-*.sh",))
    # Run by the declared script, through a command passed as a string, at the container's own mount.
    assert found(root, config) == []


SUITES = """\
#!/bin/bash
case "$1" in
  core)
    cd tests
    pytest -v -s v1/core
    ;;
  server)
    cd tests
    pytest -v -s entrypoints/test_serve.py
    ;;
esac
if [[ -n "${QUICK:-}" ]]; then
  cd tests/v1
else
  pytest -v -s tests/v1/core
fi
"""


def test_each_branch_of_a_case_or_if_starts_where_the_block_began(tmp_path: Path) -> None:
    files = {
        "scripts/suite.sh": SUITES,
        "tests/v1/core/test_sched.py": "def test_s(): pass\n",
        "tests/entrypoints/test_serve.py": "def test_e(): pass\n",
    }
    steps = [{"label": "Suites", "platforms": ["cpu"], "commands": ["bash scripts/suite.sh core"]}]
    root = project(tmp_path, steps, files)
    assert found(root) == []  # not tests/tests/entrypoints/…


def test_a_variable_the_projects_own_code_sets_at_run_time_is_not_a_steps_gate(tmp_path: Path) -> None:
    module = (
        "import os\nimport pytest\n\n"
        'if os.getenv("VLLM_USE_V1", "0") != "1":\n'
        '    pytest.skip("needs V1", allow_module_level=True)\n\n\n'
        "def test_v1():\n    pass\n"
    )
    steps = [{"label": "V1", "platforms": ["cpu"], "commands": ["pytest tests/v1"]}]
    root = project(tmp_path, steps, {"tests/v1/test_sampling.py": module})
    assert [f.variable for f in found(root)] == ["VLLM_USE_V1"]
    # The engine picks its mode at import and says so in the environment: no step sets it, none has to.
    (root / "vllm").mkdir()
    (root / "vllm" / "envs.py").write_text('import os\nos.environ["VLLM_USE_V1"] = "1" if True else "0"\n')
    assert found(root) == []


def test_pytest_under_a_runner_coverage_or_a_venvs_interpreter_reaches_its_targets(tmp_path: Path) -> None:
    steps = [
        {
            "label": "Unit",
            "platforms": ["cpu"],
            "commands": [
                "uv run pytest tests/compile/test_basic.py",
                "coverage run --source=pkg/ -m pytest -v tests/compile/test_slow.py",
                'VENV_PYTHON="$PWD/.venv/bin/python"',
                '"${VENV_PYTHON}" -m pytest -v -s tests/compile/fullgraph',
                "python3 -u -m pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    assert unrun(root) == []


def test_a_removed_pytest_option_is_named_not_its_values(tmp_path: Path) -> None:
    """The conftest dropped --metric and --model, but a step still passes them: pytest fails on the option."""
    steps = [
        {
            "label": "Accuracy",
            "platforms": ["cpu"],
            "commands": ["pytest -s tests/compile --model meta-llama/Llama-3-8B --metric 0.58 --lf tests/distributed"],
        }
    ]
    root = project(tmp_path, steps, FILES)  # no conftest adds the options any more
    messages = sorted(f.message for f in found(root) if f.kind == "missing-path")
    assert messages == [
        "pytest has no option --metric here (no conftest adds it): its value '0.58' is read as a test path, "
        "which does not exist",
        "pytest has no option --model here (no conftest adds it): its value 'meta-llama/Llama-3-8B' is read as "
        "a test path, which does not exist",
    ]


BENCH_SCRIPT = """\
import sys

def test_throughput(model, batch_size):
    return model, batch_size

if __name__ == "__main__":
    test_throughput(sys.argv[1], int(sys.argv[2]))
"""
REAL_TESTS_WITH_MAIN = """\
import pytest

@pytest.fixture
def engine():
    return 1

def test_engine(engine, tmp_path):
    assert engine

if __name__ == "__main__":
    pytest.main([__file__])
"""


def test_a_script_named_like_a_test_is_no_unrun_test_but_real_tests_with_a_main_still_are(tmp_path: Path) -> None:
    files = {
        **FILES,
        "tests/benchmarks/test_throughput.py": BENCH_SCRIPT,
        "tests/engine/test_engine.py": REAL_TESTS_WITH_MAIN,
    }
    steps = [{"label": "compile", "platforms": ["cpu"], "commands": ["pytest tests/compile tests/distributed"]}]
    root = project(tmp_path, steps, files)
    assert unrun(root) == ["tests/engine/test_engine.py"]  # the benchmark script is not reported


def test_a_multi_node_runner_runs_its_commands_in_the_folder_it_is_given(tmp_path: Path) -> None:
    """`run-multi-node-test.sh DIR NODES GPUS IMAGE "cmd node 0" "cmd node 1"`: the commands run in DIR."""
    steps = [
        {
            "label": "Two nodes",
            "platforms": ["cpu"],
            "num_nodes": 2,
            "working_dir": "/vllm-workspace/tests",
            "commands": [
                "./.buildkite/scripts/run-multi-node-test.sh /vllm-workspace/tests 2 2 img "
                '"pytest -v -s distributed/test_same_node.py" "pytest -v -s distributed/test_events.py"',
                "pytest tests/compile",
            ],
        }
    ]
    files = dict(FILES)
    files[".buildkite/scripts/run-multi-node-test.sh"] = "#!/bin/bash\n# starts the nodes; runs $5.. in $1\n"
    root = project(tmp_path, steps, files)
    findings = found(root, ProjectConfig(workspace="/vllm-workspace"))  # the project's checkout in its image
    assert [f.path for f in findings if f.kind == "unrun-test"] == []  # both distributed modules run, from tests/


DECORATED = """\
import unittest
from unittest import mock
from unittest.mock import patch

import pytest
from hypothesis import given, strategies as st


@pytest.fixture(params=[1, 2])
def level(request):
    return request.param


class TestSupported(unittest.TestCase):
    @patch("vllm.platforms.current_platform")
    @patch.object(unittest.TestCase, "assertTrue")
    @patch.dict("os.environ", {"X": "1"})
    def test_supported(self, mock_platform, mock_assert):
        pass


@mock.patch("vllm.engine.run")
def test_patched(mock_run):
    pass


@given(st.integers(), size=st.integers())
def test_given(value, size):
    pass


@pytest.mark.parametrize("backend", ["a", "b"], indirect=True)
def test_indirect(backend):
    pass


@pytest.mark.usefixtures("plugin_model")
def test_plugin(plugin_model, from_conftest_plugin, mocked_server):
    pass


if __name__ == "__main__":
    unittest.main()
"""


def test_tests_whose_parameters_decorators_fill_are_tests_even_with_a_main(tmp_path: Path) -> None:
    from harness.ci.lint.scripts_not_tests import test_needs

    needs = test_needs(DECORATED)
    assert needs is not None and {n[0]: n[1:] for n in needs} == {
        "test_supported": [],
        "test_patched": [],
        "test_given": [],
        "test_indirect": [],
        "test_plugin": ["from_conftest_plugin", "mocked_server"],
    }
    files = {
        **FILES,
        "tests/kernels/test_decorated.py": DECORATED,
        "tests/conftest.py": 'pytest_plugins = ["tests.plugins.models"]\n',
        "tests/plugins/models.py": "import pytest\n\n@pytest.fixture(name='from_conftest_plugin')\ndef f(): pass\n",
        "requirements/test.txt": "pytest-httpserver==1.0\n",
        "pytest.ini": "[pytest]\naddopts = -p tests.plugins.server\n",
        "tests/plugins/server.py": "import pytest\n\n@pytest.fixture\ndef mocked_server():\n    pass\n",
    }
    steps = [{"label": "compile", "platforms": ["cpu"], "commands": ["pytest tests/compile tests/distributed"]}]
    root = project(tmp_path, steps, files)
    # The loaded plugins fill the rest: a test module, which no step runs.
    assert unrun(root) == ["tests/kernels/test_decorated.py"]
    # patch.dict passes no argument, and nothing else gives model_path: a script, and the finding says why.
    script = (
        '@patch.dict("os.environ", {})\ndef test_run(model_path):\n    pass\n\nif __name__ == "__main__":\n    pass\n'
    )
    (root / "tests/kernels/test_decorated.py").write_text("from unittest.mock import patch\n" + script)
    findings = found(root)
    assert [f.kind for f in findings] == ["script-not-test"]
    assert "test_run takes 'model_path', which no fixture" in findings[0].message


def test_an_ignore_or_deselect_of_a_path_that_is_gone_is_a_stale_note_not_a_missing_test(
    tmp_path: Path, run_harness
) -> None:
    steps = [
        {
            "label": "compile",
            "platforms": ["cpu"],
            "commands": [
                "pytest tests/compile --ignore=tests/compile/old_folder --deselect tests/compile/test_gone.py::test_x",
                "pytest tests/distributed",
            ],
        }
    ]
    root = project(tmp_path, steps, FILES)
    findings = found(root)
    assert [(f.kind, f.path) for f in findings] == [
        ("stale-ignore", "tests/compile/old_folder"),
        ("stale-ignore", "tests/compile/test_gone.py"),
    ]
    assert (
        "no test is lost" in findings[0].message and findings[0].suggestion == "drop --ignore tests/compile/old_folder"
    )
    done = run_harness("lint", "--root", str(root), "--format", "json")
    assert done.returncode == 0, done.stdout  # notes only: the lint passes
    assert {f["severity"] for f in json.loads(done.stdout)} == {"note"}
    text = run_harness("lint", "--root", str(root))
    assert "stale-ignore (note):" in text.stdout
