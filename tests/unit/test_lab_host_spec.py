"""lab.core.HostSpec: the lab tool's host notation NAME[:RACK][@GROUP[+GROUP]][%RELEASE]."""

from __future__ import annotations

import pytest

from lab.core import HostSpec
from lab.rootfs import rootfs_dir


def test_a_plain_spec_boots_bookworm() -> None:
    assert HostSpec.parse("gw1:rack-a@gateways") == HostSpec("gw1", "rack-a", ("gateways",), "bookworm")


def test_the_release_suffix_picks_the_root_file_system() -> None:
    assert HostSpec.parse("gw2:rack-b@gateways+monitoring%trixie") == HostSpec(
        "gw2", "rack-b", ("gateways", "monitoring"), "trixie")
    assert HostSpec.parse("lb1%trixie") == HostSpec("lb1", None, (), "trixie")


def test_an_unknown_release_is_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown Debian release 'sid'.*bookworm, trixie"):
        HostSpec.parse("gw1:rack-a%sid")


def test_each_release_has_a_cache_directory_of_its_own() -> None:
    assert rootfs_dir("bookworm") != rootfs_dir("trixie")
    assert rootfs_dir("trixie").name.startswith("rootfs-trixie-")
