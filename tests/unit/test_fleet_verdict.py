"""The fleet doctor's verdicts from collected facts (gateway_app/fleet/verdict.py), without any host."""

from __future__ import annotations

import copy

import pytest

from gateway_app.fleet.facts import HostFacts
from gateway_app.fleet.inventory import Target, known_hosts_file, targets
from gateway_app.fleet.report import table
from gateway_app.fleet.verdict import Limits, judge, mapping_defects

RACKS = {"gw1": "rack-a", "gw2": "rack-b", "gw3": "rack-c"}
GATEWAY_ARGS = {"unit": "kafka-gateway", "venv": "/opt/kafka-gateway/current/venv", "env_file": "/etc/kafka-gateway/gateway.env",
                "http_port": 8888, "group": "kafka-gateway"}
BROKERS = {"1": {"rack": "rack-a", "endpoint": "10.0.1.1:9092"}, "2": {"rack": "rack-b", "endpoint": "10.0.1.2:9092"},
           "3": {"rack": "rack-c", "endpoint": "10.0.1.3:9092"}}


def fleet(lbs: int = 0) -> list[Target]:
    gateways = [Target(n, "gateway", f"10.0.0.{i}", rack=r, node_id=n, probe_args=GATEWAY_ARGS)
                for i, (n, r) in enumerate(RACKS.items(), 1)]
    return gateways + [Target(f"lb{i}", "lb", f"10.0.0.{10 + i}") for i in range(1, lbs + 1)]


def gateway_facts(name: str, mode: str = "internal") -> HostFacts:
    members = [{"node_id": n, "rack": r} for n, r in RACKS.items()]
    mapping = {b: {"node_id": {"rack-a": "gw1", "rack-b": "gw2", "rack-c": "gw3"}[e["rack"]] if mode == "internal" else None,
                   "rack": e["rack"], "error": None} for b, e in BROKERS.items()}
    return HostFacts(name, "gateway", clock_offset_s=0.001, clock_uncertainty_s=0.002, facts={
        "unit": {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled", "NRestarts": "0"},
        "version": "0.1.0",
        "env_file": {"owner": "root", "group": "kafka-gateway", "mode": "0640",
                     "values": {"GATEWAY_RACK_ID": RACKS[name], "GATEWAY_NODE_ID": name}},
        "ready": {"status": 200, "body": {"ready": True, "checks": {}}},
        "cluster": {"mode": mode, "node_id": name, "epoch": 4, "mapping_digest": "abc123", "members": members,
                    "mapping": mapping, "brokers": copy.deepcopy(BROKERS)},
        "broker_reach": {e["endpoint"]: {"ok": True, "ms": 0.2} for e in BROKERS.values()},
    })


def lb_facts(name: str) -> HostFacts:
    servers = [{"backend": f"gateways_{port}", "server": gw, "status": "UP", "check": "L7OK", "check_desc": ""}
               for port in (6969, 6970) for gw in RACKS]
    return HostFacts(name, "lb", clock_offset_s=0.0, clock_uncertainty_s=0.001, facts={
        "unit": {"ActiveState": "active", "SubState": "running", "UnitFileState": "enabled", "NRestarts": "0"},
        "haproxy": {"servers": servers}})


def healthy(mode: str = "internal", lbs: int = 0) -> list[HostFacts]:
    return [gateway_facts(n, mode) for n in RACKS] + [lb_facts(f"lb{i}") for i in range(1, lbs + 1)]


def problems_of(facts: list[HostFacts], lbs: int = 0) -> set[tuple[str, str]]:
    return {(p.host, p.check) for p in judge(fleet(lbs), facts)}


def by_name(facts: list[HostFacts], name: str) -> HostFacts:
    return next(f for f in facts if f.name == name)


def test_a_healthy_fleet_has_no_problem():
    assert judge(fleet(), healthy()) == []
    assert judge(fleet(2), healthy("external", 2)) == []
    assert "HEALTHY: 3 gateways, 2 load balancers" in table(fleet(2), healthy("external", 2), [], 1.0)


def test_a_stopped_unit_is_named_and_peers_are_not_blamed_for_missing_it():
    facts = healthy()
    gw2 = by_name(facts, "gw2")
    gw2.facts["unit"].update(ActiveState="inactive", SubState="dead")
    gw2.facts["ready"] = {"error": "connection refused"}
    gw2.facts["cluster"] = {"error": "connection refused"}
    for other in ("gw1", "gw3"):
        cluster = by_name(facts, other).facts["cluster"]
        cluster["members"] = [m for m in cluster["members"] if m["node_id"] != "gw2"]
        cluster["mapping"]["2"]["node_id"] = "gw1"  # rack-b has no gateway left: cross-rack is right
    found = problems_of(facts)
    assert found == {("gw2", "unit"), ("gw2", "ready"), ("gw2", "cluster")}


def test_a_peer_that_still_lists_a_stopped_node_is_a_problem():
    facts = healthy()
    by_name(facts, "gw2").facts["unit"].update(ActiveState="inactive", SubState="dead")
    assert ("gw1", "members") in problems_of(facts)


def test_a_ready_node_that_misses_a_running_ready_node():
    facts = healthy()
    cluster = by_name(facts, "gw3").facts["cluster"]
    cluster["members"] = [m for m in cluster["members"] if m["node_id"] != "gw1"]
    found = judge(fleet(), facts)
    assert [(p.host, p.check) for p in found if p.check == "members"] == [("gw3", "members")]
    assert "gw1" in next(p.detail for p in found if p.check == "members")


def test_rack_in_the_env_file_must_match_the_inventory():
    facts = healthy()
    by_name(facts, "gw1").facts["env_file"]["values"]["GATEWAY_RACK_ID"] = "rack-z"
    found = judge(fleet(), facts)
    assert [(p.host, p.check) for p in found] == [("gw1", "rack")]
    assert "rack-z" in found[0].detail and "rack-a" in found[0].detail


@pytest.mark.parametrize("owner,group,mode", [("kafka-gateway", "kafka-gateway", "0640"), ("root", "root", "0640"),
                                              ("root", "kafka-gateway", "0644")])
def test_env_file_owner_and_mode(owner, group, mode):
    facts = healthy()
    by_name(facts, "gw3").facts["env_file"].update(owner=owner, group=group, mode=mode)
    assert problems_of(facts) == {("gw3", "env-file")}


def test_an_unreachable_broker_is_named_with_its_host():
    facts = healthy()
    by_name(facts, "gw2").facts["broker_reach"]["10.0.1.3:9092"] = {"ok": False, "error": "timed out"}
    found = judge(fleet(), facts)
    assert [(p.host, p.check) for p in found] == [("gw2", "brokers")]
    assert "10.0.1.3:9092" in found[0].detail


def test_the_odd_version_out_is_named():
    facts = healthy()
    by_name(facts, "gw3").facts["version"] = "0.0.9"
    found = judge(fleet(), facts)
    assert [(p.host, p.check) for p in found] == [("gw3", "version")]
    assert "0.0.9" in found[0].detail and "0.1.0" in found[0].detail


def test_not_ready_names_the_failing_checks():
    facts = healthy()
    by_name(facts, "gw1").facts["ready"] = {"status": 503, "body": {"ready": False, "checks": {
        "backing_kafka": {"ok": False, "detail": "timed out"}, "listeners": {"ok": True, "detail": "bound"}}}}
    found = judge(fleet(), facts)
    assert [(p.host, p.check) for p in found] == [("gw1", "ready")]
    assert "backing_kafka: timed out" in found[0].detail and "listeners" not in found[0].detail


def test_restarts_beyond_the_limit():
    facts = healthy()
    by_name(facts, "gw1").facts["unit"]["NRestarts"] = "2"
    assert problems_of(facts) == {("gw1", "restarts")}
    assert judge(fleet(), facts, Limits(max_restarts=2)) == []


def test_mapping_digests_must_agree():
    facts = healthy()
    by_name(facts, "gw2").facts["cluster"]["mapping_digest"] = "ffffff"
    assert problems_of(facts) == {("gw2", "mapping")}


def test_every_broker_has_a_member_node_in_its_rack_when_the_rack_has_one():
    view = gateway_facts("gw1").facts["cluster"]
    assert mapping_defects(view) == []
    view["mapping"]["1"]["node_id"] = "gw2"
    view["mapping"]["2"]["node_id"] = "gw9"
    view["mapping"]["3"] = {"error": "broker id 3 outside 1..2", "rack": "rack-c"}
    defects = mapping_defects(view)
    assert len(defects) == 3
    assert "broker 1 (rack rack-a) is mapped to gw2" in defects[0]
    assert "gw9, which is not a member" in defects[1]
    assert "broker 3 has no node" in defects[2]
    # a broker whose rack has no gateway may be served from any rack
    view = gateway_facts("gw1").facts["cluster"]
    view["members"] = [m for m in view["members"] if m["rack"] != "rack-c"]
    view["mapping"]["3"]["node_id"] = "gw1"
    assert mapping_defects(view) == []


def test_a_clock_off_the_median_is_named():
    facts = healthy()
    by_name(facts, "gw3").clock_offset_s = 2.0
    assert problems_of(facts) == {("gw3", "clock")}


def test_an_unreachable_host_is_named():
    facts = healthy()
    facts[0] = HostFacts("gw1", "gateway", error="no answer within 10 s")
    assert problems_of(facts) == {("gw1", "ssh")}


def test_haproxy_backend_down_is_named_on_the_load_balancer():
    facts = healthy("external", 2)
    for row in by_name(facts, "lb2").facts["haproxy"]["servers"]:
        if row["server"] == "gw3":
            row.update(status="DOWN", check="L4CON", check_desc="Connection refused")
    found = judge(fleet(2), facts)
    assert [(p.host, p.check) for p in found] == [("lb2", "haproxy")]
    assert "server gw3 is DOWN in 2 of 2 backends (L4CON Connection refused)" in found[0].detail


def test_haproxy_without_a_gateway_of_the_inventory():
    facts = healthy("external", 1)
    servers = by_name(facts, "lb1").facts["haproxy"]["servers"]
    servers[:] = [r for r in servers if r["server"] != "gw1"]
    assert problems_of(facts, 1) == {("lb1", "haproxy")}


def test_load_balancers_are_left_alone_in_internal_mode():
    facts = healthy("internal", 1)
    by_name(facts, "lb1").facts["unit"]["ActiveState"] = "inactive"
    assert judge(fleet(1), facts) == []


def test_the_verdict_line_names_hosts_and_checks():
    facts = healthy()
    by_name(facts, "gw2").facts["version"] = "0.0.9"
    text = table(fleet(), facts, judge(fleet(), facts), 1.25)
    assert text.splitlines()[-1] == "UNHEALTHY: 1 problem on 3 gateways, 0 load balancers: gw2 (version) (1.2 s)"


def test_inventory_hosts_ssh_options_and_templates():
    tree = {
        "_meta": {"hostvars": {
            "a": {"ansible_host": "10.0.0.1", "gateway_rack_id": "r1", "gateway_http_port": "{{ port }}",
                  "ansible_ssh_common_args": "-o StrictHostKeyChecking=yes -o UserKnownHostsFile=/lab/known_hosts"},
            "b": {"ansible_port": 2222, "ansible_user": "ops", "gateway_node_id": "node-b"},
            "l": {}}},
        "all": {"children": ["gateways", "gateway_lb"]},
        "gateways": {"children": ["rack1"], "hosts": ["b"]}, "rack1": {"hosts": ["a"]}, "gateway_lb": {"hosts": ["l"]},
    }
    found = {t.name: t for t in targets(tree)}
    assert [t.name for t in targets(tree)] == ["b", "a", "l"]
    assert found["a"].known_hosts == "/lab/known_hosts" and found["a"].probe_args["http_port"] == 8888
    assert (found["b"].address, found["b"].port, found["b"].user, found["b"].node_id) == ("b", 2222, "ops", "node-b")
    assert found["l"].role == "lb" and found["l"].known_hosts is None
    assert known_hosts_file({"ansible_ssh_extra_args": "-oUserKnownHostsFile=/x"}) == "/x"


# --- rack-aware reads: the brokers' replica.selector.class -------------------------------------------------------

RACK_AWARE = "org.apache.kafka.common.replica.RackAwareReplicaSelector"


def with_selectors(selectors: dict | None) -> list[HostFacts]:
    facts = healthy()
    for host in facts:
        host.facts["replica_selectors"] = copy.deepcopy(selectors)
    return facts


def test_brokers_with_the_rack_aware_selector_are_no_problem() -> None:
    assert problems_of(with_selectors({"brokers": {"1": RACK_AWARE, "2": RACK_AWARE, "3": RACK_AWARE}})) == set()
    assert problems_of(with_selectors(None)) == set(), "no client networks: the brokers are not asked"


def test_a_broker_without_the_selector_is_named_once_for_the_fleet() -> None:
    facts = with_selectors({"brokers": {"1": RACK_AWARE, "2": None, "3": "org.apache.kafka.common.replica.LeaderSelector"}})
    found = [p for p in judge(fleet(), facts) if p.check == "replica-selector"]
    assert [(p.host, p.detail.split(";")[0]) for p in found] == [
        ("fleet", "broker 2 has replica.selector.class=(unset: the leader serves every fetch)"),
        ("fleet", "broker 3 has replica.selector.class=org.apache.kafka.common.replica.LeaderSelector")]
    assert all(RACK_AWARE in p.detail for p in found)


def test_a_node_that_could_not_ask_is_named() -> None:
    facts = healthy()
    by_name(facts, "gw2").facts["replica_selectors"] = {"error": "KafkaException: timed out"}
    assert problems_of(facts) == {("gw2", "replica-selector")}
