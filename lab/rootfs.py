"""The Debian root file systems lab hosts boot from: one per release, built once with debootstrap, then cached."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from .cache_lock import cache_lock
from .layout import CACHE_DIR, DEBIAN_RELEASES, DEFAULT_RELEASE, ROOTFS_DISABLED_UNITS, ROOTFS_PACKAGES
from .shell import run, say

RESOLV_CONF = "# Lab hosts have no DNS and no internet, like hosts in a locked-down rack.\noptions timeout:1 attempts:1\n"
SSHD_CONFIG = "PermitRootLogin prohibit-password\nUseDNS no\nPasswordAuthentication no\n"


def rootfs_dir(release: str = DEFAULT_RELEASE) -> Path:
    """The cache key is the release and package set, so changing either builds a new tree beside the old one."""
    if release not in DEBIAN_RELEASES:
        raise ValueError(f"unknown Debian release {release!r}; the lab knows {', '.join(DEBIAN_RELEASES)}")
    key = hashlib.sha256(" ".join((release, *ROOTFS_PACKAGES)).encode()).hexdigest()[:10]
    return CACHE_DIR / f"rootfs-{release}-{key}"


def apt_mirror() -> str:
    """The Debian mirror this machine's apt already uses, so debootstrap goes where apt-get goes (any release:
    a Debian mirror carries them all)."""
    sources = sorted(Path("/etc/apt/sources.list.d").glob("*.sources")) + sorted(
        Path("/etc/apt").glob("sources.list*")
    ) + sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    suites = set(DEBIAN_RELEASES)
    for source in (s for s in sources if s.is_file() and s.suffix in (".list", ".sources")):
        text = source.read_text()
        # deb822 stanzas: "URIs: X" next to "Suites: bookworm ..."
        for stanza in text.split("\n\n"):
            fields = dict(line.split(":", 1) for line in stanza.splitlines() if ":" in line and not line.startswith("#"))
            if suites & set(fields.get("Suites", "").split()) and "URIs" in fields:
                return fields["URIs"].split()[0]
        # one-line format: "deb URI bookworm main"
        for words in (line.split() for line in text.splitlines()):
            if words[:1] == ["deb"] and suites & set(words):
                return next(w for w in words[1:] if "://" in w)
    return "http://deb.debian.org/debian"


def ensure_rootfs(release: str = DEFAULT_RELEASE) -> Path:
    root = rootfs_dir(release)
    if (root / ".complete").exists():
        return root
    with cache_lock(f"rootfs-{release}"):
        if not (root / ".complete").exists():  # another lab instance may have built it while this one waited
            _build(root, release)
    return root


def _build(root: Path, release: str) -> None:
    building = root.with_name(root.name + ".building")
    if building.exists():
        shutil.rmtree(building)
    mirror = apt_mirror()
    say(f"building the lab's {release} root file system with debootstrap from {mirror} (about a minute, cached afterwards)")
    run([
        "debootstrap", "--variant=minbase", f"--include={','.join(ROOTFS_PACKAGES)}",
        release, str(building), mirror,
    ])
    _configure(building)
    if root.exists():
        shutil.rmtree(root)
    building.rename(root)
    (root / ".complete").touch()


def _configure(root: Path) -> None:
    def chroot(*argv: str) -> None:
        run(["chroot", str(root), *argv])

    chroot("systemctl", "enable", "systemd-networkd.service")
    chroot("systemctl", "disable", *ROOTFS_DISABLED_UNITS)
    resolv = root / "etc/resolv.conf"
    resolv.unlink(missing_ok=True)
    resolv.write_text(RESOLV_CONF)
    (root / "etc/ssh/sshd_config.d/lab.conf").write_text(SSHD_CONFIG)
    # Each host must get its own machine id at first boot.
    (root / "etc/machine-id").write_text("")
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)
