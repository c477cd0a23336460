"""Two lab instances coming up at once on a cold cache (the suite's two workers) build each cache entry once: the
second waits for the first's lock and finds the entry complete (lab/cache_lock.py)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from lab import cache_lock, kafka, rootfs


@pytest.fixture
def cold_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for module in (cache_lock, kafka, rootfs):
        monkeypatch.setattr(module, "CACHE_DIR", tmp_path)
    return tmp_path


def at_once(call) -> None:
    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)


def test_two_lab_ups_at_once_resolve_the_kafka_jars_once(cold_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []

    def resolve(version: str, home: Path, pom_digest: str) -> None:
        builds.append(version)
        time.sleep(0.5)  # long enough for the other caller to arrive while this one builds
        home.mkdir(parents=True, exist_ok=True)
        (home / ".complete").write_text(pom_digest)

    monkeypatch.setattr(kafka, "_resolve_jars", resolve)
    at_once(lambda: kafka.ensure_jars("4.4.0"))
    assert builds == ["4.4.0"]


def test_two_lab_ups_at_once_build_the_root_file_system_once(cold_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    builds = []

    def build(root: Path, release: str) -> None:
        builds.append(release)
        time.sleep(0.5)
        root.mkdir(parents=True)  # fails the second time, as debootstrap into a half-built tree would
        (root / ".complete").touch()

    monkeypatch.setattr(rootfs, "_build", build)
    at_once(lambda: rootfs.ensure_rootfs("bookworm"))
    assert builds == ["bookworm"]
