#!/usr/bin/env python3
"""The hosts' wheelhouse, built on the controller whatever the controller's Python.

    wheelhouse.py project --source . --out build/wheelhouse      # the gateway's own pure wheel, once
    wheelhouse.py target --project-wheel build/wheelhouse/project/kafka_gateway-0.1.0-py3-none-any.whl \
                  --target '{"python_full_version": "3.13.5", "platform_machine": "x86_64", "glibc": "2.41", ...}' \
                  --out build/wheelhouse                        # its dependencies' wheels for one host target

The target is what the host's own Python reported (its PEP 508 marker environment plus its glibc). pip resolves
markers with the controller's environment even when told another --platform/--python-version, so a macOS or
Python 3.12 controller would drop `uvloop; sys_platform == 'linux'` or a `python_version` dependency. This script
evaluates every Requires-Dist against the host's environment itself and lets pip only download, one round per
level of the dependency tree (`pip download --no-deps --only-binary=:all:` with the host's tags), until the set is
closed. The set goes into OUT/<target>/<key>/ (key: target + evaluated requirements), or DEPS_CACHE/<target>/<key>/ with
--deps-cache (a directory outside the checkout that several share), so a second run, a new gateway version with the
same dependencies or another checkout downloads nothing. The gateway's own wheel is built again only when its
source changed (OUT/project/by-source/).

Beside the set, one tar of everything a host installs (the dependency wheels, the gateway's wheel and a stamp file
named after the digest): the role copies it in one transfer and unpacks it, rather than one round trip per wheel.

Prints one JSON line: the set's directory, its archive, the gateway version and a digest of what a host installs; on a target
the gateway cannot serve (Requires-Python, or no binary wheel of a dependency for it) exits 1 with a clear reason.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

try:
    from packaging.markers import Marker  # noqa: F401  (ansible-core depends on packaging)
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.utils import canonicalize_name, parse_wheel_filename
except ImportError:  # any controller with pip has a vendored copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet
    from pip._vendor.packaging.utils import canonicalize_name, parse_wheel_filename

MAX_ROUNDS = 10
# manylinux_2_5 .. 2_17 also carry these legacy names (PEP 600); pip does not expand manylinux_2_X by itself.
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}


class TargetRefused(Exception):
    pass


class IndexUnreachable(Exception):
    """pip could not reach the package index: nothing is known about the target's wheels."""


# What pip prints when the index cannot be reached (it then also says "No matching distribution", as when the
# index answered that no wheel fits, so this is told apart first).
_UNREACHABLE = re.compile(r"^WARNING: Retrying \(.*\) after connection broken by '(\w+)", re.MULTILINE)


def why_download_failed(stderr: str) -> str | None:
    """The kind of connection error when pip never reached the index, else None."""
    found = _UNREACHABLE.search(stderr)
    return found.group(1) if found else None


def stamp_name(digest: str) -> str:
    """The file in a host's wheelhouse that says which set it holds."""
    return f".wheelset-{digest}"


def _owned_by_root(info: tarfile.TarInfo) -> tarfile.TarInfo:
    # the same bytes for the same wheels, whoever built them and when
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mtime = 0
    info.mode = 0o644
    return info


def pack(result_dir: Path, project_wheel: Path, digest: str, into: Path | None = None) -> Path:
    """The tar a host unpacks into its release's wheelhouse, made once per digest in INTO (default: beside the set);
    older ones of this set there go."""
    into = into or result_dir.parent
    into.mkdir(parents=True, exist_ok=True)
    archive = into / f"{result_dir.name}-{digest}.tar"
    if not archive.exists():
        partial = archive.with_name(archive.name + ".partial")
        with tarfile.open(partial, "w", format=tarfile.PAX_FORMAT) as tar:
            for wheel in sorted([*result_dir.glob("*.whl"), project_wheel], key=lambda w: w.name):
                tar.add(wheel, arcname=wheel.name, filter=_owned_by_root)
            stamp = _owned_by_root(tarfile.TarInfo(stamp_name(digest)))
            tar.addfile(stamp)  # empty: its name is the content
        os.replace(partial, archive)
    for older in into.glob(f"{result_dir.name}-*.tar"):
        if older != archive:
            older.unlink(missing_ok=True)
    return archive


def target_name(target: dict[str, str]) -> str:
    major_minor = "".join(target.get("python_version", "").split(".")[:2])
    return f"cp{major_minor}-glibc{target.get('glibc') or 'none'}-{target.get('platform_machine')}"


def platform_tags(glibc: str, machine: str) -> list[str]:
    """Every manylinux tag a host with this glibc accepts, newest first (what pip would compute on the host)."""
    major, minor = (int(x) for x in glibc.split(".")[:2])
    if major != 2:
        raise TargetRefused(f"glibc {glibc} is not a glibc 2.x")
    tags = []
    for m in range(minor, 4, -1):
        tags.append(f"manylinux_2_{m}_{machine}")
        if m in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[m]}_{machine}")
    return tags


def wheel_metadata(wheel: Path) -> tuple[str, list[str], str | None]:
    """(name, Requires-Dist lines, Requires-Python) from a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        meta_name = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        text = archive.read(meta_name).decode()
    headers = text.split("\n\n", 1)[0].splitlines()
    name = next(h.split(":", 1)[1].strip() for h in headers if h.startswith("Name:"))
    requires = [h.split(":", 1)[1].strip() for h in headers if h.startswith("Requires-Dist:")]
    python = next((h.split(":", 1)[1].strip() for h in headers if h.startswith("Requires-Python:")), None)
    return name, requires, python


def requirements_for(lines: list[str], environment: dict[str, str]) -> list[Requirement]:
    """The requirements that apply on the target: markers evaluated with the host's environment, no extras."""
    applying = []
    for line in lines:
        requirement = Requirement(line)
        if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
            requirement.marker = None
            applying.append(requirement)
    return applying


def pick(downloads: Path, wanted: dict[str, SpecifierSet]) -> dict[str, Path]:
    """Per requirement, the newest downloaded wheel that satisfies every specifier seen for it."""
    candidates: dict[str, list[tuple[object, Path]]] = {}
    for wheel in downloads.glob("*.whl"):
        name, version, _build, _tags = parse_wheel_filename(wheel.name)
        candidates.setdefault(canonicalize_name(name), []).append((version, wheel))
    chosen = {}
    for name, specifier in wanted.items():
        fitting = sorted((c for c in candidates.get(name, []) if specifier.contains(c[0], prereleases=True)),
                         key=lambda c: c[0])
        if fitting:
            chosen[name] = fitting[-1][1]
    return chosen


def pip_retries(setting: str | None) -> int:
    """The operator's PIP_RETRIES, at least one: pip names a connection error only in its "Retrying" warning."""
    if not setting:
        return 5  # pip's own default
    try:
        return max(1, int(setting))
    except ValueError:
        raise TargetRefused(f"PIP_RETRIES={setting!r} is not a whole number of retries") from None


def pip_download(python: str, target: dict[str, str], requirements: list[str], dest: Path) -> None:
    version = target["python_version"]
    argv = [python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--implementation", "cp", "--python-version", version,
            "--abi", "cp" + "".join(version.split(".")[:2]), "--dest", str(dest),
            "--retries", str(pip_retries(os.environ.get("PIP_RETRIES")))]
    for tag in platform_tags(target["glibc"], target["platform_machine"]):
        argv += ["--platform", tag]
    proc = subprocess.run(argv + requirements, capture_output=True, text=True)
    if proc.returncode != 0:
        unreachable = why_download_failed(proc.stderr)
        if unreachable:
            raise IndexUnreachable(f"pip could not reach the package index ({unreachable}) to download "
                                   f"{', '.join(requirements)}; set gateway_wheelhouse_build: false to use only "
                                   f"the wheel sets already gathered")
        missing = re.findall(r"(?:satisfies|matching distribution found for) the requirement (\S+)|"
                             r"No matching distribution found for (\S+)", proc.stderr)
        names = sorted({a or b for a, b in missing}) or ["a dependency"]
        raise TargetRefused(
            f"no binary wheel of {', '.join(names)} for CPython {version} on {target['platform_machine']} with "
            f"glibc {target['glibc']} (tried manylinux_2_5..2_{target['glibc'].split('.')[1]}); "
            f"pip said: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")


def gather(python: str, project_wheel: Path, target: dict[str, str], out: Path, offline: bool,
           deps_cache: Path | None = None) -> dict[str, object]:
    """The target's dependency set, downloaded once into DEPS_CACHE (default OUT) and shared by every checkout that
    uses that cache: a set is keyed by its target and requirements and appears whole or not at all. The archive,
    which holds this checkout's own gateway wheel, stays in OUT."""
    environment = {k: v for k, v in target.items() if k != "glibc"}
    name, lines, requires_python = wheel_metadata(project_wheel)
    version = str(parse_wheel_filename(project_wheel.name)[1])
    if target.get("implementation_name") != "cpython":
        raise TargetRefused(f"Python implementation {target.get('implementation_name')}: only CPython is supported")
    if not target.get("glibc"):
        raise TargetRefused("no glibc (musl?): the binary dependencies are published for manylinux (glibc) only")
    if requires_python and not SpecifierSet(requires_python).contains(target["python_full_version"], prereleases=True):
        raise TargetRefused(f"Python {target['python_full_version']}: {name} requires Python {requires_python}")
    top = requirements_for(lines, environment)
    key_text = json.dumps([target_name(target), sorted(str(r) for r in top)])
    key = hashlib.sha256(key_text.encode()).hexdigest()[:12]
    base = (deps_cache or out) / target_name(target)
    result_dir = base / key
    downloaded = False
    if not (result_dir / ".complete").exists() and offline:
        raise TargetRefused(f"no wheel set for {target_name(target)} in {deps_cache or out} and gateway_wheelhouse_build is false")
    if not (result_dir / ".complete").exists():
        downloads = base / "downloads"
        downloads.mkdir(parents=True, exist_ok=True)
        wanted: dict[str, SpecifierSet] = {}
        seen: set[str] = set()
        pending = top
        for _round in range(MAX_ROUNDS):
            for requirement in pending:
                seen.add(str(requirement))
                name_key = canonicalize_name(requirement.name)
                wanted[name_key] = wanted.get(name_key, SpecifierSet()) & requirement.specifier
            pip_download(python, target, [f"{n}{s}" for n, s in sorted(wanted.items())], downloads)
            chosen = pick(downloads, wanted)
            pending = [r for wheel in chosen.values() for r in requirements_for(wheel_metadata(wheel)[1], environment)
                       if str(r) not in seen]
            if not pending:
                break
        else:
            raise TargetRefused(f"the dependency tree did not close after {MAX_ROUNDS} rounds")
        missing = sorted(set(wanted) - set(chosen))
        if missing:
            raise TargetRefused(f"no wheel of {', '.join(missing)} fits every version constraint")
        building = result_dir.with_name(key + ".building")
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        for wheel in chosen.values():
            shutil.copy2(wheel, building / wheel.name)
        (building / ".complete").write_text(key_text + "\n")
        shutil.rmtree(result_dir, ignore_errors=True)
        os.rename(building, result_dir)
        downloaded = True
    digest = hashlib.sha256(project_wheel.read_bytes())
    for wheel in sorted(result_dir.glob("*.whl")):
        digest.update(wheel.name.encode())
    digest_text = digest.hexdigest()[:16]
    return {"target": target_name(target), "version": version, "project_wheel": str(project_wheel), "deps_dir": str(result_dir),
            "wheels": sorted(w.name for w in result_dir.glob("*.whl")), "digest": digest_text,
            "archive": str(pack(result_dir, project_wheel, digest_text, out / target_name(target))),
            "stamp": stamp_name(digest_text),
            "downloaded": downloaded}


# Not part of a wheel: version control, virtualenvs, build output (the wheelhouse itself may live under build/).
SKIPPED_DIRS = {"build", "dist", "node_modules", "__pycache__"}


def source_digest(source: Path) -> str:
    """A digest of every file a build of SOURCE could read (hidden, build-output and bytecode files aside): the
    same digest, the same wheel. Over-inclusive on purpose: a file outside the package only costs a rebuild."""
    digest = hashlib.sha256()
    for directory, subdirs, files in os.walk(source):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d not in SKIPPED_DIRS
                            and not d.endswith(".egg-info"))
        for name in sorted(f for f in files if not f.endswith((".pyc", ".pyo"))):
            path = Path(directory) / name
            digest.update(str(path.relative_to(source)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def build_project(python: str, source: Path, out: Path, offline: bool) -> dict[str, str]:
    """The gateway's own wheel into OUT/project/, rebuilt reproducibly (an unchanged source gives the same bytes)
    and not at all when a wheel built from the same source is still there (OUT/project/by-source/<digest> names
    it and its sha256); offline, the newest wheel already there."""
    project = out / "project"
    if not offline:
        by_source = project / "by-source" / source_digest(source)
        if by_source.exists():
            name, sha256 = by_source.read_text().split()
            wheel = project / name
            if wheel.exists() and hashlib.sha256(wheel.read_bytes()).hexdigest() == sha256:
                return {"wheel": str(wheel), "version": str(parse_wheel_filename(wheel.name)[1]), "built": False}
        project.mkdir(parents=True, exist_ok=True)
        # a staging directory of this build's own: two deploys from one checkout may build at once
        staging = Path(tempfile.mkdtemp(prefix="project.building.", dir=out))
        try:
            subprocess.run([python, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check", "--no-deps",
                            "--wheel-dir", str(staging), str(source)],
                           check=True, env={**os.environ, "SOURCE_DATE_EPOCH": "315532800"})
            (built,) = staging.glob("*.whl")
            if not (project / built.name).exists() or (project / built.name).read_bytes() != built.read_bytes():
                os.replace(built, project / built.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        wheel = project / built.name
        by_source.parent.mkdir(exist_ok=True)
        partial = by_source.with_name(f"{by_source.name}.{os.getpid()}.partial")
        partial.write_text(f"{wheel.name} {hashlib.sha256(wheel.read_bytes()).hexdigest()}\n")
        os.replace(partial, by_source)
        return {"wheel": str(wheel), "version": str(parse_wheel_filename(wheel.name)[1]), "built": True}
    wheels = sorted(project.glob("*.whl"), key=lambda w: parse_wheel_filename(w.name)[1])
    if not wheels:
        raise TargetRefused(f"no gateway wheel in {project} and gateway_wheelhouse_build is false")
    wheel = wheels[-1]
    return {"wheel": str(wheel), "version": str(parse_wheel_filename(wheel.name)[1]), "built": False}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="wheelhouse root; one directory per target below")
    parser.add_argument("--pip-python", default=sys.executable, help="Python whose pip downloads (default: this one)")
    parser.add_argument("--offline", action="store_true", help="use only what OUT holds; build and download nothing")
    parser.add_argument("--deps-cache", type=Path, help="where the dependency sets are kept (default: OUT); may be "
                                                        "shared by several checkouts")
    sub = parser.add_subparsers(dest="step", required=True)
    project = sub.add_parser("project", help="build the gateway's own wheel")
    project.add_argument("--source", type=Path, required=True, help="the gateway's source tree")
    target = sub.add_parser("target", help="gather the dependency wheels for one host target")
    target.add_argument("--project-wheel", type=Path, required=True, help="the gateway's own (pure) wheel")
    target.add_argument("--target", required=True, help="JSON: the host's marker environment and glibc")
    args = parser.parse_args(argv)
    try:
        if args.step == "project":
            result = build_project(args.pip_python, args.source, args.out, args.offline)
        else:
            result = gather(args.pip_python, args.project_wheel, json.loads(args.target), args.out, args.offline,
                            args.deps_cache)
    except (TargetRefused, IndexUnreachable) as refused:
        print(json.dumps({"error": str(refused)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
