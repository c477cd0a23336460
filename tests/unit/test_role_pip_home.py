"""The roles' pip (the gateway_pip role's `files/pip_home.py`, which the gateway and gateway_network roles include):
the host's ensurepip wheel of pip, unpacked once into a pip home where Python caches its compiled modules, and run
with a `--without-pip` venv's own Python."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import jinja2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


PIP_HOME_CODE = (ROOT / "roles/gateway_pip/files/pip_home.py").read_text()


def run_pip(venv: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pip as gateway_pip's install task runs it: `VENV/bin/python -I -c <pip_home.py> HOME <pip arguments>`."""
    return subprocess.run([str(venv / "bin/python"), "-I", "-c", PIP_HOME_CODE, str(home), *args], capture_output=True,
                          text=True, timeout=120, check=True)


@pytest.fixture
def venv(tmp_path: Path) -> Path:
    path = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    return path


def included_pip(role: str) -> dict:
    """The vars the role's install passes to gateway_pip's install task."""
    tasks = yaml.safe_load((ROOT / f"roles/{role}/tasks/install.yml").read_text())
    [task] = [t for t in tasks if t.get("ansible.builtin.include_role", {}).get("name") == "gateway_pip"]
    assert task["ansible.builtin.include_role"]["tasks_from"] == "install"
    return task["vars"]


def render(text: str, variables: dict) -> str:
    """`text` templated as Ansible would, through the variables it names in turn."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["dirname"] = os.path.dirname
    while "{{" in text:
        text = env.from_string(text).render(variables)
    return text


def test_both_roles_install_with_the_shared_pip_into_one_pip_home_by_default() -> None:
    variables = {}
    for path in ("gateway/defaults", "gateway_network/defaults", "gateway_network/vars"):
        variables |= yaml.safe_load((ROOT / f"roles/{path}/main.yml").read_text())
    homes = {role: render(included_pip(role)["_gateway_pip_home"], variables) for role in ("gateway", "gateway_network")}
    assert homes == {"gateway": "/opt/kafka-gateway/pip", "gateway_network": "/opt/kafka-gateway/pip"}
    for role in ("gateway", "gateway_network"):
        assert "--no-index" in str(included_pip(role)["_gateway_pip_args"]), f"{role} installs without the network"


def probe_wheel(wheels: Path) -> None:
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "probe_pkg-1.0-py3-none-any.whl", "w") as wheel:
        wheel.writestr("probe_pkg/__init__.py", "VALUE = 42\n")
        wheel.writestr("probe_pkg-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: probe-pkg\nVersion: 1.0\n")
        wheel.writestr("probe_pkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr("probe_pkg-1.0.dist-info/RECORD", "")


def test_pip_is_unpacked_once_and_installs_offline_into_the_venv_that_runs_it(tmp_path: Path, venv: Path) -> None:
    home = tmp_path / "pip"
    home.mkdir()
    (home / "pip-0.1-py3-none-any-cpython-30-0123456789abcdef").mkdir()  # a host's pip wheel before an upgrade
    (home / ".unpacking-abandoned").mkdir()  # a run killed while unpacking
    (home / "kept").mkdir()  # not the role's
    probe_wheel(tmp_path / "wheels")

    run_pip(venv, home, "install", "--quiet", "--no-index", "--disable-pip-version-check",
            "--find-links", str(tmp_path / "wheels"), "probe-pkg==1.0")
    done = subprocess.run([str(venv / "bin/python"), "-c", "import probe_pkg, sys; print(probe_pkg.VALUE, sys.prefix)"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["42", str(venv)]
    assert not list(venv.glob("lib/python*/site-packages/pip")), "the venv holds no pip of its own"

    unpacked = [p for p in home.iterdir() if p.name.startswith("pip-")]
    assert len(unpacked) == 1, "the older pip is removed"
    assert f"-{sys.implementation.cache_tag}-" in unpacked[0].name
    assert sorted(p.name for p in home.iterdir()) == sorted([unpacked[0].name, "kept"])
    compiled = {p: p.stat().st_mtime_ns for p in (unpacked[0] / "pip/_internal/__pycache__").glob("*.pyc")}
    assert compiled, "the first run leaves pip's compiled modules beside it"

    again = run_pip(venv, home, "--version")
    assert f"from {unpacked[0]}/pip " in again.stdout
    assert [p for p in home.iterdir() if p.name.startswith("pip-")] == unpacked
    assert {p: p.stat().st_mtime_ns for p in (unpacked[0] / "pip/_internal/__pycache__").glob("*.pyc")} == compiled, \
        "the second run reuses them"
