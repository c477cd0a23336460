"""`python -m gateway_app` / `kafka-gateway`: run one gateway node."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import resource
import sys
from pathlib import Path

from .config import ConfigError, load_settings
from .kafka_check import check_kafka_properties
from .settings_help import settings_help


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="kafka-gateway",
        description="Kafka gateway node: a Kafka-protocol proxy that rewrites broker addresses to gateway ports.",
        epilog=settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="KEY=VALUE settings file (environment wins)")
    parser.add_argument("--check-config", action="store_true", help="validate the settings and exit")
    return parser.parse_args(argv)


def _event_loop_factory(name: str):
    if name == "uvloop":
        try:
            import uvloop
            return uvloop.new_event_loop
        except ImportError:
            logging.getLogger(__name__).warning("uvloop not installed; using asyncio's loop")
    return asyncio.new_event_loop


def _open_files_for(connections: int) -> None:
    """Raise the soft open-files limit towards the hard one: each client connection holds two sockets.
    Warn if even the hard limit cannot hold GATEWAY_MAX_CONNECTIONS."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 2 * connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard == resource.RLIM_INFINITY else min(wanted, hard), hard))
    if hard != resource.RLIM_INFINITY and hard < wanted:
        logging.getLogger(__name__).warning(
            "open files limited to %d: fewer than the %d that GATEWAY_MAX_CONNECTIONS=%d needs (raise LimitNOFILE)",
            hard, wanted, connections)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.config is not None and not args.config.is_file():
            raise ConfigError("--config", f"file {args.config} does not exist")
        settings = load_settings(os.environ, args.config)
        check_kafka_properties(settings)
    except ConfigError as error:
        print(f"kafka-gateway: configuration error: {error}", file=sys.stderr)
        return 2
    if args.check_config:
        print("configuration OK")
        return 0
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .app import Node  # after logging is configured
    from .proxy.allocator import keep_heap_warm

    keep_heap_warm()
    _open_files_for(settings.max_connections)

    with asyncio.Runner(loop_factory=_event_loop_factory(settings.event_loop)) as runner:
        return runner.run(Node(settings).run())


if __name__ == "__main__":
    sys.exit(main())
