"""What every client of a counted load was told, message by message, and the figures the chaos tests and the soak
judge it by: per client acked, failed (by error name), consumed, missing, duplicated and the longest pauses.

The clients report through channels the harness owns: Kafka's VerifiableProducer / VerifiableConsumer print one
JSON event per record and per commit on stdout, and the librdkafka producer of cluster_clients.py writes one JSON
line per delivery callback. Nothing here counts a record as acknowledged unless its client said so.

Client-level errors are kept beside the per-record outcomes: librdkafka's error_cb (a JSON line of its own in the
producer's events) and the Java clients' WARN/ERROR log lines on stderr, by level and logger class. The soak judges
them as it judges the records' errors (`excuse`): each one on the gateway leg is the gateway's unless the direct leg's
same client had one of the same name in the same broker restart.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

NO_OUTCOME = "NoOutcome"  # a record the client was asked to send and never reported either way
EXIT = "ExitCode"  # a client process that ended other than by our SIGTERM or its own clean end
CRASHED = "Crashed"  # a consumer that ended on its own: VerifiableConsumer runs until stopped, and exits 0 on any error
# VerifiableConsumer.run() catches every Throwable, logs this at ERROR (to stderr here) and returns: exit code 0.
JAVA_CONSUMER_CRASH = "Error during processing, terminating consumer process"
Told = tuple[str, str, float | None]  # what a client was told: (client, error name, wall time or None)


@dataclass
class ProducerLog:
    name: str
    sent: int  # how many records the client was asked to send
    acked: dict[str, float] = field(default_factory=dict)  # value -> wall time of the acknowledgement
    failed: list[tuple[str, str, float]] = field(default_factory=list)  # (value, error name, wall time)
    exit_code: int | None = 0
    client_errors: list[tuple[str, float]] = field(default_factory=list)  # (name, wall time): not of a record


@dataclass
class ConsumerLog:
    name: str
    records: list[tuple[str, float]] = field(default_factory=list)  # (value, wall time it was handed over)
    commit_errors: list[tuple[str, float]] = field(default_factory=list)  # (error name, wall time)
    exit_code: int | None = 0
    crashed: str | None = None  # why it ended on its own (an exception class), None if we stopped it
    client_errors: list[tuple[str, float]] = field(default_factory=list)  # (name, wall time): not of a record


def events(lines: Iterable[str]) -> Iterable[dict]:
    """The JSON events among a client's output lines."""
    for line in lines:  # anything else on stdout (a stray log line) is not an event
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue


def error_name(exception: str) -> str:
    """'org.apache.kafka.common.errors.TimeoutException' -> 'TimeoutException'."""
    return exception.rsplit(".", 1)[-1] or "UnknownError"


# VerifiableConsumer reports a failed commit with the exception's getMessage() only, never its class. The messages
# Kafka's consumer (kafka-clients 4.4.0, read from its bytecode) throws from a commit, by the class it throws:
_COMMIT_MESSAGES = (
    (re.compile(r"^Commit cannot be completed since the group has already rebalanced"), "CommitFailedException"),
    (re.compile(r"^Offset commit cannot be completed since the consumer is not part of an active group"),
     "CommitFailedException"),
    (re.compile(r"^Offset commit cannot be completed since the consumer is undergoing a rebalance"),
     "RebalanceInProgressException"),
    (re.compile(r"^Timeout of \d+ms expired before successfully committing offsets"), "TimeoutException"),
)
_NAMED_EXCEPTION = re.compile(r"\b(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*(?:Exception|Error))\b")
UNRECOGNISED_COMMIT_ERROR = "UnrecognisedCommitError"


def commit_error_name(message: str | None) -> str:
    """The exception class behind the free text VerifiableConsumer prints for a failed commit: the class a message
    names (a wrapped cause prints as 'org....XException: ...'), else the class Kafka throws with that message, else
    the message itself with its numbers taken out, so that two unrelated errors never share a name."""
    text = (message or "").strip()
    for pattern, name in _COMMIT_MESSAGES:
        if pattern.match(text):
            return name
    named = _NAMED_EXCEPTION.search(text)
    if named:
        return named.group(1)
    gist = re.sub(r"\{.*\}|\d+", "N", text.split(". ")[0])[:80]
    return f"{UNRECOGNISED_COMMIT_ERROR}: {gist or 'no message'}"


_JAVA_LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] (WARN|ERROR) .* \(([\w.$]+)\)$")


def java_client_errors(stderr: Iterable[str]) -> list[tuple[str, float]]:
    """The WARN and ERROR lines of a Java tool's log (cluster_clients.LOG4J2's layout, local time), named by level
    and logger class: ("WARN NetworkClient", wall time)."""
    found = []
    for line in stderr:
        match = _JAVA_LOG_LINE.match(line)
        if match:
            stamp = time.mktime(time.strptime(match.group(1), "%Y-%m-%d %H:%M:%S")) + int(match.group(2)) / 1000
            found.append((f"{match.group(3)} {match.group(4).rsplit('.', 1)[-1]}", stamp))
    return found


def verifiable_producer(name: str, sent: int, lines: Iterable[str], exit_code: int | None,
                        stderr: Iterable[str] = ()) -> ProducerLog:
    log = ProducerLog(name, sent, exit_code=exit_code, client_errors=java_client_errors(stderr))
    for event in events(lines):
        if event.get("name") == "producer_send_success":
            log.acked[event["value"]] = event["timestamp"] / 1000
        elif event.get("name") == "producer_send_error":
            log.failed.append((event["value"], error_name(event.get("exception", "")), event["timestamp"] / 1000))
    return log


def librdkafka_producer(name: str, sent: int, lines: Iterable[str], exit_code: int | None) -> ProducerLog:
    log = ProducerLog(name, sent, exit_code=exit_code)
    for event in events(lines):
        if "client_error" in event:
            log.client_errors.append((event["client_error"], event["t"]))
        elif event.get("error") is None:
            log.acked[event["value"]] = event["t"]
        else:
            log.failed.append((event["value"], event["error"], event["t"]))
    return log


def java_crash(stderr: Iterable[str]) -> str | None:
    """The exception class VerifiableConsumer logged when it gave up (the line after its crash message), or None."""
    lines = iter(stderr)
    for line in lines:
        if JAVA_CONSUMER_CRASH in line:
            cause = next(lines, "").split(":", 1)[0].strip()
            return cause.rsplit(".", 1)[-1] or "unknown exception"
    return None


def verifiable_consumer(name: str, lines: Iterable[str], exit_code: int | None, stderr: Iterable[str] = (),
                        stopped: bool = True) -> ConsumerLog:
    """A VerifiableConsumer's events; `stopped`: it ended because we stopped it (else it crashed, whatever its exit code)."""
    stderr = list(stderr)
    crash = java_crash(stderr)
    log = ConsumerLog(name, exit_code=exit_code, crashed=crash or (None if stopped else "ended on its own"),
                      client_errors=java_client_errors(stderr))
    for event in events(lines):
        if event.get("name") == "record_data":
            log.records.append((event["value"], event["timestamp"] / 1000))
        elif event.get("name") == "offsets_committed" and not event.get("success", True):
            log.commit_errors.append((commit_error_name(event.get("error")), event["timestamp"] / 1000))
    return log


Pause = tuple[float, float | None]  # (seconds, wall time it began; None when there was none)


def longest_gap(times: Iterable[float]) -> Pause:
    ordered = sorted(times)
    gap, began = max(((b - a, a) for a, b in zip(ordered, ordered[1:])), key=lambda pause: pause[0], default=(0.0, None))
    return round(gap, 2), began


def longest_wait(records: list[tuple[str, float]], acked: dict[str, float]) -> Pause:
    """The longest time between consecutive records handed over while a record already acknowledged was waiting:
    a gap counts only when a record consumed after it had been acknowledged before it began (a consumer is not
    paused while its producers have not started, or have finished)."""
    ordered = sorted((t, acked.get(value, t)) for value, t in records)
    longest: Pause = (0.0, None)
    earliest_ack_after = float("inf")
    for (a, _), (b, ack) in zip(reversed(ordered[:-1]), reversed(ordered[1:])):
        earliest_ack_after = min(earliest_ack_after, ack)
        if earliest_ack_after <= a and b - a > longest[0]:
            longest = (b - a, a)
    return round(longest[0], 2), longest[1]


def _pause(prefix: str, pause: Pause) -> dict:
    """A pause as figures: its length, and when it began (the soak names the chaos round it falls in)."""
    return {f"longest_{prefix}_pause_s": pause[0], f"longest_{prefix}_pause_began": pause[1]}


def errors(producers: list[ProducerLog], consumers: list[ConsumerLog]) -> list[Told]:
    """Every application-visible error: (client, error name, wall time or None when it has no time)."""
    found: list[Told] = []
    for p in producers:
        found += [(p.name, name, t) for _, name, t in p.failed]
        found += [(p.name, NO_OUTCOME, None)] * max(0, p.sent - len(p.acked) - len(p.failed))
        if p.exit_code != 0:
            found.append((p.name, f"{EXIT} {p.exit_code}", None))
    for c in consumers:
        found += [(c.name, name, t) for name, t in c.commit_errors]
        if c.exit_code != 0:
            found.append((c.name, f"{EXIT} {c.exit_code}", None))
        if c.crashed:
            found.append((c.name, f"{CRASHED} {c.crashed}", None))
    return found


def client_errors(producers: list[ProducerLog], consumers: list[ConsumerLog]) -> list[Told]:
    """Every client-level error: (client, name, wall time)."""
    return [(log.name, name, t) for log in [*producers, *consumers] for name, t in log.client_errors]


def figures(producers: list[ProducerLog], consumers: list[ConsumerLog]) -> dict:
    """Per client: what it was told and what became of its records at the consumer group."""
    consumed = Counter(value for c in consumers for value, _ in c.records)
    result: dict = {"producers": {}, "consumers": {}}
    for p in producers:
        mine = set(p.acked) | {value for value, _, _ in p.failed}
        result["producers"][p.name] = {
            "sent": p.sent, "acked": len(p.acked), "failed": len(p.failed),
            "errors": dict(Counter(name for _, name, _ in p.failed)),
            "no_outcome": max(0, p.sent - len(p.acked) - len(p.failed)), "exit_code": p.exit_code,
            "consumed": sum(consumed[v] for v in mine),
            "missing": sum(1 for v in p.acked if v not in consumed),
            "duplicated": sum(1 for v in mine if consumed[v] > 1),
            "failed_but_consumed": sum(1 for v, _, _ in p.failed if v in consumed),
            "client_errors": dict(Counter(name for name, _ in p.client_errors)),
            **_pause("produce", longest_gap(p.acked.values())),
        }
    acked = {value: t for p in producers for value, t in p.acked.items()}
    for c in consumers:
        result["consumers"][c.name] = {
            "consumed": len(c.records), "commit_errors": dict(Counter(name for name, _ in c.commit_errors)),
            "exit_code": c.exit_code, "crashed": c.crashed,
            "client_errors": dict(Counter(name for name, _ in c.client_errors)),
            **_pause("consume", longest_wait(c.records, acked)),
        }
    known = set().union(*(set(p.acked) | {v for v, _, _ in p.failed} for p in producers)) if producers else set()
    result["group"] = {"consumed": sum(consumed.values()), "distinct": len(consumed),
                       "unknown": sum(1 for v in consumed if v not in known),
                       **_pause("consume", longest_wait([r for c in consumers for r in c.records], acked))}
    result["application_errors"] = dict(Counter(f"{client}: {name}" for client, name, _ in errors(producers, consumers)))
    return result


def problems(result: dict) -> list[str]:
    """What breaks the promise: a lost or duplicated record, or any error an application was told."""
    found = [f"{name}: {fig['missing']} acked but never consumed" for name, fig in result["producers"].items() if fig["missing"]]
    found += [f"{name}: {fig['duplicated']} consumed more than once" for name, fig in result["producers"].items() if fig["duplicated"]]
    found += [f"{count}x {error}" for error, count in result["application_errors"].items()]
    if result["group"]["unknown"]:
        found.append(f"the group consumed {result['group']['unknown']} values no producer sent")
    return found


@dataclass
class Excused:
    counted: list[Told]  # the gateway's: no direct-leg error of the same client and name in the same window left
    excused: list[Told]  # each matched by one of the direct leg's


def excuse(gateway: list[Told], direct: list[Told], windows: list[tuple[float, float]]) -> Excused:
    """Split the gateway leg's errors (of records, or client-level) into the gateway's and those the direct leg also
    shows. By count: each error the direct leg's same client got in a broker-restart window (wall-clock start, end)
    excuses one error of the same name and client in that window on the gateway leg, so one direct error cannot
    excuse a hundred gateway ones; outside every window nothing is excused."""
    def window(t: float | None) -> int | None:
        return next((i for i, (start, end) in enumerate(windows) if t is not None and start <= t <= end), None)

    excuses = Counter((client, name, window(t)) for client, name, t in direct if window(t) is not None)
    result = Excused([], [])
    for client, name, t in gateway:
        key = (client, name, window(t))
        if key[2] is not None and excuses[key] > 0:
            excuses[key] -= 1
            result.excused.append((client, name, t))
        else:
            result.counted.append((client, name, t))
    return result


def by_client_and_name(told: list[Told]) -> dict[str, int]:
    """{"client: name": count}, for the soak's report."""
    return dict(Counter(f"{client}: {name}" for client, name, _ in told))


def summary(result: dict) -> str:
    """One line per client, for test output and the soak's printout."""
    lines = []
    for name, fig in result["producers"].items():
        errs = ", ".join(f"{n} {k}" for k, n in fig["errors"].items()) or "none"
        told = ", ".join(f"{n} {k}" for k, n in fig["client_errors"].items()) or "none"
        lines.append(f"  {name}: acked {fig['acked']}/{fig['sent']}, failed {fig['failed']} ({errs}), client errors "
                     f"({told}), no outcome "
                     f"{fig['no_outcome']}, consumed {fig['consumed']}, missing {fig['missing']}, duplicated "
                     f"{fig['duplicated']}, longest produce pause {fig['longest_produce_pause_s']} s{_during(fig, 'produce')}")
    for name, fig in result["consumers"].items():
        errs = ", ".join(f"{n} {k}" for k, n in fig["commit_errors"].items()) or "none"
        crashed = f" (crashed: {fig['crashed']})" if fig["crashed"] else ""
        told = ", ".join(f"{n} {k}" for k, n in fig["client_errors"].items()) or "none"
        lines.append(f"  {name}: consumed {fig['consumed']}, commit errors {errs}, client errors ({told}), "
                     f"exit {fig['exit_code']}{crashed}, "
                     f"longest consume pause {fig['longest_consume_pause_s']} s{_during(fig, 'consume')}")
    group = result["group"]
    lines.append(f"  group: consumed {group['consumed']} ({group['distinct']} distinct), longest consume pause "
                 f"{group['longest_consume_pause_s']} s{_during(group, 'consume')}")
    return "\n".join(lines)


def _during(fig: dict, prefix: str) -> str:
    during = fig.get(f"longest_{prefix}_pause_during")  # set by the soak: the chaos round the pause began in
    return f" ({during})" if during else ""
