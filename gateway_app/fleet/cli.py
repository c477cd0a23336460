"""`kafka-gateway-doctor -i INVENTORY`: what is wrong with the fleet, in one command.

Reads the Ansible inventory the playbooks use, connects to every gateway (group `gateways`) and HAProxy host
(group `gateway_lb`) over SSH at once (asyncssh; host keys checked against the known_hosts file the inventory's SSH
options name, else ~/.ssh/known_hosts), and checks each host and the fleet as a whole. Prints a table, the
problems and one verdict line, and exits 1 when there is any problem (2 when the inventory cannot be read).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from .inventory import read_inventory, targets
from .verdict import Limits, judge


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="kafka-gateway-doctor", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-i", "--inventory", action="append", required=True,
                        help="Ansible inventory (file, directory or script), as for ansible-playbook; repeatable")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds each host gets, SSH included (default 10)")
    parser.add_argument("--parallel", type=int, default=32, help="hosts probed at the same time (default 32)")
    parser.add_argument("--wait", type=float, default=0.0,
                        help="check again until the fleet is healthy or this many seconds have passed (default 0: once)")
    parser.add_argument("--max-restarts", type=int, default=0,
                        help="systemd restarts of a gateway unit tolerated before it is a problem (default 0)")
    parser.add_argument("--max-clock-offset", type=float, default=0.5,
                        help="seconds a host's clock may be off the fleet's median (default 0.5)")
    args = parser.parse_args(argv)
    if args.timeout <= 0 or args.parallel < 1 or args.wait < 0 or args.max_restarts < 0 or args.max_clock_offset < 0:
        parser.error("--timeout must be positive, --parallel at least 1, the others not negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from .collect import collect  # asyncssh: the `ops` extra
        from .report import as_json, table
    except ImportError as error:
        print(f"kafka-gateway-doctor needs the ops extra (pip install 'kafka-gateway[ops]'): {error}", file=sys.stderr)
        return 2
    try:
        fleet = targets(read_inventory(args.inventory))
    except (OSError, RuntimeError, ValueError) as error:
        print(f"kafka-gateway-doctor: {error}", file=sys.stderr)
        return 2
    if not fleet:
        print("kafka-gateway-doctor: the inventory has no host in groups gateways or gateway_lb", file=sys.stderr)
        return 2
    limits = Limits(max_restarts=args.max_restarts, max_clock_offset_s=args.max_clock_offset)
    deadline = time.monotonic() + args.wait
    while True:
        began = time.monotonic()
        facts = asyncio.run(collect(fleet, args.timeout, args.parallel))
        problems = judge(fleet, facts, limits)
        elapsed = time.monotonic() - began
        if not problems or time.monotonic() + 2.0 > deadline:
            break
        time.sleep(2.0)
    print((as_json if args.json else table)(fleet, facts, problems, elapsed))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
