"""lab.hosts.stamp: dated lines in a host's console log, where the console's own lines carry no time, so that a slow
boot or poweroff shows where its time went."""

from __future__ import annotations

import re
from types import SimpleNamespace

from lab import hosts, logs
from lab.state import Host


def test_each_stamp_is_a_dated_line_of_its_own_after_the_consoles_unfinished_prompt(tmp_path) -> None:
    layout = SimpleNamespace(log_dir=tmp_path)
    host = Host("gw1", "198.18.0.11", "rack-a", ["gateways"], "kgw0-gw1")
    log = hosts.host_log(layout, host)
    log.write_text("Debian GNU/Linux 12 gw1 console\n\ngw1 login: ")  # what the console leaves: no newline
    hosts.stamp(layout, host, "answers ssh")
    hosts.stamp(layout, host, "powering off")
    stamped = [line for line in log.read_text().splitlines() if line.startswith("==== lab ")]
    assert [line.split(": ", 1)[1] for line in stamped] == ["gw1 answers ssh", "gw1 powering off"]
    assert all(re.fullmatch(r"==== lab \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z: .+", line) for line in stamped)
    assert "gw1 login: " in log.read_text().splitlines()  # the console's own line is left as it was


def test_a_log_past_its_bound_is_moved_aside_once_and_a_smaller_one_kept(tmp_path) -> None:
    log = tmp_path / "logs" / "kafka1.log"
    assert logs.rotated_if_large(log, keep_bytes=10) == log and log.parent.is_dir()  # none yet: its directory made
    log.write_bytes(b"0123456789")  # at the bound: kept, appended to
    logs.rotated_if_large(log, keep_bytes=10)
    assert log.read_bytes() == b"0123456789"
    log.write_bytes(b"older run\n" * 2)
    (tmp_path / "logs" / "kafka1.log.1").write_bytes(b"oldest")
    logs.rotated_if_large(log, keep_bytes=10)
    assert not log.exists()  # the next start appends to a fresh file
    assert (tmp_path / "logs" / "kafka1.log.1").read_bytes() == b"older run\n" * 2  # one generation kept

