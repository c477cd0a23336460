"""The per-client figures of the chaos tests and the soak (lab/clients/outcomes.py) on the events the real
clients print: each check fails when its condition is broken."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import types
from pathlib import Path

import pytest

import soak.__main__ as soak
from lab.clients import outcomes
from lab.clients.capture_commit_errors import failed_commits
from lab.clients.cluster_clients import verifiable_consumer, verifiable_producer

T0 = 1_764_000_000.0
FIXTURES = Path(__file__).with_name("fixtures")


COMMIT_ERRORS_IN_FIXTURE = ["CommitFailedException", "CommitFailedException", "RebalanceInProgressException",
                            "RebalanceInProgressException"]


def commit_fixture() -> list[str]:
    """Real VerifiableConsumer output (Kafka 4.4.0, lab instance 0), each a member's last good commit and the refused
    one after it: two runs of a member frozen (SIGSTOP) past its 6 s session timeout while the group's producer kept
    sending (CommitFailedException), and two rounds of `python -m lab.clients.capture_commit_errors --rounds 6`: a
    cooperative member committing while a second member joins or leaves (RebalanceInProgressException)."""
    return (FIXTURES / "verifiable_consumer_commit_errors.events").read_text().splitlines()


def java_send(value: str, t: float, error: str | None = None) -> str:
    if error is None:
        return json.dumps({"timestamp": int(t * 1000), "name": "producer_send_success", "key": None, "value": value,
                           "offset": 1, "topic": "t", "partition": 0})
    return json.dumps({"timestamp": int(t * 1000), "name": "producer_send_error", "key": None, "value": value, "topic": "t",
                       "exception": f"class org.apache.kafka.common.errors.{error}", "message": "boom"})


def lib_send(value: str, t: float, error: str | None = None) -> str:
    return json.dumps({"value": value, "error": error, "t": t})


def record(value: str, t: float) -> str:
    return json.dumps({"timestamp": int(t * 1000), "name": "record_data", "key": None, "value": value, "topic": "t",
                       "partition": 0, "offset": 0})


def commit(t: float, error: str | None = None) -> str:
    return json.dumps({"timestamp": int(t * 1000), "name": "offsets_committed", "offsets": [], "success": error is None,
                       **({"error": error} if error else {})})


def load(java: list[str], lib: list[str], group: list[list[str]], sent: int = 3) -> dict:
    producers = [outcomes.verifiable_producer("java", sent, java, 0), outcomes.librdkafka_producer("lib", sent, lib, 0)]
    consumers = [outcomes.verifiable_consumer(f"c{i}", lines, 0) for i, lines in enumerate(group)]
    return outcomes.figures(producers, consumers)


def healthy() -> tuple[list[str], list[str], list[list[str]]]:
    java = [java_send(f"1.{i}", T0 + i) for i in range(3)]
    lib = [lib_send(f"lib-{i}", T0 + i) for i in range(3)]
    group = [[record(f"1.{i}", T0 + i + 0.5) for i in range(3)] + ["[a stray log line]"],
             [record(f"lib-{i}", T0 + i + 0.5) for i in range(3)] + [commit(T0 + 3)]]
    return java, lib, group


def test_a_clean_run_has_no_problems_and_counts_every_client():
    result = load(*healthy())
    assert outcomes.problems(result) == []
    assert result["producers"]["java"] == {
        "sent": 3, "acked": 3, "failed": 0, "errors": {}, "no_outcome": 0, "exit_code": 0, "consumed": 3, "missing": 0,
        "duplicated": 0, "failed_but_consumed": 0, "client_errors": {}, "longest_produce_pause_s": 1.0,
        "longest_produce_pause_began": T0}
    assert result["consumers"]["c0"]["consumed"] == 3 and result["group"] == {
        "consumed": 6, "distinct": 6, "unknown": 0, "longest_consume_pause_s": 0.0,
        "longest_consume_pause_began": None}  # each record read 0.5 s after its ack


def test_a_failed_send_is_an_application_error_by_name_even_when_the_record_arrived():
    java, lib, group = healthy()
    java[1] = java_send("1.1", T0 + 1, "TimeoutException")
    lib[2] = lib_send("lib-2", T0 + 2, "_MSG_TIMED_OUT")
    result = load(java, lib, group)
    assert result["producers"]["java"]["errors"] == {"TimeoutException": 1}
    assert result["producers"]["java"]["failed_but_consumed"] == 1
    assert outcomes.problems(result) == ["1x java: TimeoutException", "1x lib: _MSG_TIMED_OUT"]


def test_a_missing_record_is_reported_missing():
    java, lib, group = healthy()
    del group[0][1]
    result = load(java, lib, group)
    assert result["producers"]["java"]["missing"] == 1
    assert outcomes.problems(result) == ["java: 1 acked but never consumed"]


def test_a_duplicate_is_reported():
    java, lib, group = healthy()
    group[1].append(record("lib-0", T0 + 9))
    result = load(java, lib, group)
    assert result["producers"]["lib"]["duplicated"] == 1
    assert outcomes.problems(result) == ["lib: 1 consumed more than once"]


def test_a_record_without_outcome_a_failed_commit_and_a_crash_are_errors():
    java, lib, group = healthy()
    producers = [outcomes.verifiable_producer("java", 4, java, 0), outcomes.librdkafka_producer("lib", 3, lib, 1)]
    refused = [line for line in commit_fixture() if '"success":false' in line][:1]  # a real one: rebalanced
    consumers = [outcomes.verifiable_consumer("c0", group[0] + refused, 0),
                 outcomes.verifiable_consumer("c1", group[1], 0)]
    assert sorted(outcomes.problems(outcomes.figures(producers, consumers))) == [
        "1x c0: CommitFailedException", "1x java: NoOutcome", "1x lib: ExitCode 1"]


def test_each_real_commit_error_class_keeps_its_own_name_and_one_never_excuses_another():
    """The two classes the tool really printed on the lab are told apart: a message table that lost or swapped one
    (RebalanceInProgressException read as CommitFailedException, or left unrecognised) fails here."""
    names = [name for name, _ in outcomes.verifiable_consumer("c0", commit_fixture(), 0).commit_errors]
    assert sorted(set(names)) == ["CommitFailedException", "RebalanceInProgressException"]
    assert not any(name.startswith(outcomes.UNRECOGNISED_COMMIT_ERROR) for name in names)
    rebalancing = [("c0", name, t) for name, t in outcomes.verifiable_consumer("c0", commit_fixture(), 0).commit_errors
                   if name == "RebalanceInProgressException"]
    kicked_out = [("c0", name, t) for name, t in outcomes.verifiable_consumer("c0", commit_fixture(), 0).commit_errors
                  if name == "CommitFailedException"]
    window = [(min(t for *_, t in rebalancing + kicked_out) - 1, max(t for *_, t in rebalancing + kicked_out) + 1)]
    judged = outcomes.excuse(rebalancing, kicked_out, window)  # the direct leg's other class excuses nothing
    assert len(judged.counted) == len(rebalancing) and not judged.excused


def test_a_failed_commit_is_named_by_the_exception_class_behind_the_tools_free_text():
    """VerifiableConsumer prints only getMessage() of a failed commit. Each real line is named by the class Kafka
    throws with that message, so unrelated errors keep apart (the old last-dotted-word reading named them all
    UnknownError, and one excused another); text no table knows stays apart by its own words."""
    consumer = outcomes.verifiable_consumer("c0", commit_fixture(), 0)
    assert [name for name, _ in consumer.commit_errors] == COMMIT_ERRORS_IN_FIXTURE
    assert outcomes.commit_error_name("org.apache.kafka.common.errors.DisconnectException: broken") == "DisconnectException"
    unknown = [outcomes.commit_error_name(text) for text in ("The coordinator is loading", "Something else at 12 {a=1}", None)]
    assert unknown == [f"{outcomes.UNRECOGNISED_COMMIT_ERROR}: The coordinator is loading",
                       f"{outcomes.UNRECOGNISED_COMMIT_ERROR}: Something else at N N",
                       f"{outcomes.UNRECOGNISED_COMMIT_ERROR}: no message"]


def test_pauses_are_the_longest_gaps_between_acknowledgements_and_between_records_while_one_waited():
    java, lib, group = healthy()
    java.append(java_send("1.3", T0 + 12.5))
    group[0].append(record("1.3", T0 + 13))
    java.append(java_send("1.4", T0 + 13))
    group[0].append(record("1.4", T0 + 23.5))  # acknowledged at T0 + 13, read only 10.5 s after the one before
    result = load(java, lib, group, sent=5)
    assert result["producers"]["java"]["longest_produce_pause_s"] == 10.5
    assert result["consumers"]["c0"]["longest_consume_pause_s"] == 10.5
    assert result["consumers"]["c1"]["longest_consume_pause_s"] == 0.0
    assert result["group"]["longest_consume_pause_s"] == 10.5
    assert result["producers"]["java"]["longest_produce_pause_began"] == T0 + 2
    assert result["group"]["longest_consume_pause_began"] == T0 + 13


def test_a_consumer_with_nothing_to_read_is_not_paused():
    java, lib, group = healthy()
    java.append(java_send("1.3", T0 + 12.5))  # nothing was sent between T0 + 2 and T0 + 12.5
    group[0].append(record("1.3", T0 + 13))
    result = load(java, lib, group, sent=4)
    assert result["consumers"]["c0"]["longest_consume_pause_s"] == 0.0
    assert result["group"]["longest_consume_pause_s"] == 0.0


def test_only_errors_the_direct_leg_shared_in_the_same_broker_restart_are_explained():
    windows = [(T0, T0 + 30)]
    direct = [("java", "TimeoutException", T0 + 5)]
    gateway = [("java", "TimeoutException", T0 + 20),  # same kind, same restart: explained
               ("lib", "_MSG_TIMED_OUT", T0 + 20),  # a kind the direct leg did not see
               ("java", "TimeoutException", T0 + 40),  # outside any broker restart: a node's doing
               ("lib", "NoOutcome", None)]
    assert outcomes.excuse(gateway, direct, windows) == outcomes.Excused(counted=gateway[1:], excused=gateway[:1])
    assert outcomes.excuse(gateway, [], windows) == outcomes.Excused(counted=gateway, excused=[])


def test_one_direct_error_excuses_one_gateway_error_of_its_client_and_name_not_any_number():
    windows = [(T0, T0 + 30)]
    direct = [("java", "TimeoutException", T0 + 5), ("java", "TimeoutException", T0 + 6)]
    gateway = [("java", "TimeoutException", T0 + t) for t in (10, 11, 12)] + [("lib", "TimeoutException", T0 + 13)]
    judged = outcomes.excuse(gateway, direct, windows)
    assert judged.counted == gateway[2:] and judged.excused == gateway[:2]  # two excused; the third and lib's are not


def test_the_verifiable_producer_runs_with_the_java_clients_default_retries(tmp_path):
    """Kafka's VerifiableProducer sets retries=0 (which also turns idempotence off) before it reads the config file:
    the file must put the client's default back, or a node's clean leave tells the application NetworkException."""
    lab = types.SimpleNamespace(java_classpath="kafka/libs/*")
    argv = verifiable_producer(lab, tmp_path, "gw:6969", "t", 10, 100, 1)
    config = Path(argv[argv.index("--producer.config") + 1]).read_text().splitlines()
    assert f"retries={2**31 - 1}" in config
    consumer = verifiable_consumer(lab, tmp_path, "gw:6969", "t", "g")
    assert not any(line.startswith("retries") for line in Path(consumer[consumer.index("--consumer.config") + 1]).read_text().splitlines())


def test_the_no_retry_producer_keeps_the_tools_own_retries(tmp_path):
    """The rolling-restart test's producer that never retries: no retries line, so the tool's retries=0 holds."""
    lab = types.SimpleNamespace(java_classpath="kafka/libs/*")
    argv = verifiable_producer(lab, tmp_path, "gw:6969", "t", 10, 100, 2, tool_retries=True)
    config = Path(argv[argv.index("--producer.config") + 1]).read_text().splitlines()
    assert not any(line.startswith("retries") for line in config) and config  # the metadata age is still set


def test_the_soak_excuses_errors_only_until_the_next_node_goes_down():
    events = [{"at": T0, "broker_window": [T0 + 10, T0 + 60]}, {"at": T0 + 30}, {"at": T0 + 90, "broker_window": [T0 + 100, T0 + 135]}]
    assert soak.broker_windows(events) == [(T0 + 10, T0 + 30), (T0 + 100, T0 + 135)]


def test_a_node_that_ignores_sigterm_is_killed_and_named_not_waited_on_forever(monkeypatch):
    monkeypatch.setattr(soak, "EXIT_S", 0.5)
    cluster = soak.Cluster.__new__(soak.Cluster)
    stubborn = subprocess.Popen(["sh", "-c", "trap '' TERM; exec sleep 30"])
    obedient = subprocess.Popen(["sleep", "30"])
    killed = []
    cluster.nodes = {rack: types.SimpleNamespace(proc=proc, kill=lambda proc=proc: (killed.append(proc), proc.kill(), proc.wait()))
                     for rack, proc in (("rack-a", stubborn), ("rack-b", obedient))}
    time.sleep(0.2)  # the shell has set its trap
    assert cluster.take_down("rack-a", hard=False) == {"exit_code": None, "exit_after_s": None, "killed_after_s": 0.5}
    assert killed == [stubborn]
    assert cluster.take_down("rack-b", hard=False)["exit_code"] == -signal.SIGTERM


def test_the_soak_names_the_chaos_action_each_longest_pause_began_after():
    java, lib, group = healthy()
    java.append(java_send("1.3", T0 + 12.5))  # the producer's longest pause: T0 + 2 .. T0 + 12.5
    group[0].append(record("1.3", T0 + 13))
    result = load(java, lib, group, sent=4)
    events = [{"at": T0 + 3, "signal": "KILL", "node": "soak-rack-b", "broker_window": [T0 + 9, T0 + 40], "broker_restarted": 2},
              {"at": T0 + 60, "signal": "TERM", "node": "soak-rack-a"}]
    soak.attribute_pauses(result, soak.chaos_marks(events, nodes=True))
    assert result["producers"]["java"]["longest_produce_pause_during"] == (
        "round 1: KILL soak-rack-b at +1.0 s, round 1: broker 2 restart at +7.0 s")
    assert result["producers"]["lib"]["longest_produce_pause_during"] == "before the first round"  # lib ended at T0 + 2
    direct = load(*healthy())
    soak.attribute_pauses(direct, soak.chaos_marks(events, nodes=False))  # the direct leg: broker restarts only
    assert direct["producers"]["java"]["longest_produce_pause_during"] == "before the first round"
    late = load(java, lib, group, sent=4)
    soak.attribute_pauses(late, [(T0 - 5, "round 1: KILL soak-rack-c")])
    assert late["producers"]["java"]["longest_produce_pause_during"] == (
        "no chaos action in it; the last, round 1: KILL soak-rack-c, 7.0 s before")
    assert "longest_consume_pause_during" not in direct["group"]  # no pause at all
    assert "longest produce pause 10.5 s (round 1: KILL soak-rack-b at +1.0 s" in outcomes.summary(result)




def test_a_java_consumer_that_crashed_with_exit_code_0_is_a_problem():
    """Kafka's VerifiableConsumer catches every exception, logs it and exits 0 (the fixture is its real output,
    subscribing to an invalid topic name). The other member takes its partitions over, so nothing else shows it."""
    stderr = (FIXTURES / "verifiable_consumer_crash.stderr").read_text().splitlines()
    events = (FIXTURES / "verifiable_consumer_crash.events").read_text().splitlines()
    java, lib, group = healthy()
    producers = [outcomes.verifiable_producer("java", 3, java, 0), outcomes.librdkafka_producer("lib", 3, lib, 0)]
    clean = outcomes.figures(producers, [outcomes.verifiable_consumer("c0", group[0] + group[1], 0),
                                         outcomes.verifiable_consumer("c1", events, 0, stopped=True)])
    assert outcomes.problems(clean) == []  # the same end, had we stopped it: no crash line, no problem
    crashed = outcomes.figures(producers, [outcomes.verifiable_consumer("c0", group[0] + group[1], 0),
                                           outcomes.verifiable_consumer("c1", events, 0, stderr, stopped=False)])
    assert crashed["consumers"]["c1"]["crashed"] == "InvalidTopicException"
    assert outcomes.problems(crashed) == ["1x c1: Crashed InvalidTopicException"]
    quiet = outcomes.figures(producers, [outcomes.verifiable_consumer("c0", group[0] + group[1], 0),
                                         outcomes.verifiable_consumer("c1", events, 0, [], stopped=False)])
    assert outcomes.problems(quiet) == ["1x c1: Crashed ended on its own"]  # gone before we stopped it, log or not


def test_a_sigtermed_node_that_exits_other_than_0_fails_the_soak():
    rounds = [{"node": "soak-rack-a", "signal": "KILL"},
              {"node": "soak-rack-b", "signal": "TERM", "exit_code": 0, "exit_after_s": 5.1}]
    assert soak.unclean_exits(rounds) == []
    rounds += [{"node": "soak-rack-c", "signal": "TERM", "exit_code": 1, "exit_after_s": 0.4},
               {"node": "soak-rack-a", "signal": "TERM", "exit_code": None, "exit_after_s": None, "killed_after_s": 60}]
    assert soak.unclean_exits(rounds) == ["soak-rack-c: SIGTERM'd and exited with 1",
                                          f"soak-rack-a: SIGTERM'd and not exited after {soak.EXIT_S} s (killed)"]


def test_client_level_errors_are_kept_beside_the_records_java_by_level_and_logger():
    """The Java tools' WARN/ERROR lines (the fixture is a real VerifiableConsumer's stderr) and librdkafka's
    error_cb lines in the producer's events (as cluster_clients.produce writes them) are reported per client."""
    stderr = (FIXTURES / "verifiable_consumer_crash.stderr").read_text().splitlines()
    assert [name for name, _ in outcomes.java_client_errors(stderr)] == [
        "WARN NetworkClient", "ERROR Metadata", "ERROR VerifiableConsumer"]
    java, lib, group = healthy()
    lib.insert(1, json.dumps({"client_error": "_TRANSPORT", "fatal": False, "t": T0 + 1.5}))
    producers = [outcomes.verifiable_producer("java", 3, java, 0, stderr[:1]),
                 outcomes.librdkafka_producer("lib", 3, lib, 0)]
    consumers = [outcomes.verifiable_consumer(f"c{i}", lines, 0) for i, lines in enumerate(group)]
    result = outcomes.figures(producers, consumers)
    assert result["producers"]["lib"]["client_errors"] == {"_TRANSPORT": 1} and result["producers"]["lib"]["acked"] == 3
    assert result["producers"]["java"]["client_errors"] == {"WARN NetworkClient": 1}
    assert outcomes.problems(result) == []  # reported, not judged
    assert [(c, n) for c, n, _ in outcomes.client_errors(producers, consumers)] == [
        ("java", "WARN NetworkClient"), ("lib", "_TRANSPORT")]


def test_the_soak_fails_on_a_client_level_error_the_direct_leg_does_not_match_one_for_one():
    """A client-level error on the gateway leg (here librdkafka's error_cb and a Java WARN line) is excused only by
    the direct leg's same client and name in the same broker restart, one each; any other fails the soak, and what
    was excused is kept in the result."""
    events = [{"at": T0, "node": "soak-rack-a", "signal": "TERM", "broker_restarted": 1, "broker_window": [T0 + 10, T0 + 60]}]

    def legs(gateway_told: list, direct_told: list) -> dict:
        gateway, direct = load(*healthy()), load(*healthy())
        gateway.update(_errors=[], _client_errors=gateway_told)
        direct.update(_errors=[], _client_errors=direct_told)
        return soak.judge(gateway, direct, events)

    told = [("lib", "_TRANSPORT", T0 + 20), ("java", "WARN NetworkClient", T0 + 21)]
    matched = legs(told, [("lib", "_TRANSPORT", T0 + 15), ("java", "WARN NetworkClient", T0 + 16)])
    assert matched["ok"] and matched["gateway_only_client_errors"] == {}
    assert matched["excused_client_errors"] == {"lib: _TRANSPORT": 1, "java: WARN NetworkClient": 1}
    twice = legs(told + [("lib", "_TRANSPORT", T0 + 22)], [("lib", "_TRANSPORT", T0 + 15), ("java", "WARN NetworkClient", T0 + 16)])
    assert not twice["ok"] and twice["failure"] == ["gateway only client error: 1x lib: _TRANSPORT"]
    outside = legs([("lib", "_TRANSPORT", T0 + 70)], [("lib", "_TRANSPORT", T0 + 15)])  # after the restart's window
    assert not outside["ok"] and outside["gateway_only_client_errors"] == {"lib: _TRANSPORT": 1}
    other_client = legs([("java", "WARN NetworkClient", T0 + 20)], [("java-consumer-0", "WARN NetworkClient", T0 + 15)])
    assert not other_client["ok"]


def test_client_level_errors_in_a_node_round_are_the_gateways_and_allowed_there_only():
    """A kill -9 ends every connection to the node, and the clients say so: those lines are counted against the
    gateway (node_round_client_errors, never excused) and fail nothing inside the round's window (from the signal
    until the node is back plus NODE_SETTLE_S); the same line after it fails the soak."""
    events = [{"at": T0, "node": "soak-rack-a", "signal": "KILL", "back_after_s": 6.0}]
    gateway, direct = load(*healthy()), load(*healthy())
    gateway.update(_errors=[], _client_errors=[("lib", "_TRANSPORT", T0 + 1), ("lib", "_TRANSPORT", T0 + 15)])
    direct.update(_errors=[], _client_errors=[])
    inside = soak.judge(gateway, direct, events)
    assert inside["ok"], inside["failure"]
    assert inside["node_round_client_errors"] == {"lib: _TRANSPORT": 2} and inside["gateway_only_client_errors"] == {}
    gateway, direct = load(*healthy()), load(*healthy())
    gateway.update(_errors=[], _client_errors=[("lib", "_TRANSPORT", T0 + 6.0 + soak.NODE_SETTLE_S + 1)])
    direct.update(_errors=[], _client_errors=[])
    after = soak.judge(gateway, direct, events)
    assert not after["ok"] and after["gateway_only_client_errors"] == {"lib: _TRANSPORT": 1}
    assert after["node_round_client_errors"] == {}
    late = T0 + 6.0 + soak.NODE_SETTLE_S + 1  # when, so that a failed run can be looked up in the nodes' logs
    assert after["gateway_only_client_error_times"] == [{"client": "lib", "error": "_TRANSPORT", "at": late}]
    assert inside["gateway_only_client_error_times"] == []


def test_the_soak_elects_preferred_leaders_until_no_partition_refuses_and_gives_up_at_its_bound(monkeypatch):
    """After a broker restart the soak gives leadership back at once (inside the restart's window), asking again
    while a replica is not yet in sync; the brokers' periodic election would otherwise move it outside every window."""
    answers = [{"t-0": "PREFERRED_LEADER_NOT_AVAILABLE", "t-1": None}, {}]
    asked = []

    class Admin:
        def __init__(self, config):
            pass

        def elect_leaders(self, election_type, partitions):
            asked.append((election_type, partitions))
            result = answers.pop(0) if answers else {"t-0": "PREFERRED_LEADER_NOT_AVAILABLE"}

            class Future:
                def result(self, timeout):
                    return result
            return Future()

    monkeypatch.setattr(soak, "AdminClient", Admin)
    monkeypatch.setattr(soak.time, "sleep", lambda s: None)
    lab = type("Lab", (), {"bootstrap_servers": "b:9092"})()
    assert soak.elect_preferred_leaders(lab) >= 0 and asked == [(soak.ElectionType.PREFERRED, None)] * 2
    monkeypatch.setattr(soak, "ELECT_S", -1)  # never in sync: it gives up, and the soak fails the run
    with pytest.raises(AssertionError, match="preferred leaders not elected"):
        soak.elect_preferred_leaders(lab)


def test_the_capture_keeps_each_failed_commit_with_the_good_one_before_it():
    """lab/clients/capture_commit_errors.py picks the fixture's lines out of a member's events: a refused commit,
    after the same member's last good one (kept once before a run of refusals); records and other good commits go."""
    lines = commit_fixture()
    good, refused = lines[4], lines[5]
    noise = [record("1.1", T0), commit(T0 + 1)]
    assert failed_commits(noise + [good, refused, refused, commit(T0 + 2)]) == [good, refused, refused]
    assert failed_commits(lines) == lines
