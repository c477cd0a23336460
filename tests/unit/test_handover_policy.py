"""The handover policy (gateway_app/proxy/handover.py): settle, spread, deadline, never towards an unready node."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from gateway_app.proxy.handover_policy import DEADLINE, IDLE, NOT_A_MEMBER, TARGET_NOT_READY, HandoverPolicy, Observed

TICK = 0.25


def run(policy: HandoverPolicy, connections: dict, until: float, stable_since: float = 0.0, start: float = 0.0,
        ready=lambda target: True, may_start: bool = True, idle_after_hold: bool = True):
    """Tick from `start` to `until`; connections go idle once held if idle_after_hold. Returns (hold times,
    closes as (key, outcome, time), refusals)."""
    held, closed, refused = {}, [], {}
    now = start
    live = dict(connections)
    while now <= until:
        observed = {k: Observed(target, idle_after_hold and k in held) for k, target in live.items()}
        decisions = policy.tick(now, stable_since, observed, ready, may_start)
        for key in decisions.hold:
            held[key] = now
        for key, outcome in decisions.close:
            closed.append((key, outcome, now))
            del live[key]
        for reason, count in decisions.refused.items():
            refused[reason] = refused.get(reason, 0) + count
        now += TICK
    return held, closed, refused


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 60), settle=st.floats(0, 30), spread=st.floats(0, 30), changed=st.floats(0, 20))
def test_nothing_before_the_settle_time_and_everything_within_the_spread(n, settle, spread, changed):
    policy = HandoverPolicy(settle, spread, deadline_s=5)
    connections = {i: ("gw-b", 6971) for i in range(n)}
    held, closed, _ = run(policy, connections, until=changed + settle + spread + 2, stable_since=changed)
    assert len(held) == n, "every foreign connection is handed over"
    assert min(held.values()) >= changed + settle
    assert max(held.values()) <= changed + settle + spread + TICK
    assert sorted(k for k, outcome, _ in closed if outcome == IDLE) == list(range(n))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(4, 80))
def test_the_closes_are_spread_evenly_not_bunched(n):
    spread = 20.0
    policy = HandoverPolicy(settle_s=0, spread_s=spread, deadline_s=5)
    held, _, _ = run(policy, {i: "target" for i in range(n)}, until=spread + 1)
    times = sorted(held.values())
    quarter = spread / 4
    for start in [t for t in times]:  # any quarter of the window gets about a quarter of them
        in_window = sum(1 for t in times if start <= t < start + quarter)
        assert in_window <= n / 4 + 3, (start, in_window, n)


def test_a_mapping_change_restarts_the_settle_time():
    policy = HandoverPolicy(settle_s=10, spread_s=0, deadline_s=5)
    held, _, _ = run(policy, {"c": "target"}, until=9.9, stable_since=0)
    assert not held
    held, _, _ = run(policy, {"c": "target"}, start=10, until=19.25, stable_since=9.5)  # the mapping changed at 9.5 s
    assert not held
    held, _, _ = run(policy, {"c": "target"}, start=19.5, until=20, stable_since=9.5)
    assert held == {"c": 19.5}


def test_connections_that_are_not_foreign_are_never_touched():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=1)
    held, closed, refused = run(policy, {"bootstrap": None, "own": None}, until=30)
    assert not held and not closed and not refused


def test_a_busy_connection_is_closed_at_the_deadline_and_an_idle_one_at_once():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    held, closed, _ = run(policy, {"busy": "target"}, until=10, idle_after_hold=False)
    assert closed == [("busy", DEADLINE, held["busy"] + 3)]
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    held, closed, _ = run(policy, {"quiet": "target"}, until=10)
    assert closed == [("quiet", IDLE, held["quiet"] + TICK)]


def test_never_towards_a_node_that_is_not_ready_and_each_refusal_is_counted():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    held, closed, refused = run(policy, {"a": "down", "b": "down"}, until=10, ready=lambda target: target != "down")
    assert not held and not closed
    assert refused[TARGET_NOT_READY] >= 2 * 4  # retried every RETRY_S, each attempt counted
    held, _, _ = run(policy, {"a": "down", "b": "down"}, start=10.25, until=14, ready=lambda target: True)
    assert set(held) == {"a", "b"}, "handed over once the node answers"


def test_an_unknown_verdict_waits_without_refusing():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    held, _, refused = run(policy, {"a": "probing"}, until=5, ready=lambda target: None)
    assert not held and not refused


def test_a_node_whose_own_view_is_not_current_hands_nothing_over():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    held, _, refused = run(policy, {"a": "target"}, until=5, may_start=False)
    assert not held and refused[NOT_A_MEMBER] > 0


def test_a_held_connection_still_closes_when_the_mapping_moves_back():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=3)
    assert policy.tick(0, 0, {"c": Observed("target", False)}, lambda t: True, True).hold == ["c"]
    decisions = policy.tick(1, 0, {"c": Observed(None, True)}, lambda t: True, True)
    assert decisions.close == [("c", IDLE)]
    assert policy.holding == 0


def test_a_connection_without_a_quiet_moment_stops_reading_at_half_the_deadline_and_closes_at_it():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=4)
    assert policy.tick(0, 0, {"busy": Observed("target", False)}, lambda t: True, True).hold == ["busy"]
    told = {t: policy.tick(t, 0, {"busy": Observed("target", False)}, lambda t: True, True) for t in (1, 2, 3, 4)}
    assert [t for t, d in told.items() if d.stop_reading] == [2], "once, at half the deadline"
    assert [(t, d.close) for t, d in told.items() if d.close] == [(4, [("busy", DEADLINE)])]


def test_a_held_connection_that_closed_on_its_own_is_reported_ended_once():
    policy = HandoverPolicy(settle_s=0, spread_s=0, deadline_s=4)
    assert policy.tick(0, 0, {"c": Observed("target", False)}, lambda t: True, True).hold == ["c"]
    assert policy.tick(0.25, 0, {}, lambda t: True, True).ended == ["c"]  # closed at its quiet moment
    assert policy.tick(0.5, 0, {}, lambda t: True, True).ended == [] and policy.holding == 0
