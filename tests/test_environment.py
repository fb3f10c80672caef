"""The environment files agree with each other, and the code never assumes a GPU."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from reactlib import paths

ROOT = paths.repo_root()


def _lock() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, ver = line.partition("==")
        assert sep, f"requirements.lock: {line!r} is not an exact pin"
        pins[canonicalize_name(name)] = Version(ver)
    return pins


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_lock_pins_every_dependency_within_its_range():
    lock = _lock()
    project = _pyproject()["project"]
    for spec in [*project["dependencies"], *project["optional-dependencies"]["dev"]]:
        req = Requirement(spec)
        name = canonicalize_name(req.name)
        assert name in lock, f"{req.name} is a dependency but requirements.lock does not pin it"
        assert req.specifier.contains(lock[name], prereleases=True), (
            f"requirements.lock pins {req.name}=={lock[name]}, outside {req.specifier}"
        )


def test_lock_keeps_the_cpu_torch_and_an_opencv_with_haar_cascades():
    lock = _lock()
    assert lock["torch"] == Version("2.13.0")
    assert lock["opencv-python-headless"] < Version("5")
    forbidden = {"opencv-python", "opencv-contrib-python", "mediapipe", "torchvision", "torchaudio"}
    assert not forbidden & lock.keys()
    assert not [n for n in lock if n.startswith(("nvidia-", "triton"))], "no CUDA packages"


def test_environment_yml_installs_the_same_lock_with_python_311():
    env = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    deps = env["dependencies"]
    assert "python=3.11" in deps
    requires = _pyproject()["project"]["requires-python"]
    assert "3.11" in requires
    pip_sections = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_sections == [["-r requirements.lock", "-e ."]], (
        "environment.yml installs exactly the lock and the package, and repeats no package name"
    )
    conda_names = {re.split(r"[=<>]", d)[0] for d in deps if isinstance(d, str)}
    assert conda_names == {"python", "pip"}, "packages come from the lock, not from conda"


def test_no_bare_cuda_calls_anywhere():
    offenders = []
    for path in [
        *ROOT.joinpath("reactlib").rglob("*.py"),
        *ROOT.joinpath("notebooks").glob("*.ipynb"),
    ]:
        text = path.read_text(encoding="utf-8")
        if re.search(r"\.cuda\(\)", text):
            offenders.append(str(path.relative_to(ROOT)))
    assert not offenders, f"use rl.runtime.select_device instead of .cuda(): {offenders}"


def test_ci_script_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = [
        line.strip() for line in ci.splitlines() if line.strip() and not line.startswith("#")
    ]
    assert commands[-1] == "make test"
    assert "make test" in readme and "make run" in readme
