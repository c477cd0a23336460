"""roles/gateway/files/wheelhouse.py: the hosts' wheelhouse, gathered on the controller for each host's target."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles/gateway/files/wheelhouse.py"
_spec = importlib.util.spec_from_file_location("wheelhouse", SCRIPT)
wheelhouse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wheelhouse)

TRIXIE = {
    "implementation_name": "cpython", "implementation_version": "3.13.5", "os_name": "posix", "sys_platform": "linux",
    "platform_machine": "x86_64", "platform_system": "Linux", "platform_python_implementation": "CPython",
    "python_version": "3.13", "python_full_version": "3.13.5", "glibc": "2.41",
}


def fake_wheel(path: Path, name: str, requires: list[str], requires_python: str | None = None) -> Path:
    lines = ["Metadata-Version: 2.1", f"Name: {name}", "Version: 1.0"]
    lines += [f"Requires-Python: {requires_python}"] if requires_python else []
    lines += [f"Requires-Dist: {r}" for r in requires]
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name.replace('-', '_')}-1.0.dist-info/METADATA", "\n".join(lines) + "\n\nbody\n")
    return path


def test_markers_are_evaluated_for_the_host_not_the_controller() -> None:
    lines = ['uvloop<1; sys_platform == "linux"', 'tomli; python_version < "3.11"', 'appnope; sys_platform == "darwin"',
             "pytest; extra == 'test'", "kio<0.7,>=0.6.5"]
    # whatever this controller is, the trixie host gets uvloop and kio and nothing else
    assert [r.name for r in wheelhouse.requirements_for(lines, TRIXIE)] == ["uvloop", "kio"]
    darwin_py310 = {**TRIXIE, "sys_platform": "darwin", "python_version": "3.10", "python_full_version": "3.10.1"}
    assert [r.name for r in wheelhouse.requirements_for(lines, darwin_py310)] == ["tomli", "appnope", "kio"]


def test_platform_tags_cover_every_manylinux_the_glibc_accepts() -> None:
    tags = wheelhouse.platform_tags("2.41", "aarch64")
    assert tags[0] == "manylinux_2_41_aarch64" and tags[-1] == "manylinux1_aarch64"
    assert {"manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64", "manylinux2010_aarch64"} <= set(tags)
    assert "manylinux_2_42_aarch64" not in tags
    assert all(tag.endswith("_aarch64") for tag in tags)


def test_target_names_tell_python_glibc_and_machine_apart() -> None:
    assert wheelhouse.target_name(TRIXIE) == "cp313-glibc2.41-x86_64"
    assert wheelhouse.target_name({**TRIXIE, "python_version": "3.11", "glibc": "2.36"}) == "cp311-glibc2.36-x86_64"


@pytest.mark.parametrize(("change", "reason"), [
    ({"python_full_version": "3.10.12", "python_version": "3.10"}, "requires Python >=3.11"),
    ({"implementation_name": "pypy"}, "only CPython is supported"),
    ({"glibc": ""}, "no glibc"),
])
def test_hosts_the_gateway_cannot_run_on_are_refused_before_any_download(tmp_path: Path, change: dict, reason: str) -> None:
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["kio"], ">=3.11")
    with pytest.raises(wheelhouse.TargetRefused, match=reason):
        wheelhouse.gather(sys.executable, project, {**TRIXIE, **change}, tmp_path / "out", offline=False)
    assert not (tmp_path / "out").exists()


def test_offline_refuses_a_target_it_has_no_set_for(tmp_path: Path) -> None:
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["kio"], ">=3.11")
    with pytest.raises(wheelhouse.TargetRefused, match="no wheel set for cp313-glibc2.41-x86_64.*is false"):
        wheelhouse.gather(sys.executable, project, TRIXIE, tmp_path / "out", offline=True)


def test_pick_takes_the_newest_wheel_that_fits_every_constraint(tmp_path: Path) -> None:
    for version in ("0.6.4", "0.6.5", "0.7.0"):
        fake_wheel(tmp_path / f"kio-{version}-cp313-cp313-manylinux_2_28_x86_64.whl", "kio", [])
    chosen = wheelhouse.pick(tmp_path, {"kio": wheelhouse.SpecifierSet(">=0.6.5,<0.7")})
    assert chosen["kio"].name.startswith("kio-0.6.5-")


PIP_SAID = Path(__file__).parent / "fixtures/pip_download"  # pip 26.3's stderr, captured as each file's name says


@pytest.mark.parametrize(("capture", "kind"), [
    ("offline.stderr", "NameResolutionError"),  # in a network namespace with only loopback
    ("refused.stderr", "NewConnectionError"),  # through a proxy address nothing listens on
    ("no_wheel.stderr", None),  # PyPI answered: no confluent-kafka wheel for glibc 2.27
])
def test_an_index_that_cannot_be_reached_is_told_apart_from_a_missing_wheel(capture: str, kind: str | None) -> None:
    assert wheelhouse.why_download_failed((PIP_SAID / capture).read_text()) == kind


def test_an_unreachable_index_is_reported_as_such_not_as_a_target_without_wheels(tmp_path: Path) -> None:
    """Offline (a proxy on loopback that nothing listens on): the error names the index, not the target."""
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["confluent-kafka<3,>=2.6"])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "target", "--project-wheel", str(project),
         "--target", json.dumps({**TRIXIE, "glibc": "2.27"})], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PIP_PROXY": "http://127.0.0.1:9", "PIP_RETRIES": "0"})  # the script still retries once
    assert proc.returncode == 1
    error = json.loads(proc.stdout)["error"]
    assert error.startswith("pip could not reach the package index (NewConnectionError)") and "glibc" not in error


@pytest.mark.parametrize(("setting", "retries"), [(None, 5), ("", 5), ("0", 1), ("3", 3)])
def test_pip_is_told_to_retry_at_least_once(setting: str | None, retries: int) -> None:
    assert wheelhouse.pip_retries(setting) == retries


def test_a_pip_retries_setting_that_is_not_a_number_is_refused_in_words(tmp_path: Path) -> None:
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["confluent-kafka<3,>=2.6"])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "target", "--project-wheel", str(project),
         "--target", json.dumps(TRIXIE)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PIP_RETRIES": "many"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["error"] == "PIP_RETRIES='many' is not a whole number of retries"


@pytest.mark.network
def test_a_glibc_without_confluent_kafka_wheels_is_refused_naming_the_dependency(tmp_path: Path) -> None:
    """Against PyPI (CI has it): confluent-kafka publishes manylinux_2_28 wheels, none for glibc 2.27."""
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["confluent-kafka<3,>=2.6"])
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(tmp_path / "out"), "target", "--project-wheel", str(project),
         "--target", json.dumps({**TRIXIE, "glibc": "2.27"})], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "no binary wheel of confluent-kafka<3,>=2.6 for CPython 3.13 on x86_64 with glibc 2.27" in json.loads(proc.stdout)["error"]


def test_the_archive_holds_the_set_the_gateway_and_the_stamp_and_is_made_once_per_digest(tmp_path: Path) -> None:
    result_dir = tmp_path / "cp313-glibc2.41-x86_64" / "abc"
    result_dir.mkdir(parents=True)
    fake_wheel(result_dir / "kio-0.6.5-cp313-cp313-manylinux_2_28_x86_64.whl", "kio", [])
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["kio"])
    first = wheelhouse.pack(result_dir, project, "d1")
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["kafka_gateway-1.0-py3-none-any.whl", "kio-0.6.5-cp313-cp313-manylinux_2_28_x86_64.whl",
                                         ".wheelset-d1"]
    assert {(m.uid, m.uname, m.mtime, m.mode) for m in members} == {(0, "root", 0, 0o644)}
    # the same wheels give the same bytes; a new digest (a rebuilt gateway wheel) replaces the archive
    made = first.read_bytes()
    first.unlink()
    assert wheelhouse.pack(result_dir, project, "d1").read_bytes() == made
    second = wheelhouse.pack(result_dir, project, "d2")
    assert sorted(p.name for p in result_dir.parent.glob("*.tar")) == [second.name] == ["abc-d2.tar"]


def fake_pip_wheel(calls: list[Path]):
    """subprocess.run standing in for `pip wheel`: a wheel whose bytes are the source's module, one call noted."""
    def run(argv: list[str], check: bool, env: dict) -> None:
        source, staging = Path(argv[-1]), Path(argv[argv.index("--wheel-dir") + 1])
        calls.append(source)
        with zipfile.ZipFile(staging / "kafka_gateway-0.1.0-py3-none-any.whl", "w") as archive:
            archive.writestr("gateway_app/__init__.py", (source / "gateway_app/__init__.py").read_bytes())
    return run


def test_the_project_wheel_is_built_once_per_source_and_again_when_the_source_changes(tmp_path: Path,
                                                                                        monkeypatch) -> None:
    source, out = tmp_path / "src", tmp_path / "wheelhouse"
    (source / "gateway_app/__pycache__").mkdir(parents=True)
    (source / "pyproject.toml").write_text("[project]\nname = 'kafka-gateway'\n")
    (source / "gateway_app/__init__.py").write_text("A = 1\n")
    calls: list[Path] = []
    monkeypatch.setattr(wheelhouse.subprocess, "run", fake_pip_wheel(calls))
    first = wheelhouse.build_project(sys.executable, source, out, offline=False)
    assert first["built"] and len(calls) == 1
    # bytecode and build output are not the source: still the same wheel, not built again
    (source / "gateway_app/__pycache__/__init__.cpython-311.pyc").write_bytes(b"\0")
    (source / "build/lib").mkdir(parents=True)
    again = wheelhouse.build_project(sys.executable, source, out, offline=False)
    assert again == {**first, "built": False} and len(calls) == 1
    # a changed file is a new build; so is a wheel replaced by another source's build of the same version
    (source / "gateway_app/__init__.py").write_text("A = 2\n")
    changed = wheelhouse.build_project(sys.executable, source, out, offline=False)
    assert changed["built"] and len(calls) == 2
    (source / "gateway_app/__init__.py").write_text("A = 1\n")
    assert wheelhouse.build_project(sys.executable, source, out, offline=False)["built"] and len(calls) == 3
    # no staging directory is left behind
    assert sorted(p.name for p in out.iterdir()) == ["project"]


def test_a_shared_dependency_cache_serves_another_checkout_without_a_download(tmp_path: Path, monkeypatch) -> None:
    downloads: list[list[str]] = []

    def pip_download(python: str, target: dict, requirements: list[str], dest: Path) -> None:
        downloads.append(requirements)
        fake_wheel(dest / "kio-0.6.5-cp313-cp313-manylinux_2_28_x86_64.whl", "kio", [])

    monkeypatch.setattr(wheelhouse, "pip_download", pip_download)
    project = fake_wheel(tmp_path / "kafka_gateway-1.0-py3-none-any.whl", "kafka-gateway", ["kio>=0.6"], ">=3.11")
    cache = tmp_path / "cache"
    first = wheelhouse.gather(sys.executable, project, TRIXIE, tmp_path / "one/out", offline=False, deps_cache=cache)
    assert first["downloaded"] and downloads == [["kio>=0.6"]]
    # another checkout, offline even: the set comes from the cache; each checkout's archive stays its own
    second = wheelhouse.gather(sys.executable, project, TRIXIE, tmp_path / "two/out", offline=True, deps_cache=cache)
    assert not second["downloaded"] and len(downloads) == 1
    assert first["deps_dir"] == second["deps_dir"] and Path(second["deps_dir"]).is_relative_to(cache)
    assert Path(first["archive"]).is_relative_to(tmp_path / "one/out")
    assert Path(second["archive"]).is_relative_to(tmp_path / "two/out") and Path(first["archive"]).exists()
    assert not list(cache.rglob("*.tar"))
