"""Collecting every host's facts over SSH (asyncssh), concurrently, each host within its own time limit."""

from __future__ import annotations

import asyncio
import json
import shlex
import time
import warnings
from pathlib import Path
from typing import Any

# cryptography 51 deprecates DSA, and asyncssh's modules name DSA types at import: four warnings on the doctor's
# stderr that say nothing about the fleet and that its user cannot act on. Only those are silenced.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated", module="asyncssh")
    import asyncssh

from .facts import HostFacts
from .inventory import Target

PROBE_SOURCE = (Path(__file__).parent / "probe.py").read_text()


def probe_command(target: Target) -> str:
    argv = ["python3", "-c", PROBE_SOURCE, target.role, json.dumps(target.probe_args, sort_keys=True)]
    if target.user != "root":
        argv = ["sudo", "-n", *argv]  # the env file and HAProxy's socket are not readable by others
    return shlex.join(argv)


async def _probe(target: Target) -> HostFacts:
    result = HostFacts(target.name, target.role)
    options: dict[str, Any] = {
        "port": target.port, "username": target.user,
        # () is asyncssh's "the user's ~/.ssh/known_hosts": host keys are always checked, never skipped.
        "known_hosts": target.known_hosts or (),
    }
    if target.key_file:
        options["client_keys"] = [target.key_file]
    async with asyncssh.connect(target.address, **options) as conn:
        async with conn.create_process(probe_command(target)) as process:
            started = json.loads(await process.stdout.readline() or "null")
            if not started:
                raise RuntimeError(f"probe did not start: {(await process.stderr.read()).strip()[-500:]}")
            sent = time.time()
            process.stdin.write("clock\n")
            remote = json.loads(await process.stdout.readline())["clock"]
            received = time.time()
            result.clock_offset_s = remote - (sent + received) / 2
            result.clock_uncertainty_s = (received - sent) / 2
            process.stdin.write_eof()
            body = await process.stdout.read()
            await process.wait()
            if process.exit_status != 0 or not body.strip():
                raise RuntimeError(f"probe exited {process.exit_status}: {(await process.stderr.read()).strip()[-500:]}")
            result.facts = json.loads(body)
    return result


async def probe_host(target: Target, timeout_s: float, slots: asyncio.Semaphore) -> HostFacts:
    async with slots:
        began = time.monotonic()
        try:
            result = await asyncio.wait_for(_probe(target), timeout_s)
        except asyncio.TimeoutError:
            result = HostFacts(target.name, target.role, error=f"no answer within {timeout_s:g} s")
        except (OSError, asyncssh.Error, RuntimeError, ValueError, KeyError) as error:
            result = HostFacts(target.name, target.role, error=f"{type(error).__name__}: {error}".strip())
        result.elapsed_s = time.monotonic() - began
        return result


async def collect(targets: list[Target], timeout_s: float, parallel: int) -> list[HostFacts]:
    slots = asyncio.Semaphore(max(1, parallel))
    return list(await asyncio.gather(*(probe_host(t, timeout_s, slots) for t in targets)))
