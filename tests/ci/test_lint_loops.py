"""Shell loops expand to what they iterate over; a variable the lint cannot bound reaches nothing.

Snippets in the shape of a large GPU project's hardware scripts (our own words and paths).
"""

from __future__ import annotations

from pathlib import Path

from harness.ci.lint import Finding, lint
from harness.ci.lint.shell_loops import find_loop
from harness.ci.lint.shell_text import logical_lines
from harness.declare.config import ProjectConfig
from harness.declare.sources import load_areas
from tests.ci.test_lint import project

TEST = "def test_it(): pass\n"
FILES = {
    "vllm/tests/__init__.py": "",  # the package has a folder named like the tail of a mounted path
    "tests/neuron/1_core/test_one.py": TEST,
    "tests/neuron/2_core/test_two.py": TEST,
    "tests/neuron/2_core/test_three.py": TEST,
    "tests/neuron/2_core/deep/test_deep.py": TEST,
    "tests/models/test_llama.py": TEST,
    "tests/models/test_qwen.py": TEST,
    "tests/models/test_gemma.py": TEST,
    "tests/other/test_x.py": TEST,
}


def found(root: Path) -> list[Finding]:
    return lint(root, load_areas(root), ProjectConfig(workspace="/vllm-workspace"))[0]


def unrun(findings: list[Finding]) -> list[str]:
    return sorted(f.path or "" for f in findings if f.kind == "unrun-test")


def step(*commands: str) -> list[dict]:
    return [{"label": "Neuron", "platforms": ["cpu"], "commands": list(commands)}]


def test_the_loop_text_is_cut_at_its_matching_done() -> None:
    lines = list(
        logical_lines("cd tests && for f in a b; do\n  for g in x; do echo $g; done\n  pytest $f\ndone | tee log")
    )
    loop = find_loop(lines, 0)
    assert loop is not None
    assert (loop.before, loop.kind, loop.name, loop.items, loop.after, loop.lines) == (
        "cd tests &&",
        "for",
        "f",
        "a b",
        "| tee log",
        4,
    )
    assert "pytest $f" in loop.body and "for g in x" in loop.body
    (read,) = [find_loop(list(logical_lines("find t -name 'test_*.py' | while IFS= read -r f; do pytest $f; done")), 0)]
    assert read is not None and (read.kind, read.name, read.before) == ("while", "f", "find t -name 'test_*.py' |")
    assert find_loop(["echo for f in x"], 0) is None


def test_a_loop_over_a_glob_in_a_containers_string_reaches_only_its_files(tmp_path: Path) -> None:
    # The hardware script's shape: the loop runs in another container, whose checkout is /workspace/vllm.
    script = (
        "#!/bin/bash\n"
        'docker run --rm image /bin/bash -c "\n'
        "    set -e;\n"
        "    python3 -m pytest /workspace/vllm/tests/neuron/1_core/ -v;\n"
        "    for f in /workspace/vllm/tests/neuron/2_core/*.py; do\n"
        '        echo \\"Running test file: \\$f\\";\n'
        "        python3 -m pytest \\$f -v --capture=tee-sys;\n"
        "    done\n"
        '"\n'
    )
    root = project(tmp_path, step("bash .buildkite/run-neuron.sh"), {**FILES, ".buildkite/run-neuron.sh": script})
    findings = found(root)
    # Before: `$f` was "any file", so this one step reached every test of the tree and none was unrun.
    assert unrun(findings) == [
        "tests/models/test_gemma.py",
        "tests/models/test_llama.py",
        "tests/models/test_qwen.py",
        "tests/neuron/2_core/deep/test_deep.py",  # `*.py` stays in its folder
        "tests/other/test_x.py",
    ]
    assert not [f for f in findings if f.kind == "unresolved-target"]


def test_loops_over_lists_find_and_the_scripts_own_variables_reach_their_files(tmp_path: Path) -> None:
    script = (
        'MODELS="llama"\n'
        'if [[ -n "${FULL:-}" ]]; then MODELS="$MODELS qwen"; fi\n'
        "for m in $MODELS; do\n"
        '  pytest -v "tests/models/test_$m.py"\n'
        "done\n"
        "cd tests\n"
        "while read -r f; do pytest \"$f\"; done < <(find neuron/2_core -maxdepth 1 -name 'test_*.py')\n"
    )
    steps = step(
        "bash run.sh",
        "for f in tests/neuron/1_core/*.py tests/other/test_x.py; do pytest $f; done",
        "find tests/neuron/2_core/deep -name 'test_*.py' | while read f; do python3 -m pytest $f; done",
    )
    steps[0]["env"] = {"FULL": "1"}
    root = project(tmp_path, steps, {**FILES, "run.sh": script})
    findings = found(root)
    assert unrun(findings) == ["tests/models/test_gemma.py"]  # llama and qwen: both values of MODELS
    assert findings == [f for f in findings if f.kind == "unrun-test"]


def test_a_variable_no_one_can_bound_reaches_nothing_and_is_reported_once(tmp_path: Path) -> None:
    steps = step(
        'for f in $(curl -s https://example.com/list); do pytest "$f"; pytest -x "$f"; done',
        "pytest tests/neuron",
    )
    root = project(tmp_path, steps, FILES)
    findings = found(root)
    (unresolved,) = [f for f in findings if f.kind == "unresolved-target"]
    assert unresolved.step == "Neuron" and unresolved.variable == "$f"
    assert "runs pytest on `$f`, which the lint cannot resolve" in unresolved.message
    # It never reaches everything: the models and other tests are unrun.
    assert unrun(findings) == [
        "tests/models/test_gemma.py",
        "tests/models/test_llama.py",
        "tests/models/test_qwen.py",
        "tests/other/test_x.py",
    ]


def test_a_target_with_an_unknown_variable_outside_a_loop_reaches_nothing(tmp_path: Path) -> None:
    root = project(tmp_path, step("pytest tests/models/test_$MODEL.py", "pytest tests/neuron tests/other"), FILES)
    findings = found(root)
    assert [(f.kind, f.variable) for f in findings if f.kind == "unresolved-target"] == [
        ("unresolved-target", "tests/models/test_$MODEL.py")
    ]
    assert unrun(findings) == ["tests/models/test_gemma.py", "tests/models/test_llama.py", "tests/models/test_qwen.py"]


def test_while_read_over_a_list_file_reaches_the_files_it_names(tmp_path: Path) -> None:
    listing = "# the neuron suite\nneuron/1_core/test_one.py\n\n  neuron/2_core/test_two.py  \n"
    steps = [
        *step('cd tests && while read -r f; do python3 -m pytest -v "$f"; done < neuron/list.txt'),
        {
            "label": "Other",
            "platforms": ["cpu"],
            "commands": ["cat tests/other/list.txt | while read f; do pytest $f; done"],
        },
    ]
    files = {**FILES, "tests/neuron/list.txt": listing, "tests/other/list.txt": "tests/other/test_x.py\n"}
    findings = found(project(tmp_path, steps, files))
    assert unrun(findings) == [
        "tests/models/test_gemma.py",
        "tests/models/test_llama.py",
        "tests/models/test_qwen.py",
        "tests/neuron/2_core/deep/test_deep.py",
        "tests/neuron/2_core/test_three.py",  # not in the list
    ]
    assert not [f for f in findings if f.kind == "unresolved-target"]


def test_a_list_file_linked_out_of_the_checkout_is_not_read(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"  # a pull request's link to a file of the host
    outside.write_text("tests/models/test_llama.py\n")
    root = tmp_path / "checkout"
    project(root, step("while read f; do pytest $f; done < tests/list.txt"), FILES)
    (root / "tests" / "list.txt").symlink_to(outside)
    findings = found(root)
    assert "tests/models/test_llama.py" in unrun(findings)  # reached nothing through the link
    assert len(unrun(findings)) == 8


def test_an_unresolved_target_is_one_note_per_step_and_fails_no_lint(tmp_path: Path) -> None:
    from harness.ci.lint.findings import as_json, failing

    steps = step(
        'for f in $(curl -s https://example.com/list); do pytest "$f"; done',
        'while read f; do pytest $f; done < "$LIST"',
        "pytest tests",
    )
    findings = found(project(tmp_path, steps, FILES))
    (note,) = findings
    assert note.kind == "unresolved-target" and note.variable == "$f"
    assert "step 'Neuron' runs pytest on `$f`" in note.message
    assert failing(findings) == []  # a note: the lint passes
    assert '"severity": "note"' in as_json(findings)
    steps = step("pytest tests/models/test_$MODEL.py", 'for f in $(curl x); do pytest "$f"; done', "pytest tests")
    (note,) = found(project(tmp_path / "two", steps, FILES))
    assert note.variable == "tests/models/test_$MODEL.py $f"  # two targets, still one finding
    assert "`tests/models/test_$MODEL.py` and `$f`" in note.message
