"""A counted load stopped before its count (lab/clients/load.py, ClientLoad.stop_producers): each producer then
answers for what it reported handing to its client, not for the count, and a record it handed over without an
outcome is still an error. Each check fails when its condition is broken."""

from __future__ import annotations

import json
import signal
import threading
import time
import types
from pathlib import Path

import pytest

from lab.clients.load import ClientLoad


def stopped_load(tmp_path: Path, count: int = 1000) -> ClientLoad:
    """A ClientLoad's accounting without a topic or clients: its files in tmp_path, pids 101 (librdkafka) and 102 (Java)."""
    load = ClientLoad.__new__(ClientLoad)
    load.workdir, load.count, load.terminated = tmp_path, count, set()
    load.librdkafka, load.java = types.SimpleNamespace(pid=101), types.SimpleNamespace(pid=102)
    return load


def test_a_stopped_producer_answers_for_what_it_reported_handing_over(tmp_path):
    load = stopped_load(tmp_path)
    (tmp_path / "java-producer.events").write_text(
        '{"name":"producer_send_success","value":"1.0","timestamp":1}\n'
        '{"name":"shutdown_complete"}\n{"name":"tool_data","sent":240,"acked":240}\n')
    (tmp_path / "librdkafka-producer.summary").write_text(json.dumps({"sent": 237, "failed": 0}) + "\n")
    assert load._sent(load.java, load._java_sent()) == 1000, "not stopped: its count"
    load.terminated |= {101, 102}
    assert (load._sent(load.librdkafka, load._librdkafka_sent()), load._sent(load.java, load._java_sent())) == (237, 240)


def test_a_stopped_producer_that_reported_nothing_answers_for_its_count(tmp_path):
    load = stopped_load(tmp_path)
    load.terminated |= {101, 102}
    (tmp_path / "java-producer.events").write_text('{"name":"producer_send_success","value":"1.0","timestamp":1}\n')
    (tmp_path / "librdkafka-producer.summary").write_text("")
    assert (load._sent(load.librdkafka, load._librdkafka_sent()), load._sent(load.java, load._java_sent())) == (1000, 1000)


def test_only_a_client_we_stopped_may_exit_of_sigterm(tmp_path):
    load = stopped_load(tmp_path)
    sigterm = 128 + signal.SIGTERM
    assert load._exit_code(load.java, sigterm) == sigterm
    load.terminated.add(102)
    assert (load._exit_code(load.java, sigterm), load._exit_code(load.java, 1)) == (0, 1)


def test_a_load_counts_acknowledgements_from_the_first_poll_even_before_its_producers_opened_their_files(tmp_path):
    load = stopped_load(tmp_path)
    assert load.acked() == (0, 0)
    (tmp_path / "librdkafka-producer.events").write_text('{"value": "lib-0", "error": null, "t": 1}\n{"value": "lib-1", "e')
    (tmp_path / "java-producer.events").write_text('{"name":"producer_send_success","value":"1.0","timestamp":1}\n'
                                                    '{"name":"producer_send_error","value":"1.1","exception":"x","timestamp":2}\n')
    assert load.acked() == (1, 1), "a line still being written is not an acknowledgement, nor is a failed send"


def test_waiting_for_more_acknowledgements_fails_at_once_when_a_producer_has_ended(tmp_path):
    """A producer that reached its count (or died) acknowledges nothing more: the wait says which one and how far it
    got, at its first poll, instead of timing out with no reason."""
    load = stopped_load(tmp_path)
    load.rate = 100
    load.librdkafka.poll = lambda: None
    load.java.poll = lambda: 0
    (tmp_path / "java-producer.events").write_text('{"name":"producer_send_success","value":"1.0","timestamp":1}\n')
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"java exited \(0\) with 1 of 1000 acknowledged") as failure:
        load.wait_acked_more(1, timeout_s=5)
    assert time.monotonic() - started < 1
    assert "librdkafka" not in str(failure.value), "a running producer is not named"


def test_waiting_for_more_acknowledgements_returns_once_both_have_them(tmp_path):
    load = stopped_load(tmp_path)
    load.rate = 1
    load.librdkafka.poll = load.java.poll = lambda: None
    (tmp_path / "librdkafka-producer.events").write_text('{"value": "lib-0", "error": null, "t": 1}\n')
    (tmp_path / "java-producer.events").write_text('{"name":"producer_send_success","value":"1.0","timestamp":1}\n')
    threading.Timer(0.3, lambda: (
        (tmp_path / "librdkafka-producer.events").write_text('{"value": "lib-0", "error": null, "t": 1}\n'
                                                             '{"value": "lib-1", "error": null, "t": 2}\n'),
        (tmp_path / "java-producer.events").write_text('{"name":"producer_send_success","value":"1.0","timestamp":1}\n'
                                                       '{"name":"producer_send_success","value":"1.1","timestamp":2}\n'),
    )).start()
    load.wait_acked_more(1, timeout_s=5)
    assert load.acked() == (2, 2)
