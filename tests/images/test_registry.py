"""Images by digest through a real registry (Debian's docker-registry) and the real engine."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import docker
import pytest

from harness.images import engine
from harness.run.cleanup.reaper import PROJECT_LABEL, project_id
from tests.conftest import commit_tree, git
from tests.registry_server import RegistryServer

AREA = """\
platforms: [cpu]
steps:
  - label: check
    commands: ["echo commit=$(cat marker.txt)"]
"""


@pytest.fixture
def project(make_project, cpu_image, monkeypatch) -> Path:
    """A committed project whose cpu recipe is its own (one more label): its own content tag, so a test
    can delete its image without touching the image the rest of the suite shares. The agent's policy
    (outside the checkout) grants the registries `configure` names."""
    root = make_project(AREA, name="reg")
    (root.parent / "agent-policy.toml").write_text("")  # grants nothing until `configure` says
    monkeypatch.setenv("GPUCI_POLICY", str(root.parent / "agent-policy.toml"))
    dockerfile = root / "containers" / "cpu" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + f"LABEL gpuci.test={uuid.uuid4().hex}\n")
    (root / "marker.txt").write_text("first\n")
    (root / ".gitignore").write_text(".gpuci/\n")
    commit_tree(root, "first")
    return root


def configure(root: Path, registry: str, credentials: bool = False) -> None:
    """The project asks for `registry`; the host's policy grants it (with the credentials' variables)."""
    (root / "pyproject.toml").write_text(f'[tool.gpuci]\nregistry = "{registry}"\n')
    grant = 'username_env = "REG_USER"\npassword_env = "REG_PASS"\n' if credentials else ""
    (root.parent / "agent-policy.toml").write_text(f'[registries."{registry}"]\n{grant}')


def local_tag(run_harness, root: Path) -> str:
    return run_harness("image", "tag", "--platform", "cpu", "--root", str(root)).stdout.strip()


def remove_local(client: docker.DockerClient, root: Path, run_harness, registry: RegistryServer) -> None:
    """The project's image gone from this host: by tag, by registry tag and by digest (a repro pulls by digest)."""
    tag = local_tag(run_harness, root)
    names = (tag, f"{registry.address}/gpuci-cpu:{tag.split(':')[1]}")
    for image in engine.list_images(client):
        if set(names) & set(image.tags) or any(d.startswith(f"{registry.address}/gpuci-cpu@") for d in image.digests):
            engine.remove_image(client, image.id, force=True)


def latest_report(root: Path) -> dict:
    return json.loads((root / ".gpuci" / "runs" / "latest" / "report.json").read_text())


def test_publish_pushes_once_and_runs_pull_the_same_digest(project, registry, run_harness, docker_client) -> None:
    configure(project, registry.address)
    first = run_harness("image", "publish", "--platform", "cpu", "--root", str(project))
    assert first.returncode == 0, first.stderr
    pinned = first.stdout.strip()
    content_tag = local_tag(run_harness, project).split(":")[1]
    served = registry.manifest_digest("ci/gpuci-cpu", content_tag)
    assert served and pinned == f"{registry.address}/gpuci-cpu@{served}"
    record = json.loads(next((project / ".gpuci" / "images" / "published").glob("cpu-*.json")).read_text())
    assert record["digest"] == served and record["packages"]["python"]["pytest"]

    again = run_harness("image", "publish", "--platform", "cpu", "--root", str(project))
    assert again.returncode == 0 and again.stdout.strip() == pinned
    assert "nothing pushed, nothing built" in again.stderr and "pushing" not in again.stderr

    remove_local(docker_client, project, run_harness, registry)
    done = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert done.returncode == 0, done.stderr
    assert "pulling" in done.stderr and "building" not in done.stderr
    image = latest_report(project)["image"]
    assert image["pulled"] is True and image["built"] is False
    assert image["repo_digest"] == pinned
    assert image["id"] == docker_client.images.get(pinned).id


def test_a_missing_tag_is_built_and_said_and_build_skips_the_pull(project, registry, run_harness) -> None:
    configure(project, registry.address)
    done = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert done.returncode == 0, done.stderr
    assert f"the registry {registry.address} has no" in done.stderr and "building it here" in done.stderr
    report = latest_report(project)["image"]
    assert report["built"] is True and report["repo_digest"] is None


def test_repro_pulls_the_recorded_digest_or_refuses_and_rebuild_lists_differences(
    project, registry, run_harness, docker_client, tmp_path
) -> None:
    configure(project, registry.address)
    git(project, "add", "-A")
    git(project, "commit", "-qm", "registry")
    assert run_harness("image", "publish", "--platform", "cpu", "--root", str(project)).returncode == 0
    remove_local(docker_client, project, run_harness, registry)
    assert run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project)).returncode == 0
    original_path = (project / ".gpuci" / "runs" / "latest" / "report.json").resolve()
    original = json.loads(original_path.read_text())

    remove_local(docker_client, project, run_harness, registry)
    done = run_harness("repro", str(original_path), "--root", str(project))
    assert done.returncode == 0, done.stderr
    assert f"pulled {original['image']['repo_digest']}" in done.stderr
    (mine,) = (project / ".gpuci" / "runs").glob("repro-*/report.json")
    assert json.loads(mine.read_text())["image"]["id"] == original["image"]["id"]

    # The registry loses it: refused, with the way out named; nothing left running.
    remove_local(docker_client, project, run_harness, registry)
    registry.delete("ci/gpuci-cpu", original["image"]["repo_digest"].split("@")[1])
    refused = run_harness("repro", str(original_path), "--root", str(project))
    assert refused.returncode == 75, refused.stderr
    assert "no longer has" in refused.stderr and "--rebuild" in refused.stderr and "Traceback" not in refused.stderr
    # This project's containers: another test of this file may be running its own "reg" area beside it.
    mine = ["gpuci.area=reg", f"{PROJECT_LABEL}={project_id(project)}"]
    assert not engine.list_containers(docker_client, mine)

    # A rebuild says loudly it is not the same container and lists what differs from the recorded packages.
    edited = json.loads(original_path.read_text())
    edited["image"]["id"] = "sha256:" + "0" * 64
    edited["image"]["packages"]["python"]["pytest"] = "0.0.1"
    path = tmp_path / "report.json"
    path.write_text(json.dumps(edited))
    rebuilt = run_harness("repro", str(path), "--root", str(project), "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "NOT IDENTICAL" in rebuilt.stderr
    assert "python pytest: 0.0.1 → " in rebuilt.stderr


def test_credentials_work_and_never_reach_output_reports_or_records(
    project, private_registry, run_harness, docker_client
) -> None:
    password = "reg-pa55-hunter2-xyz"
    configure(project, private_registry.address, credentials=True)
    wrong = run_harness(
        "image", "publish", "--platform", "cpu", "--root", str(project), REG_USER="ci-bot", REG_PASS="nope-nope"
    )
    assert wrong.returncode == 75 and "refused the credentials" in wrong.stderr and "docker login" in wrong.stderr
    assert "Traceback" not in wrong.stderr

    done = run_harness(
        "image", "publish", "--platform", "cpu", "--root", str(project), REG_USER="ci-bot", REG_PASS=password
    )
    assert done.returncode == 0, done.stderr
    tag = local_tag(run_harness, project).split(":")[1]
    assert private_registry.manifest_digest("ci/gpuci-cpu", tag, ("ci-bot", password)) in done.stdout
    remove_local(docker_client, project, run_harness, private_registry)
    ran = run_harness(
        "run", "--platform", "cpu", "--area", "reg", "--root", str(project), REG_USER="ci-bot", REG_PASS=password
    )
    assert ran.returncode == 0, ran.stderr
    written = "".join(p.read_text(errors="replace") for p in (project / ".gpuci").rglob("*") if p.is_file())
    for text in (done.stdout, done.stderr, ran.stdout, ran.stderr, written):
        assert password not in text


def test_an_unreachable_registry_is_exit_75_naming_it_and_leaves_nothing(project, run_harness, docker_client) -> None:
    configure(project, "127.0.0.1:9/ci")  # the discard port: nothing listens
    done = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert done.returncode == 75
    assert "the registry 127.0.0.1:9/ci cannot be reached" in done.stderr and "Traceback" not in done.stderr
    assert latest_report(project)["outcome"] == "infrastructure"
    # This project's containers: another test of this file may be running its own "reg" area beside it.
    mine = ["gpuci.area=reg", f"{PROJECT_LABEL}={project_id(project)}"]
    assert not engine.list_containers(docker_client, mine)
    published = run_harness("image", "publish", "--platform", "cpu", "--root", str(project))
    assert published.returncode == 75 and "cannot be reached" in published.stderr
    assert not (project / ".gpuci" / "images" / "published").exists()


def test_a_registry_that_is_not_an_address_is_a_usage_error(project, run_harness) -> None:
    configure(project, "https://registry.example.com/ci")
    done = run_harness("image", "publish", "--platform", "cpu", "--root", str(project))
    assert done.returncode == 2 and "HOST[:PORT][/PATH]" in done.stderr and "pyproject.toml" in done.stderr


def test_save_and_load_carry_an_image_and_the_report_names_the_file(
    project, run_harness, docker_client, tmp_path
) -> None:
    out = tmp_path / "cpu.tar.gz"
    saved = run_harness("image", "save", "--platform", "cpu", "-o", str(out), "--root", str(project))
    assert saved.returncode == 0, saved.stderr
    digest = saved.stdout.split("sha256:")[1].strip()
    tag = local_tag(run_harness, project)
    docker_client.images.remove(tag)
    loaded = run_harness("image", "load", str(out), "--root", str(project))
    assert loaded.returncode == 0, loaded.stderr and tag in loaded.stdout
    ran = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert ran.returncode == 0 and "building" not in ran.stderr
    assert latest_report(project)["image"]["archive"]["sha256"] == digest


def test_a_pulled_image_whose_label_disagrees_with_its_tag_is_never_used(
    project, registry, run_harness, docker_client, cpu_image
) -> None:
    """Someone with push rights put another image (the suite's own cpu image) under this recipe's tag."""
    configure(project, registry.address)
    content_tag = local_tag(run_harness, project).split(":")[1]
    ref = f"{registry.address}/gpuci-cpu:{content_tag}"
    docker_client.api.tag(cpu_image.id, f"{registry.address}/gpuci-cpu", content_tag)
    for chunk in docker_client.api.push(f"{registry.address}/gpuci-cpu", tag=content_tag, stream=True, decode=True):
        assert "error" not in chunk, chunk
    docker_client.api.remove_image(ref)
    done = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert done.returncode == 0, done.stderr
    assert "not used" in done.stderr and "building it here" in done.stderr
    image = latest_report(project)["image"]
    assert image["built"] is True and image["id"] != cpu_image.id


def test_gpucis_state_from_git_or_through_a_link_is_refused(project, run_harness, tmp_path) -> None:
    planted = project / ".gpuci" / "wheelhouse"
    planted.mkdir(parents=True)
    (planted / "evil-1.0-py3-none-any.whl").write_bytes(b"PK planted")
    (project / ".gpuci" / "wheel-hashes.json").write_text("{}")
    git(project, "add", "-f", ".gpuci")
    git(project, "commit", "-qm", "a pull request commits gpuci's state")
    for command in (("run", "--platform", "cpu", "--area", "reg"), ("image", "tag", "--platform", "cpu")):
        done = run_harness(*command, "--root", str(project))
        assert done.returncode == 2 and "git rm -r --cached .gpuci" in done.stderr, done.stderr
        assert "evil-1.0" in done.stderr and "Traceback" not in done.stderr
    git(project, "rm", "-rq", "--cached", ".gpuci")
    git(project, "commit", "-qm", "untracked")
    import shutil

    shutil.rmtree(planted)
    (tmp_path / "elsewhere").mkdir()
    planted.symlink_to(tmp_path / "elsewhere", target_is_directory=True)  # a link to any host folder
    done = run_harness("run", "--platform", "cpu", "--area", "reg", "--root", str(project))
    assert done.returncode == 2 and "is a link" in done.stderr and "Traceback" not in done.stderr
