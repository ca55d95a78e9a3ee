"""Every build backend is asked what its builds need, in a container, and gets it installed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from harness.declare.pyproject import read_pyproject
from harness.errors import UsageError
from harness.images.airgap import bootstrap_base
from harness.images.backend_requires import backend_requires
from harness.images.project_install import project_install
from harness.images.resolve import ResolveWith, ask_image
from harness.images.wheels import copy_verified, record_path
from tests.conftest import ROOT

WHEELHOUSE = ROOT / ".gpuci" / "wheelhouse"
PYPROJECT = (
    '[build-system]\nrequires = [{requires}]\nbuild-backend = "{backend}"\n\n'
    '[project]\nname = "{name}"\nversion = "0.1"\n'
)
SETUP_PY = "from setuptools import setup\nsetup(name='st_setup_py', version='0.1', py_modules=['st_setup_py'])\n"
CMAKE = """\
cmake_minimum_required(VERSION 3.15)
project(skb_lib LANGUAGES C)
find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
python_add_library(_skb MODULE skb.c WITH_SOABI)
install(TARGETS _skb DESTINATION .)
"""
SKB_C = """\
#include <Python.h>
static PyObject *answer(PyObject *self, PyObject *args) { return PyLong_FromLong(42); }
static PyMethodDef methods[] = {{"answer", answer, METH_NOARGS, ""}, {NULL, NULL, 0, NULL}};
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_skb", NULL, -1, methods};
PyMODINIT_FUNC PyInit__skb(void) { return PyModule_Create(&module); }
"""
# name: (build-system requires, build-backend, extra files)
BACKENDS = {
    "st_setup_py": (None, None, {"setup.py": SETUP_PY}),
    "st_pyproject": ('"setuptools>=64"', "setuptools.build_meta", {}),
    "hatch_lib": ('"hatchling"', "hatchling.build", {}),
    "flit_lib": ('"flit_core>=3.4"', "flit_core.buildapi", {}),
    "pdm_lib": ('"pdm-backend"', "pdm.backend", {}),
    "poetry_lib": ('"poetry-core>=1.9"', "poetry.core.masonry.api", {}),
    "skb_lib": ('"scikit-build-core>=0.10"', "scikit_build_core.build", {"CMakeLists.txt": CMAKE, "skb.c": SKB_C}),
    "maturin_lib": ('"maturin>=1,<2"', "maturin", {
        "Cargo.toml": '[package]\nname = "maturin_lib"\nversion = "0.1.0"\nedition = "2021"\n',
        "src/main.rs": 'fn main() { println!("hello from rust"); }\n'}),
}  # fmt: skip


def _project(root: Path, name: str) -> Path:
    requires, backend, files = BACKENDS[name]
    root.mkdir(parents=True)
    if requires is not None:
        text = PYPROJECT.format(requires=requires, backend=backend, name=name)
        if name == "flit_lib":
            text = text.replace('version = "0.1"', 'version = "0.1"\ndescription = "x"')
        if name == "poetry_lib":
            text += f'\n[tool.poetry]\nname = "{name}"\nversion = "0.1"\ndescription = "x"\nauthors = []\n'
        if name == "maturin_lib":
            text += '\n[tool.maturin]\nbindings = "bin"\n'
        (root / "pyproject.toml").write_text(text)
    if name.endswith("_lib") and name not in ("skb_lib", "maturin_lib"):
        (root / "src" / name).mkdir(parents=True)
        (root / "src" / name / "__init__.py").write_text('"""A tiny library."""\n__version__ = "0.1"\nVALUE = 42\n')
    else:
        (root / f"{name}.py").write_text("VALUE = 42\n")
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text)
    return root


def test_each_backend_is_asked_in_a_container_and_answers(docker_client, tmp_path: Path) -> None:
    base = bootstrap_base(docker_client)
    target = ask_image(docker_client, base)
    constraints = ROOT / "containers" / "requirements.txt"
    answers = {}
    for name in BACKENDS:
        root = _project(tmp_path / name, name)
        install = project_install(root, "editable", "/workspace", read_pyproject(root))
        assert install is not None
        answers[name] = backend_requires(
            docker_client, base, root, install, target, ResolveWith(WHEELHOUSE, None, constraints)
        )
    print(json.dumps(answers, indent=1))
    names = {k: {re.split(r"[<>=!~;\[ ]", a, maxsplit=1)[0].lower() for a in v} for k, v in answers.items()}
    assert "editables" in names["hatch_lib"]  # hatchling's editable build: not in [build-system] requires
    assert {"cmake", "ninja"} <= names["skb_lib"]  # the bare base has neither: scikit-build-core asks for both
    for name in ("flit_lib", "poetry_lib", "st_pyproject"):
        assert "editables" not in names[name]
    # Nothing ran on the host: setuptools' egg_info ran in the container, not in the project's folder.
    assert not list((tmp_path / "st_setup_py").glob("*.egg-info"))


def test_a_backend_that_fails_when_asked_is_the_project_s_to_fix(docker_client, tmp_path: Path) -> None:
    base = bootstrap_base(docker_client)
    root = _project(tmp_path / "st_setup_py", "st_setup_py")
    (root / "setup.py").write_text("from setuptools import setup\nimport no_such_module_here\nsetup(name='x')\n")
    install = project_install(root, "editable", "/workspace", read_pyproject(root))
    assert install is not None
    with pytest.raises(UsageError) as err:
        backend_requires(docker_client, base, root, install, ask_image(docker_client, base), ResolveWith(WHEELHOUSE))
    assert f"{root}/setup.py" in str(err.value) and "No module named 'no_such_module_here'" in str(err.value)


def test_only_a_legacy_setup_py_imports_from_its_folder(docker_client, tmp_path: Path) -> None:
    """pip runs setuptools.build_meta's hooks with the project's folder off the path (only the legacy
    backend puts it on): Bottleneck's setup.py imports the versioneer its build requires, not the older
    versioneer.py beside it. Asking the backend sees the same modules as pip's build."""
    base = bootstrap_base(docker_client)
    target = ask_image(docker_client, base)
    setup = "import here_only\nfrom setuptools import setup\nsetup(name='x', version=here_only.V, py_modules=[])\n"
    answers = {}
    for name in ("st_setup_py", "st_pyproject"):
        root = _project(tmp_path / name, name)
        (root / "setup.py").write_text(setup)
        (root / "here_only.py").write_text("V = '0.1'\n")
        install = project_install(root, "editable", "/workspace", read_pyproject(root))
        assert install is not None
        try:
            answers[name] = backend_requires(docker_client, base, root, install, target, ResolveWith(WHEELHOUSE))
        except UsageError as err:
            answers[name] = str(err)
    assert isinstance(answers["st_setup_py"], tuple), answers  # legacy: its folder first on the path
    assert "No module named 'here_only'" in str(answers["st_pyproject"]), answers  # as pip's build says


def test_the_backend_s_answer_is_input_checked_before_the_resolver_sees_it(tmp_path: Path) -> None:
    from harness.errors import ImageBuildError
    from harness.images.backend_requires import _answer
    from harness.images.in_image.ask_backend import MARKER

    install = project_install(
        hatch_lib := _project(tmp_path / "hatch_lib", "hatch_lib"), "editable", "/workspace", read_pyproject(hatch_lib)
    )
    assert install is not None

    def said(data: object) -> str:
        return f"noise the project printed\n{MARKER}{json.dumps(data)}\n"

    assert _answer(said({"wheel": [], "editable": ["editables~=0.3"]}), install, tmp_path) == ["editables~=0.3"]
    for hostile in ("pkg @ https://evil.example/pkg.whl", "-r /etc/shadow", "x" * 400):
        with pytest.raises(UsageError, match="not a requirement by name"):
            _answer(said({"wheel": [hostile]}), install, tmp_path)
    with pytest.raises(ImageBuildError, match="not a short list"):
        _answer(said({"wheel": ["a"] * 1000}), install, tmp_path)
    with pytest.raises(UsageError, match="failed when asked") as err:
        _answer(said({"error": "Traceback …\nValueError: bad config"}), install, tmp_path)
    assert f"{tmp_path}/pyproject.toml" in str(err.value) and "ValueError: bad config" in str(err.value)


def test_the_backend_s_wheels_are_recorded_as_gpuci_s_own_fetch(docker_client, tmp_path: Path, capsys) -> None:
    # A fresh project's wheelhouse: everything in it was fetched by gpuci, the build backend's wheels
    # included, so the build never says it found wheels "gpuci did not fetch" (put there by hand).
    base = bootstrap_base(docker_client)
    root = _project(tmp_path / "hatch_lib", "hatch_lib")
    install = project_install(root, "editable", "/workspace", read_pyproject(root))
    assert install is not None
    house = tmp_path / "fresh-wheelhouse"
    constraints = ROOT / "containers" / "requirements.txt"
    backend_requires(
        docker_client, base, root, install, ask_image(docker_client, base), ResolveWith(house, None, constraints)
    )
    recorded = json.loads(record_path(root).read_text())
    assert any(name.startswith("hatchling-") for name in recorded), recorded
    assert set(recorded) == {p.name for p in house.glob("*.whl")}
    capsys.readouterr()
    copy_verified(root, house, tmp_path / "context")
    assert "did not fetch" not in capsys.readouterr().err


# The project's setup.py, run where the backend is asked: it floods its output, then says what its
# container may use (the cgroup's limits) and whether it holds any capability.
FLOODING_SETUP_PY = """\
import os, sys
chunk = "x" * (1 << 20) + "\\n"
for _ in range(int(os.environ.get("FLOOD_MIB", "192"))):
    sys.stdout.write(chunk)
sys.stdout.flush()
def read(*paths):  # cgroup v2, else v1
    for path in paths:
        try:
            return open(path).read().strip()
        except OSError:
            pass
    return "unknown"
capabilities = [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]
pids = read("/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/pids/pids.max")
memory = read("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
raise RuntimeError(f"posture pids={pids} memory={memory} caps={capabilities}")
"""

ASK_IN_A_FRESH_PROCESS = """\
import sys
from pathlib import Path
import docker
from harness.errors import UsageError
from harness.images.airgap import bootstrap_base
from harness.images.backend_requires import backend_requires
from harness.declare.pyproject import read_pyproject
from harness.images.project_install import project_install
from harness.images.resolve import ResolveWith, ask_image
client = docker.from_env()
base = bootstrap_base(client)
root = Path(sys.argv[1])
install = project_install(root, "editable", "/workspace", read_pyproject(root))
image = ask_image(client, base)
# The peak from here on only: building the base (on a fresh engine) is not the read being measured.
Path("/proc/self/clear_refs").write_text("5")
try:
    backend_requires(client, base, root, install, image, ResolveWith(Path(sys.argv[2])))
except UsageError as exc:
    print(str(exc).splitlines()[0][-400:])
peak = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
print("maxrss_kib", peak.split()[1])
"""


def test_the_backend_s_container_is_limited_and_its_output_read_bounded(tmp_path: Path) -> None:
    """The backend runs the project's code: its container gets limits and no capabilities, and a flood
    of output is never read whole into the host's memory."""
    import subprocess
    import sys

    root = _project(tmp_path / "st_setup_py", "st_setup_py")
    (root / "setup.py").write_text(FLOODING_SETUP_PY)
    done = subprocess.run(
        [sys.executable, "-c", ASK_IN_A_FRESH_PROCESS, str(root), str(WHEELHOUSE)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    posture = re.search(r"posture pids=(\w+) memory=(\w+) caps=([0-9a-f]+)", done.stdout)
    assert posture, done.stdout[-2000:]
    pids, memory, caps = posture.groups()
    # No limit reads "max" (v1's memory: a number near 2**63).
    assert pids.isdigit() and memory.isdigit() and int(memory) < 2**40 and int(caps, 16) == 0, posture.group(0)
    maxrss_mib = int(done.stdout.split("maxrss_kib")[1].split()[0]) // 1024
    assert maxrss_mib < 160, f"gpuci held {maxrss_mib} MiB while reading 192 MiB of the backend's output"


def _setuptools_project(root: Path, requires: str, files: dict[str, str]) -> Path:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        PYPROJECT.format(requires=requires, backend="setuptools.build_meta", name="stk")
    )
    (root / "stk.py").write_text("VALUE = 42\n")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_setuptools_answer_is_known_without_asking_only_where_its_files_tell(tmp_path: Path) -> None:
    from harness.images.backend_requires import known_answer

    def answer(name: str, requires: str, files: dict[str, str]) -> tuple[str, ...] | None:
        root = _setuptools_project(tmp_path / name, requires, files)
        install = project_install(root, "editable", "/workspace", read_pyproject(root))
        assert install is not None
        return known_answer(root, install)

    assert answer("plain", '"setuptools>=77.0.3"', {}) == ()
    assert answer("cfg", '"setuptools>=77"', {"setup.cfg": "[flake8]\nmax-line-length = 99\n"}) == ()
    assert answer("old", '"setuptools>=64"', {}) is None  # before 70.1 it asks for `wheel`
    assert answer("setup_py", '"setuptools>=77"', {"setup.py": SETUP_PY}) is None  # setup.py may ask for more
    assert answer("setup_requires", '"setuptools>=77"', {"setup.cfg": "[options]\nsetup_requires = cffi\n"}) is None
    hatch = _project(tmp_path / "hatch_lib", "hatch_lib")
    assert known_answer(hatch, project_install(hatch, "editable", "/workspace", read_pyproject(hatch))) is None


def test_the_known_answer_is_what_the_backend_says_when_asked(docker_client, tmp_path: Path, monkeypatch) -> None:
    from harness.images import backend_requires as module

    base = bootstrap_base(docker_client)
    root = _setuptools_project(tmp_path / "stk", '"setuptools>=77.0.3"', {"setup.cfg": "[metadata]\nname = stk\n"})
    install = project_install(root, "editable", "/workspace", read_pyproject(root))
    assert install is not None and module.known_answer(root, install) == ()
    monkeypatch.setattr(module, "known_answer", lambda *_: None)  # asked in the container, as before
    using = ResolveWith(WHEELHOUSE, None, ROOT / "containers" / "requirements.txt")
    assert backend_requires(docker_client, base, root, install, ask_image(docker_client, base), using) == ()
