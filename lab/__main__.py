"""``python -m lab``: the one lab tool (up / status / down, hosts, brokers, inventory, demo)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from . import core, kafka_versions
from .layout import Layout
from .shell import pid_alive
from .state import LabState


def cmd_up(args: argparse.Namespace) -> int:
    try:
        kafka_version = kafka_versions.selected(args.kafka_version)  # $KGW_KAFKA_VERSION is validated here too
        if args.fresh_cache:
            _drop_caches(kafka_version)
        state = core.up(Layout(args.instance), [core.HostSpec.parse(h) for h in args.hosts], kafka_version)
    except (ValueError, core.KafkaVersionMismatch) as refused:
        print(f"lab up: {refused}", file=sys.stderr)
        return 2
    _print_status(state)
    return 0


def _kafka_version(text: str) -> str:
    try:
        return kafka_versions.validate(text)
    except ValueError as bad:
        raise argparse.ArgumentTypeError(str(bad)) from None


def _drop_caches(kafka_version: str) -> None:
    import shutil

    from . import kafka, rootfs

    from .layout import DEBIAN_RELEASES

    for path in (kafka.kafka_home(kafka_version), *(rootfs.rootfs_dir(release) for release in DEBIAN_RELEASES)):
        shutil.rmtree(path, ignore_errors=True)


def cmd_status(args: argparse.Namespace) -> int:
    if not LabState.exists(args.instance):
        print(f"lab instance {args.instance} is not up")
        return 1
    state = LabState.load(args.instance)
    if args.json:
        from dataclasses import asdict

        print(json.dumps(asdict(state), indent=2))
    else:
        _print_status(state)
    return 0


def _print_status(state: LabState) -> None:
    def alive(pid: int | None) -> str:
        return "running" if pid and pid_alive(pid) else "STOPPED"

    print(f"lab instance {state.instance}: bridge {state.bridge}, controller {state.controller_address}")
    print(f"  kafka {state.kafka_version or '(version not recorded)'} cluster {state.cluster_id}, "
          f"bootstrap {state.bootstrap_servers}")
    print(f"  SASL_PLAINTEXT (PLAIN) listener {state.sasl_bootstrap_servers}")
    for b in state.brokers:
        print(f"  broker {b.id}  {b.endpoint:<20} rack {b.rack:<7} netns {b.netns:<14} pid {b.pid} {alive(b.pid)}")
    for h in state.hosts:
        print(f"  host   {h.name:<6} {h.address:<15} rack {h.rack or '-':<7} groups {','.join(h.groups) or '-':<12} "
              f"{h.release:<8} pid {h.pid} {alive(h.pid)}")
    print(f"  client netns {state.client_netns} at {state.client_address} (no route to the brokers)")
    for c in state.rack_clients:
        print(f"  client netns {c.netns} at {c.address} in {c.rack}'s client network {c.network} (no route to the brokers)")
    print(f"  gateway process addresses on the controller: {', '.join(state.gateway_addresses)}")
    print(f"  ssh: ssh -i {state.ssh_key} root@<host address>")
    if state.timings:
        print("  last up took: " + ", ".join(f"{k} {v:.1f}s" for k, v in state.timings.items())
              + f" (total {sum(state.timings.values()):.1f}s)")


def cmd_down(args: argparse.Namespace) -> int:
    core.down(Layout(args.instance))
    return 0


def cmd_host(args: argparse.Namespace) -> int:
    layout = Layout(args.instance)
    state = LabState.load(args.instance)
    if args.action == "add":
        core.add_hosts(layout, state, [core.HostSpec.parse(h) for h in args.names])
    else:
        core.remove_hosts(layout, state, args.names)
    return 0


def cmd_broker(args: argparse.Namespace) -> int:
    layout = Layout(args.instance)
    state = LabState.load(args.instance)
    if args.action in ("stop", "restart"):
        core.stop_broker(state, args.id)
    if args.action in ("start", "restart"):
        core.start_brokers(layout, state, only=[args.id])
    return 0


def cmd_inventory(args: argparse.Namespace) -> int:
    from .inventory import inventory

    print(json.dumps(inventory(LabState.load(args.instance)), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import demo

    return demo(LabState.load(args.instance), args.bootstrap)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    parser.add_argument("--instance", type=int, default=int(os.environ.get("KGW_LAB_INSTANCE", "0")),
                        help="lab instance number, own bridge and subnets (default: $KGW_LAB_INSTANCE or 0)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("up", help="start brokers, hosts and the client namespace (idempotent)")
    p.add_argument("--hosts", nargs="*", default=list(core.DEFAULT_HOSTS),
                   help="hosts as NAME[:RACK][@GROUP[+GROUP]][%%RELEASE], RELEASE bookworm (default) or trixie "
                        "(default: %(default)s)")
    p.add_argument("--kafka-version", type=_kafka_version, default=None,
                   help=f"the Apache Kafka release the brokers and the Java tools run: {kafka_versions.SUPPORTED_TEXT}; "
                        f"jars cached per release (default: ${kafka_versions.ENV_VAR} or "
                        f"{kafka_versions.DEFAULT_KAFKA_VERSION}). A running lab keeps its release: take it down to "
                        "change it")
    p.add_argument("--fresh-cache", action="store_true",
                   help="drop the cached jars (of this release) and root file systems first (to time a cold start)")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("status", help="what runs and where")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    sub.add_parser("down", help="stop everything and remove namespaces, containers, cgroups").set_defaults(func=cmd_down)

    p = sub.add_parser("host", help="add or remove lab hosts of a running lab")
    p.add_argument("action", choices=["add", "remove"])
    p.add_argument("names", nargs="+", help="add: NAME[:RACK][@GROUP][%%RELEASE]; remove: NAME")
    p.set_defaults(func=cmd_host)

    p = sub.add_parser("broker", help="stop, start or restart one broker")
    p.add_argument("action", choices=["stop", "start", "restart"])
    p.add_argument("id", type=int)
    p.set_defaults(func=cmd_broker)

    sub.add_parser("inventory", help="print an Ansible inventory (JSON) of the lab hosts").set_defaults(func=cmd_inventory)
    p = sub.add_parser("demo", help="produce and consume a message from a lab host, or through a gateway")
    p.add_argument("--bootstrap", metavar="HOST:PORT",
                   help="go through this gateway from the client namespace (which cannot reach the brokers)")
    p.set_defaults(func=cmd_demo)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
