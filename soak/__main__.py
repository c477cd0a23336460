"""``python -m soak``: a gateway cluster under continuous client load while nodes die and brokers restart, counted.

Three gateway nodes (one per rack) run on spare controller addresses of the lab. The cluster e2e tests' client
load runs through them from the client namespace — a librdkafka producer and Kafka's VerifiableProducer (both with
their clients' defaults for an idempotent producer, acks=all) and a two-member VerifiableConsumer group — while a
seeded chaos loop, every --interval seconds, takes one node down (alternately kill -9 and SIGTERM), brings it back
after --down seconds, and every --broker-every rounds restarts one broker as well. A second, direct leg — the same
clients on a topic of their own, on the controller, bootstrapped from the brokers — lives through the same broker
restarts without any gateway: the control that says what a broker restart does to applications on its own.

Every client reports each record's outcome (acknowledged, or the error the application was told) and the group
reports every record and every failed commit (lab/clients/outcomes.py); every client's own errors (librdkafka's
error_cb, the Java tools' WARN/ERROR lines by logger class) are kept beside them. The soak fails when a leg lost or
duplicated an acknowledged message, or when the gateway leg was told of an error, of a record or of the client's
own, that the direct leg's same client was not also told of during the same broker restart, one for one (an error
outside any broker restart is the gateway's by definition). The figures of both legs, what was excused and the
chaos events go to a JSON file.

Everything is bounded: the load is --rate messages/s per producer for --minutes, the chaos loop stops when the
load has been sent, and every wait has a timeout. Do not run it beside the test suite or the benchmark: it uses
three of the lab's spare controller addresses (198.18.0.6-8 on instance 0) and port 6969.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import ElectionType
from confluent_kafka.admin import AdminClient

from gateway_app.cluster_names import group_name, topic_name
from lab.state import LabState
from lab.clients import outcomes
from lab.clients.load import ClientLoad
from lab.gateway_process import CLUSTER_PORT_START as PORT_START, ClusterNode
from lab.provenance import commit

REPO = Path(__file__).resolve().parent.parent
RACKS = ("rack-a", "rack-b", "rack-c")
FIRST_ADDRESS_INDEX = 4  # gateway_addresses[4:7]: clear of the cluster tests' [0:4] and the benchmark's [-1]
READY_S = 600  # a node or a consumer group may start slowly on a busy machine; a soak is not a timing test
EXIT_S = 60  # a SIGTERM'd node drains (5 s here) and leaves its group (up to 10 s); measured over 20 s at load 40
NODE_SETTLE_S = 10.0  # after a node is back: clients refresh Metadata and reconnect (librdkafka's backoff, up to 10 s)
PAUSE_SLACK_S = 1.0  # a pause begins at the last record before the action; allow for the clocks' rounding
BROKER_ERROR_GRACE_S = 35  # after a restart returns: a request stuck on the old broker times out in 30 s (Java default)
ELECT_S = 60  # the restarted broker's replicas are back in sync within seconds; a bound for a busy machine


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the producers send (default 10)")
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second per producer (default 100)")
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between chaos rounds (default 30)")
    parser.add_argument("--down", type=float, default=5.0, help="seconds a node stays down (default 5)")
    parser.add_argument("--broker-every", type=int, default=3,
                        help="also restart one broker every N rounds, 0 for never (default 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the chaos choices (default 1)")
    parser.add_argument("--out", type=Path, default=Path("soak-results.json"))
    parser.add_argument("--keep", type=Path, default=None,
                        help="copy every client's events and log and every node's log to this directory at the end")
    return parser.parse_args(argv)


class Cluster:
    def __init__(self, lab: LabState, workdir: Path) -> None:
        self.lab, self.workdir = lab, workdir
        self.cluster_id = f"soak-{uuid.uuid4().hex[:6]}"
        self.addresses = dict(zip(RACKS, lab.gateway_addresses[FIRST_ADDRESS_INDEX:FIRST_ADDRESS_INDEX + 3]))
        self.nodes = {rack: self._start(rack) for rack in RACKS}
        try:
            for node in self.nodes.values():
                node.wait_ready(READY_S)
        except BaseException:
            for node in self.nodes.values():
                node.kill()
            raise

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{address}:{PORT_START}" for address in self.addresses.values())

    def _start(self, rack: str) -> ClusterNode:
        return ClusterNode(self.lab, self.cluster_id, f"soak-{rack}", rack, self.addresses[rack], self.workdir)

    def take_down(self, rack: str, hard: bool) -> dict:
        """kill -9, or SIGTERM and wait for the exit; what happened goes into the round's event. A node that has not
        exited after EXIT_S is killed and the round says so: the soak counts on, and the report names it."""
        node = self.nodes[rack]
        if hard:
            node.kill()
            return {}
        started = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        try:
            return {"exit_code": node.proc.wait(EXIT_S), "exit_after_s": round(time.monotonic() - started, 1)}
        except subprocess.TimeoutExpired:
            node.kill()
            return {"exit_code": None, "exit_after_s": None, "killed_after_s": EXIT_S}

    def bring_back(self, rack: str) -> float:
        started = time.monotonic()
        self.nodes[rack] = self._start(rack)
        self.nodes[rack].wait_ready(READY_S)
        return time.monotonic() - started

    def stop(self) -> None:
        for rack, node in self.nodes.items():
            if node.proc.poll() is None:
                self.take_down(rack, hard=False)
        admin = AdminClient({"bootstrap.servers": self.lab.bootstrap_servers})
        admin.delete_topics([topic_name(self.cluster_id)], request_timeout=10)[topic_name(self.cluster_id)].exception()
        admin.delete_consumer_groups([group_name(self.cluster_id)], request_timeout=10)[group_name(self.cluster_id)].exception()


def restart_broker(lab: LabState, broker_id: int) -> None:
    subprocess.run([sys.executable, "-m", "lab", "--instance", str(lab.instance), "broker", "restart", str(broker_id)],
                   cwd=REPO, check=True, capture_output=True, timeout=READY_S)


def elect_preferred_leaders(lab: LabState) -> float:
    """Give leadership back to the restarted broker now, inside its restart's window, as an operator's rolling broker
    restart does. Else the brokers' own periodic election (every leader.imbalance.check.interval.seconds, 300 s)
    moves it at any later moment, and both legs' producers are told NOT_LEADER_OR_FOLLOWER outside every window,
    where the gateway leg's lines count against it (seen in a soak at 19:26:35, both legs within 3 s). Tried again
    while a replica is not yet back in sync; returns how long it took."""
    admin = AdminClient({"bootstrap.servers": lab.bootstrap_servers})
    started = time.monotonic()
    while True:
        failed = {tp: error for tp, error in admin.elect_leaders(ElectionType.PREFERRED, None).result(timeout=30).items()
                  if error is not None}
        if not failed:
            return time.monotonic() - started
        if time.monotonic() - started > ELECT_S:
            raise AssertionError(f"preferred leaders not elected within {ELECT_S} s: {failed}")
        time.sleep(1)


def chaos(args: argparse.Namespace, lab: LabState, cluster: Cluster, load: ClientLoad) -> list[dict]:
    """Rounds until the gateway leg's producers are done (or their time is up); returns what was done when
    ("t" seconds into the run; "at" and "broker_window" in wall-clock time, as the clients report)."""
    rng = random.Random(args.seed)
    events: list[dict] = []
    began = time.monotonic()
    deadline = began + args.minutes * 60
    round_no = 0
    while time.monotonic() < deadline and not load.producers_done():
        time.sleep(min(args.interval, max(0.0, deadline - time.monotonic())))
        if time.monotonic() >= deadline or load.producers_done():
            break
        round_no += 1
        rack, hard = rng.choice(RACKS), round_no % 2 == 1
        event = {"t": round(time.monotonic() - began, 1), "at": round(time.time(), 3), "node": f"soak-{rack}",
                 "signal": "KILL" if hard else "TERM"}
        event.update(cluster.take_down(rack, hard))
        time.sleep(args.down)
        event["back_after_s"] = round(args.down + cluster.bring_back(rack), 1)
        if args.broker_every and round_no % args.broker_every == 0:
            broker_id = rng.choice([b.id for b in lab.brokers])
            started, wall = time.monotonic(), time.time()
            restart_broker(lab, broker_id)
            event["broker_restarted"] = broker_id
            event["broker_back_after_s"] = round(time.monotonic() - started, 1)
            event["leaders_elected_after_s"] = round(elect_preferred_leaders(lab), 1)
            event["broker_window"] = [round(wall, 3), round(time.time() + BROKER_ERROR_GRACE_S, 3)]
        print(f"soak: {json.dumps(event)}", flush=True)
        events.append(event)
    return events


def broker_windows(events: list[dict]) -> list[tuple[float, float]]:
    """Each broker restart's window, cut short where the next node is taken down: an error after that point may be
    the node's doing, and is not excused by the broker restart."""
    downs = [e["at"] for e in events]
    windows = []
    for event in events:
        if "broker_window" in event:
            start, end = event["broker_window"]
            windows.append((start, min([end, *(t for t in downs if t > start)])))
    return windows


def node_windows(events: list[dict]) -> list[tuple[float, float]]:
    """Each gateway node's round (kill -9 or SIGTERM): from the signal until the node was back, plus NODE_SETTLE_S for
    the clients to find it again. A client's connection to the node ends in it, and the client says so (librdkafka's
    error_cb, the Java tools' WARN lines): counted against the gateway, and the only place such a line is allowed."""
    return [(e["at"], e["at"] + e.get("back_after_s", 0.0) + NODE_SETTLE_S) for e in events if "signal" in e]


def chaos_marks(events: list[dict], nodes: bool) -> list[tuple[float, str]]:
    """When each chaos action began (wall time) and what it was; the direct leg only lives through the brokers'."""
    marks = []
    for number, event in enumerate(events, 1):
        if nodes:
            marks.append((event["at"], f"round {number}: {event['signal']} {event['node']}"))
        if "broker_window" in event:
            marks.append((event["broker_window"][0], f"round {number}: broker {event['broker_restarted']} restart"))
    return marks


def attribute_pauses(figures: dict, marks: list[tuple[float, str]]) -> None:
    """Name, beside each longest pause, the chaos actions that began while it lasted (seconds after it began), or
    else the last one before it."""
    for fig in [*figures["producers"].values(), *figures["consumers"].values(), figures["group"]]:
        for prefix in ("produce", "consume"):
            began = fig.get(f"longest_{prefix}_pause_began")
            if began is None:
                continue
            ended = began + fig[f"longest_{prefix}_pause_s"]
            inside = [(at, what) for at, what in marks if began - PAUSE_SLACK_S <= at <= ended]
            before = [(at, what) for at, what in marks if at < began - PAUSE_SLACK_S]
            if inside:
                during = ", ".join(f"{what} at {at - began:+.1f} s" for at, what in sorted(inside))
            elif before:
                at, what = max(before)
                during = f"no chaos action in it; the last, {what}, {began - at:.1f} s before"
            else:
                during = "before the first round"
            fig[f"longest_{prefix}_pause_during"] = during


def judge(gateway: dict, direct: dict, events: list[dict]) -> dict:
    """Both legs' figures, the gateway-only errors, and the verdict. The records' errors and the client-level ones
    (librdkafka's error_cb, the Java tools' WARN/ERROR lines by logger class) are judged by one rule: each is the
    gateway's unless the direct leg's same client was told the same in the same broker restart, one for one."""
    attribute_pauses(gateway, chaos_marks(events, nodes=True))
    attribute_pauses(direct, chaos_marks(events, nodes=False))
    windows = broker_windows(events)
    records = outcomes.excuse(gateway.pop("_errors"), direct.pop("_errors"), windows)
    gateway_only = [{"client": client, "error": name, "at": t} for client, name, t in records.counted]
    told = outcomes.excuse(gateway.pop("_client_errors"), direct.pop("_client_errors"), windows)
    rounds = node_windows(events)
    in_rounds = [e for e in told.counted if any(start <= e[2] <= end for start, end in rounds)]
    outside = [e for e in told.counted if e not in in_rounds]
    client_only = outcomes.by_client_and_name(outside)
    lost = [f"{leg}: {p}" for leg, fig in (("gateway", gateway), ("direct", direct)) for p in outcomes.problems(fig)
            if "acked but never consumed" in p or "more than once" in p or "no producer sent" in p]
    return {"gateway": gateway, "direct": direct, "gateway_only_errors": gateway_only,
            "excused_errors": outcomes.by_client_and_name(records.excused),
            "gateway_only_client_errors": client_only,
            "gateway_only_client_error_times": [{"client": client, "error": name, "at": t} for client, name, t in outside],
            "node_round_client_errors": outcomes.by_client_and_name(in_rounds),
            "excused_client_errors": outcomes.by_client_and_name(told.excused),
            "ok": not lost and not gateway_only and not client_only,
            "failure": lost + [f"gateway only: {e}" for e in gateway_only]
            + [f"gateway only client error: {n}x {what}" for what, n in client_only.items()]}


def unclean_exits(events: list[dict]) -> list[str]:
    """Every SIGTERM'd node must drain and exit 0 within EXIT_S: the rounds where one did not."""
    found = []
    for event in events:
        if event.get("signal") != "TERM":
            continue
        if "killed_after_s" in event:
            found.append(f"{event['node']}: SIGTERM'd and not exited after {EXIT_S} s (killed)")
        elif event.get("exit_code") != 0:
            found.append(f"{event['node']}: SIGTERM'd and exited with {event.get('exit_code')}")
    return found


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    lab = LabState.load()
    count = int(args.rate * args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="kgw-soak-") as tmp:
        workdir = Path(tmp)
        cluster = Cluster(lab, workdir)
        load = ClientLoad(lab, workdir, cluster.bootstrap, count, args.rate)
        control = ClientLoad(lab, workdir, lab.bootstrap_servers, count, args.rate, direct=True)
        print(f"soak: cluster {cluster.cluster_id} at {cluster.bootstrap}; {count} messages per producer at "
              f"{args.rate}/s on each leg; gateway leg topic {load.topic}, direct leg topic {control.topic}", flush=True)
        result: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "cluster": cluster.cluster_id,
                        "commit": commit(), "command": " ".join(["python -m soak", *(argv or sys.argv[1:])]),
                        "kafka_version": getattr(lab, "kafka_version", None), "began": round(time.time(), 3)}
        try:
            for leg in (control, load):  # both groups settle before either leg sends: the legs run side by side
                leg.start_group()
            for leg in (control, load):
                leg.wait_group(READY_S)
            for leg in (control, load):
                leg.start_producers()
            result["events"] = chaos(args, lab, cluster, load)
            result.update(judge(load.finish(), control.finish(), result["events"]))
            unclean = unclean_exits(result["events"])
            if unclean:
                result["ok"] = False
                result["failure"] += unclean
        except (AssertionError, subprocess.SubprocessError) as error:  # a wait or a broker restart that gave up
            result["ok"], result["failure"] = False, [f"{type(error).__name__}: {error}"]
        finally:
            for leg in (load, control):
                leg.stop()
            cluster.stop()
            for leg in (load, control):
                leg.delete()
            if args.keep is not None:  # the clients' own words and the nodes' logs, to look a failure up in
                shutil.copytree(workdir, args.keep, dirs_exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for leg in ("gateway", "direct"):
        if leg in result:
            print(f"soak: {leg} leg\n{outcomes.summary(result[leg])}")
    print(f"soak: gateway-only application errors: {len(result.get('gateway_only_errors', []))}; gateway-only "
          f"client errors: {sum(result.get('gateway_only_client_errors', {}).values())}, "
          f"client errors in node rounds: {sum(result.get('node_round_client_errors', {}).values())}")
    print(f"soak: {'OK' if result['ok'] else 'FAILED: ' + '; '.join(result['failure'])[:2000]}")
    print(f"soak: results in {args.out}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
