"""Run inside the image's build (never on the host): one set of wheels installed into gpuci's venv, offline.

    python3 install_wheels.py FOLDER [--compile-later LIST]    (FOLDER holds requirements.txt and wheels/)
    python3 install_wheels.py --compile LIST

--compile-later writes the paths to compile to LIST instead, for a `--compile LIST` run beside the
project's own build (the project's layer: its build, often one core's work, hides the compile).

The first call (gpuci's own layer) also appends the extra CA bundle, unpacks uv from its wheel to
/opt/gpuci/bin/uv where that binary runs on this base, and makes the venv. uv installs where it is
there (in parallel, no pip in the venv); pip only where it is not: a wheelhouse filled without uv's
wheel (an air-gapped host), a base whose C library uv's binary cannot run on, or GPUCI_INSTALLER=pip
(a build arg). Bytecode is compiled, but not of the packages' own test suites (pandas/tests,
scipy's tests: half the files, never imported by a project's tests): images run with
PYTHONDONTWRITEBYTECODE, so without it every process of every run compiles what it imports (numpy,
scipy, pandas, matplotlib and networkx: 7.5 s to import with bytecode, 14-25 s without, on the loaded
2-core machine). FOLDER is removed after (its files stay only in the COPY layer below).

Standard library only, Python 3.8 and later: it runs on whatever Python the base image has.
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
import sys
import time
import zipfile

VENV = "/opt/gpuci/venv"
UV = "/opt/gpuci/bin/uv"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
SITE = "import sysconfig; print(' '.join(sorted({sysconfig.get_paths()[k] for k in ('purelib', 'platlib')})))"
NOT_COMPILED = r"/tests?/"  # the packages' own test suites


def say(text: str) -> None:
    print(f"gpuci: {text}", flush=True)


def unpack_uv(wheels: str) -> str | None:
    """uv's binary from its wheel in `wheels`, where it runs here; None: pip installs."""
    if os.environ.get("GPUCI_INSTALLER") == "pip":
        return None
    if os.path.exists(UV):
        return UV
    for wheel in sorted(glob.glob(os.path.join(wheels, "uv-*.whl"))):
        with zipfile.ZipFile(wheel) as archive:
            member = next((n for n in archive.namelist() if n.endswith(".data/scripts/uv")), None)
            if member is None:
                continue
            os.makedirs(os.path.dirname(UV), exist_ok=True)
            with archive.open(member) as source, open(UV, "wb") as target:
                shutil.copyfileobj(source, target)
        os.chmod(UV, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        if subprocess.run([UV, "--version"], capture_output=True).returncode == 0:
            return UV
        os.remove(UV)  # built for another C library or machine than this base's
        say(f"uv's binary from {os.path.basename(wheel)} does not run on this base: installing with pip")
    return None


BUNDLED = "import ensurepip, os, sys; print(os.path.dirname(ensurepip.__file__), sys.version_info >= (3, 12))"


def bundled_pip(python: str) -> list[str]:
    """The wheels `ensurepip` installs (pip, and setuptools before Python 3.12), where the base keeps them:
    Debian's /usr/share/python-wheels, or ensurepip's own _bundled folder."""
    done = subprocess.run([python, "-c", BUNDLED], capture_output=True, text=True)
    if done.returncode != 0:
        return []
    folder, newer = done.stdout.split()
    names = ["pip"] if newer == "True" else ["pip", "setuptools"]
    for where in ("/usr/share/python-wheels", os.path.join(folder, "_bundled")):
        found = [sorted(glob.glob(os.path.join(where, f"{name}-*.whl")))[-1:] for name in names]
        if all(found):
            return [wheel[0] for wheel in found]
    return []


def make_venv(uv: str | None) -> None:
    """gpuci's venv, seeing the base's own packages (a vendor's torch)."""
    python = shutil.which("python3") or sys.executable
    if uv:
        subprocess.run([uv, "venv", "--quiet", "--system-site-packages", "--python", python, VENV], check=True)
        # Steps still run `python -m pip` (uv installs without it): the base's bundled pip, offline,
        # where the base has ensurepip; none where it has not, as with `venv --without-pip`. uv puts in
        # the wheels ensurepip would (seconds faster); ensurepip itself where they are not found.
        bundled = bundled_pip(python)
        command = [uv, "pip", "install", "--quiet", "--python", f"{VENV}/bin/python", "--offline", "--no-index",
                   "--no-deps", *bundled]  # fmt: skip
        if not bundled or subprocess.run(command).returncode != 0:
            subprocess.run([f"{VENV}/bin/python", "-m", "ensurepip", "--default-pip"], capture_output=True)
        return
    # Bases without ensurepip (Debian's python3 with no python3-venv) make the venv with the system's pip.
    done = subprocess.run([python, "-m", "venv", "--system-site-packages", VENV], capture_output=True)
    if done.returncode != 0:
        subprocess.run([python, "-m", "venv", "--without-pip", "--system-site-packages", VENV], check=True)


def install(folder: str, uv: str | None, compile_later: str | None = None) -> None:
    requirements = os.path.join(folder, "requirements.txt")
    wheels = os.path.join(folder, "wheels")
    if not os.path.exists(requirements) or not os.path.getsize(requirements):
        return
    started = time.time()
    site = subprocess.run([f"{VENV}/bin/python", "-c", SITE], check=True, capture_output=True, text=True).stdout.split()
    before = {os.path.join(d, name) for d in site if os.path.isdir(d) for name in os.listdir(d)}
    if uv:
        say(f"installing with {subprocess.run([uv, '--version'], capture_output=True, text=True).stdout.strip()}")
        # uv unpacks each wheel into its cache, then links the files into the venv. Its cache in the venv's
        # own folder (a mount of its own in the layer's container): links, where a cache in /tmp (another
        # mount) made uv copy every file (1-2 s more CPU for numpy, scipy, pandas). Gone after.
        cache = os.path.join(VENV, ".gpuci-uv-cache")
        command = [uv, "pip", "install", "--quiet", "--python", f"{VENV}/bin/python", "--offline", "--no-index",
                   "--cache-dir", cache, "--link-mode", "hardlink", "--find-links", wheels,
                   "-r", requirements]  # fmt: skip
        try:
            subprocess.run(command, check=True, env={**os.environ, "UV_PYTHON_DOWNLOADS": "never"})
        finally:
            shutil.rmtree(cache, ignore_errors=True)
    else:
        say("installing with pip")
        command = [f"{VENV}/bin/python", "-m", "pip", "install", "--quiet", "--no-index", "--no-cache-dir",
                   "--no-compile", "--disable-pip-version-check", "--find-links", wheels,
                   "-r", requirements]  # fmt: skip
        subprocess.run(command, check=True)
    # What this install added only: what was there is compiled already.
    new = sorted(p for d in site if os.path.isdir(d) for p in (os.path.join(d, n) for n in os.listdir(d))
                 if p not in before and (os.path.isdir(p) or p.endswith(".py")))  # fmt: skip
    say("installed in %.1f s" % (time.time() - started))
    if compile_later is not None:
        with open(compile_later, "w") as out:
            out.writelines(f"{path}\n" for path in new)
    else:
        compile_bytecode(new)


def compile_bytecode(paths: list[str]) -> None:
    """Hash-checked bytecode: valid whatever the files' times (an image layer written with fixed times is
    the same layer each time)."""
    started = time.time()
    if paths:
        done = subprocess.run([f"{VENV}/bin/python", "-m", "compileall", "-q", "-j", "0", "-x", NOT_COMPILED,
                               "--invalidation-mode", "checked-hash", *paths],
                              stdout=subprocess.PIPE, text=True, errors="replace")  # fmt: skip
        # A package may ship a file this Python cannot compile (an old syntax, a template named .py): as pip
        # and uv do, it stays uncompiled, and an import of it fails as it would anywhere. Named, not fatal.
        failed = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("*** Error compiling '")]
        if failed:
            say(f"warning: {len(failed)} file(s) did not compile and stay source only: {', '.join(failed[:5])[:400]}")
        elif done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, "compileall", done.stdout[-2000:])
    say("compiled the bytecode in %.1f s" % (time.time() - started))


def forget_uv_times() -> None:
    """uv's `uv_cache.json` (when it read a local wheel or folder: its ctime) out of every dist-info and its
    RECORD: the one thing that differs between two installs of the same files, and uv only reads it to
    tell whether a local package changed since, which an image's packages never do."""
    site = subprocess.run([f"{VENV}/bin/python", "-c", SITE], check=True, capture_output=True, text=True).stdout.split()
    for found in sorted(p for d in site for p in glob.glob(os.path.join(d, "*.dist-info", "uv_cache.json"))):
        os.remove(found)
        record = os.path.join(os.path.dirname(found), "RECORD")
        if os.path.exists(record):
            prefix = os.path.basename(os.path.dirname(found)) + "/uv_cache.json,"
            with open(record) as handle:
                lines = [line for line in handle if not line.startswith(prefix)]
            with open(record, "w") as handle:
                handle.writelines(lines)


def main(argv: list[str]) -> int:
    if argv == ["--forget-uv-times"]:
        forget_uv_times()
        return 0
    if argv[:1] == ["--compile"]:
        with open(argv[1]) as listed:
            paths = [line.rstrip("\n") for line in listed if line.strip()]
        try:
            compile_bytecode(paths)
        except subprocess.CalledProcessError as exc:
            say(f"compiling the bytecode failed (exit {exc.returncode})")
            return 1
        return 0
    folder = os.path.abspath(argv[0])
    compile_later = argv[2] if argv[1:2] == ["--compile-later"] else None
    wheels = os.path.join(folder, "wheels")
    try:
        extra = os.path.join(folder, "extra-ca.crt")  # gpuci's layer carries it, on any base
        if os.path.exists(extra) and os.path.getsize(extra):
            os.makedirs(os.path.dirname(CA_BUNDLE), exist_ok=True)
            with open(extra, "rb") as source, open(CA_BUNDLE, "ab") as bundle:
                bundle.write(source.read())
        if not os.path.exists(f"{VENV}/bin/python"):
            make_venv(unpack_uv(wheels))
        else:
            unpack_uv(wheels)  # a base that is a gpuci image already: its venv is kept
        uv = UV if os.path.exists(UV) and os.environ.get("GPUCI_INSTALLER") != "pip" else None
        install(folder, uv, compile_later)
    except subprocess.CalledProcessError as exc:
        say(f"the install failed (exit {exc.returncode})")
        return 1
    shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
