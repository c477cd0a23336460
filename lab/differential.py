"""A differential fuzzer: the gateway's request reader against Kafka's own Java parser.

For every request version both sides define, requests are built valid from sample values (codec.encode,
names such as "orders-7" or the reserved "_gateway_lab_members" and topic ids in the fields the request
guard checks), then mutated where parsers part ways: truncations, rewritten lengths and array counts (huge,
negative, null, 5-byte varints, a 5th byte with its high bit set, non-minimal encodings), tag sections with
changed counts, declared sizes and tag numbers or an unknown tag inserted, nullable-struct markers, flipped,
inserted and deleted bytes. Each frame is read by

- Kafka (lab/parser_oracle/ParserOracle.java: the generated `read()` a broker runs, then the generated JSON
  converter; the names are collected from that JSON by the gateway's own specs; `Oracle.read_responses` reads
  response bodies the same way, as a client does),
- the gateway's request reader (reserved.request_reader, with a ReservedNames that matches nothing and
  records every value the reader compares),
- the gateway's codec (codec.decode, the names collected from the dict by the same specs).

The rule that matters for the request guard: when Kafka reads a frame, the gateway either refuses it
(WireError, IndexError, struct.error: stricter than Kafka is allowed, and counted apart) or finds exactly
the names Kafka found, having read exactly as many bytes. The reader and the codec must also agree on
read/refused. Anything else is a disagreement: printed, and kept in tests/unit/fixtures/parser_disagreements
for tests/unit/test_parser_disagreements.py to replay.

    .venv/bin/python -m lab.differential --frames 1000000 [--seed N] [--libs DIR] [--seconds S]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
import re
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from gateway_app.protocol import codec, message_specs
from gateway_app.protocol.message_specs import REQUEST, FieldSpec, MessageSpec
from gateway_app.protocol.reserved import REGEX, ReservedNames, checked_kind, request_checker, request_reader
from gateway_app.protocol.wire import I8, I16, I32, WireError, write_uvarint

REPO = Path(__file__).resolve().parent.parent
ORACLE_SOURCE = Path(__file__).with_name("parser_oracle") / "ParserOracle.java"
ORACLE_CACHE = Path("/var/cache/kgw-lab/parser-oracle")
FIXTURES = REPO / "tests" / "unit" / "fixtures" / "parser_disagreements"
SUMMARY = REPO / "results" / "parser-differential.json"

RESERVED_GROUP = "_gateway_lab_members"
RESERVED_TOPIC = "_gateway_lab_members"
RESERVED_ID = bytes.fromhex("5ca1ab1e00000000000000000000cafe")
ZERO_ID = bytes(16)
JACKSON = "2.19.0"
REFUSALS = (WireError, IndexError, struct.error)
REQUEST_KIND, RESPONSE_KIND = 0, 1  # the first byte of each frame sent to ParserOracle
PAST_END = "EndedPastBytes"  # request_reader returned an offset beyond the body: counted as a refusal


# --- Kafka's side --------------------------------------------------------------------------------

def default_libs() -> Path:
    from lab.kafka import ensure_jars
    return ensure_jars() / "libs"


def resolve_libs(version: str) -> Path:
    """A libs dir with kafka-clients of this version and the jackson its JSON converters need, from Maven."""
    libs = ORACLE_CACHE / f"libs-{version}"
    if sorted(libs.glob("*.jar")) and (libs / ".complete").exists():
        return libs
    libs.mkdir(parents=True, exist_ok=True)
    for artifact in (f"org.apache.kafka:kafka-clients:{version}", f"com.fasterxml.jackson.core:jackson-databind:{JACKSON}",
                     f"com.fasterxml.jackson.core:jackson-core:{JACKSON}",
                     f"com.fasterxml.jackson.core:jackson-annotations:{JACKSON}", "org.slf4j:slf4j-api:1.7.36"):
        subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={libs}"],
                       check=True, timeout=600, cwd=libs)
    (libs / ".complete").write_text(version)
    return libs


def libs_version(libs: Path) -> str:
    jars = sorted(libs.glob("kafka-clients-*.jar"))
    if not jars:
        raise FileNotFoundError(f"no kafka-clients jar in {libs}")
    return jars[-1].name[len("kafka-clients-"):-len(".jar")]


def compile_oracle(libs: Path) -> Path:
    """The directory holding ParserOracle.class compiled against these libs (once per source and version)."""
    source = ORACLE_SOURCE.read_bytes()
    digest = hashlib.sha256(source + str(libs.resolve()).encode()).hexdigest()[:16]
    out = ORACLE_CACHE / libs_version(libs) / digest
    if not (out / "ParserOracle.class").exists():
        out.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", f"{libs}/*", str(ORACLE_SOURCE)],
                       check=True, capture_output=True, timeout=300)
    return out


KAFKA_SEEN: dict[str, str] = {}  # the version of the last oracle started, for the fixtures


class Oracle:
    """A ParserOracle process: frames in, one JSON answer per frame out."""

    def __init__(self, libs: Path) -> None:
        self.libs = libs
        self.version = KAFKA_SEEN["version"] = libs_version(libs)
        classes = compile_oracle(libs)
        self.classpath = f"{classes}:{libs}/*"
        listing = subprocess.run(self._cmd("versions"), check=True, capture_output=True, timeout=120, text=True)
        self.apis = {key: (low, stable, unstable) for key, low, stable, unstable in json.loads(listing.stdout)["apis"]}
        self.process = subprocess.Popen(self._cmd(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=1 << 16)

    def _cmd(self, *args: str) -> list[str]:
        return ["java", "-Xmx256m", "-XX:+UseSerialGC", "-cp", self.classpath,
                "ParserOracle", *args]

    def versions(self, api_key: int, unstable: bool) -> range:
        if api_key not in self.apis:
            return range(0)
        low, stable, newest = self.apis[api_key]
        return range(low, (newest if unstable else stable) + 1)

    def parse(self, frames: list[tuple[int, int, bytes]]) -> list[dict]:
        """Request bodies (api key, version, body) read as a broker reads them: one answer each."""
        return self._read(REQUEST_KIND, frames)

    def read_responses(self, frames: list[tuple[int, int, bytes]]) -> list[dict]:
        """Response bodies (api key, version, body) read as Kafka's clients read them: one answer each, with the
        top level's unknown tagged fields as [tag, size] pairs."""
        return self._read(RESPONSE_KIND, frames)

    def _read(self, kind: int, frames: list[tuple[int, int, bytes]]) -> list[dict]:
        return self.submit(kind, frames)()

    def submit(self, kind: int, frames: list[tuple[int, int, bytes]]) -> Callable[[], list[dict]]:
        """Send frames and return at once; the returned call waits for their answers. Kafka reads them while the
        caller works on something else (fuzz judges the previous batch meanwhile: two cores, not one after the
        other). One batch at a time: call the answers of one before submitting the next."""
        data = b"".join(struct.pack(">bhhi", kind, key, version, len(body)) + body for key, version, body in frames)
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        lines: list[bytes] = []

        def send() -> None:
            stdin.write(data)
            stdin.flush()

        def receive() -> None:
            for _ in frames:
                line = stdout.readline()
                if not line:
                    return
                lines.append(line)

        # both pipes served by threads of their own, so neither fills while the other waits
        workers = [threading.Thread(target=send, daemon=True), threading.Thread(target=receive, daemon=True)]
        for worker in workers:
            worker.start()

        def answers() -> list[dict]:
            for worker in workers:
                worker.join()
            if len(lines) < len(frames):
                raise RuntimeError(f"the parser oracle ended (exit {self.process.poll()})")
            return [json.loads(line) for line in lines]

        return answers

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# --- names, collected by the specs ------------------------------------------------------------------

_REPLACEMENTS = re.compile("\ufffd+")


def _json_key(spec: FieldSpec) -> str:
    return spec.name[:1].lower() + spec.name[1:]


def _category(spec: FieldSpec) -> str:
    kind = checked_kind(spec)
    if spec.type == "uuid":
        return "topic_id"
    return "regex" if kind == REGEX else "name"


def _normal(category: str, value: Any) -> str | None:
    """A found value as the comparison sees it; None for values no reserved name can be (null, empty, zero id)."""
    if value is None:
        return None
    if category == "topic_id":
        if isinstance(value, str):  # Kafka's Uuid.toString: url-safe base64 of the 16 bytes
            value = base64.urlsafe_b64decode(value + "==")
        elif isinstance(value, uuid.UUID):
            value = value.bytes
        return None if bytes(value) == ZERO_ID else bytes(value).hex()
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", "replace")
    # Bytes that are not UTF-8: Java and Python replace them with U+FFFD but not always as many times
    # (Java: one for a surrogate's three bytes; Python: one per byte). No replacement is ever part of a
    # reserved name, and the gateway compares bytes; so runs of replacements compare as one.
    return _REPLACEMENTS.sub("\ufffd", value) if value else None


def collect(struct_spec: FieldSpec, values: dict, key=_json_key, out: set | None = None) -> set[tuple[str, str]]:
    """(category, value) of every field the request guard checks, in a message read as a dict (Kafka's JSON:
    camelCase keys; the codec's: snake_case keys, key=lambda f: f.snake)."""
    out = set() if out is None else out
    for child in struct_spec.fields:
        value = values.get(key(child))
        if value is None:
            continue
        items = value if child.array else [value]
        if child.type == "struct":
            for item in items:
                if item is not None:
                    collect(child, item, key, out)
        elif checked_kind(child) is not None:
            category = _category(child)
            for item in items:
                found = _normal(category, item)
                if found is not None:
                    out.add((category, found))
    return out


class _Seen:
    """A topic id set that records every id the reader looks up, and holds none."""

    __slots__ = ("found",)

    def __init__(self, found: set) -> None:
        self.found = found

    def __contains__(self, topic_id: bytes) -> bool:
        value = _normal("topic_id", topic_id)
        if value is not None:
            self.found.add(("topic_id", value))
        return False


class RecordingNames(ReservedNames):
    """Reserved names that match nothing and record every name, regex and topic id the reader compares."""

    def __init__(self) -> None:
        self.found: set[tuple[str, str]] = set()
        super().__init__(frozenset(), (), _Seen(self.found), ())  # type: ignore[arg-type]

    def matches(self, name: bytes) -> bool:
        value = _normal("name", name)
        if value is not None:
            self.found.add(("name", value))
        return False

    def regex_reaches(self, pattern: bytes) -> bool:
        value = _normal("regex", pattern)
        if value is not None:
            self.found.add(("regex", value))
        return False


# --- the gateway's side ---------------------------------------------------------------------------

@dataclass
class Reading:
    ok: bool
    end: int = 0
    names: set = field(default_factory=set)
    error: str = ""


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def gateway_read(api_key: int, version: int, body: bytes) -> Reading:
    names = RecordingNames()
    try:
        end = request_reader(api_key, version)(memoryview(body), 0, names)
    except REFUSALS as exc:
        return Reading(False, error=_error(exc))
    if end > len(body):  # skipped fixed-width values or bytes past the end without looking: the bytes end early
        return Reading(False, error=f"{PAST_END}: read to {end} of {len(body)} bytes")
    return Reading(True, end, names.found)


def checker_read(api_key: int, version: int, body: bytes) -> Reading:
    """The request guard's own checker (reserved.request_checker: it stops after the last field that can
    hold a name), the function the relay runs."""
    check = request_checker(api_key, version)
    if check is None:  # an API whose requests cannot name a topic or group
        return Reading(True, -1)
    names = RecordingNames()
    try:
        end = check(memoryview(body), 0, names)
    except REFUSALS as exc:
        return Reading(False, error=_error(exc))
    return Reading(True, end, names.found)


def codec_read(api_key: int, version: int, body: bytes) -> Reading:
    message = message_specs.spec(REQUEST, api_key, version)
    try:
        values, end = codec.decode(message, memoryview(body), 0, budget=1 << 30)
    except REFUSALS as exc:
        return Reading(False, error=_error(exc))
    return Reading(True, end, collect(message.root, values, key=lambda f: f.snake))


def kafka_names(api_key: int, version: int, answer: dict) -> set[tuple[str, str]]:
    return collect(message_specs.spec(REQUEST, api_key, version).root, answer["json"])


def judge(api_key: int, version: int, body: bytes, answer: dict) -> tuple[str, str | None, dict]:
    """(outcome, disagreement kind or None, details) of one frame."""
    reader = gateway_read(api_key, version, body)
    decoded = codec_read(api_key, version, body)
    checker = checker_read(api_key, version, body)
    details: dict[str, Any] = {"reader": _reading(reader), "codec": _reading(decoded), "checker": _reading(checker),
                               "kafka": _kafka(api_key, version, answer)}
    if "json_error" in answer:
        return "oracle_json_error", None, details
    disagreement = None
    if reader.ok != decoded.ok:
        disagreement = "reader_vs_codec"
    elif reader.ok and decoded.ok and (reader.names != decoded.names or reader.end != decoded.end):
        disagreement = "reader_vs_codec"
    if answer["ok"]:
        kafka = details["kafka"]
        if reader.ok:
            if {tuple(x) for x in kafka["names"]} != reader.names:
                disagreement = "names_differ"
            elif kafka["end"] != reader.end:
                disagreement = "end_differs"
            outcome = "agree_read"
        else:
            outcome = "gateway_stricter"
        if checker.ok and {tuple(x) for x in kafka["names"]} != checker.names:
            disagreement = "checker_names_differ"  # the relay's own checker missed (or invented) a name Kafka read
    else:
        outcome = "gateway_lenient" if reader.ok else "agree_refused"
    return outcome, disagreement, details


def _reading(reading: Reading) -> dict:
    if not reading.ok:
        return {"ok": False, "error": reading.error}
    return {"ok": True, "end": reading.end, "names": sorted(reading.names)}


def _kafka(api_key: int, version: int, answer: dict) -> dict:
    if not answer["ok"]:
        return {"ok": False, "error": answer["error"]}
    if "json" not in answer:
        return {"ok": True, "end": answer["end"], "json_error": answer.get("json_error")}
    return {"ok": True, "end": answer["end"], "names": sorted(kafka_names(api_key, version, answer))}


# --- building valid requests ----------------------------------------------------------------------

NAME_SAMPLES = (RESERVED_TOPIC, RESERVED_GROUP + "_reader", "_gateway_other", "ördérs", "")
REGEX_SAMPLES = ("orders-.*", "_gateway_.*", "(a+)+", ".*", "[", "")
_RANGES = {"int8": (-128, 127), "int16": (-32768, 32767), "uint16": (0, 65535), "int32": (-(1 << 31), (1 << 31) - 1),
           "uint32": (0, (1 << 32) - 1), "int64": (-(1 << 63), (1 << 63) - 1)}


class Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.count = 0

    def name(self) -> str:
        self.count += 1
        return f"orders-{self.count}" if self.rng.random() < 0.7 else self.rng.choice(NAME_SAMPLES)

    def scalar(self, spec: FieldSpec) -> Any:
        rng = self.rng
        if spec.nullable and spec.type in ("string", "bytes", "records") and rng.random() < 0.15:
            return None
        kind = checked_kind(spec)
        if spec.type == "string":
            if kind == REGEX:
                return rng.choice(REGEX_SAMPLES)
            if kind is not None:
                return self.name()
            return rng.choice(("", "x", "client-1", "range", "consumer", "é" * rng.randint(1, 4)))
        if spec.type in ("bytes", "records"):
            return rng.randbytes(rng.choice((0, 1, 4, 12, 40)))
        if spec.type == "uuid":
            if kind is not None:
                return uuid.UUID(bytes=rng.choice((RESERVED_ID, ZERO_ID, rng.randbytes(16), rng.randbytes(16))))
            return uuid.UUID(bytes=rng.randbytes(16))
        if spec.type == "bool":
            return rng.random() < 0.5
        if spec.type == "float64":
            return rng.uniform(-1e6, 1e6)
        low, high = _RANGES[spec.type]
        return rng.choice((0, 1, -1 if low < 0 else 2, rng.randint(low, high), rng.randint(0, 100)))

    def field(self, spec: FieldSpec, depth: int) -> Any:
        rng = self.rng
        if spec.array:
            if spec.nullable and rng.random() < 0.15:
                return None
            element = spec.element()
            count = rng.choice((0, 1, 1, 2, 3)) if depth < 3 else rng.choice((0, 1))
            return [self.value(element, depth + 1) for _ in range(count)]
        if spec.type == "struct" and spec.nullable and rng.random() < 0.3:
            return None
        return self.value(spec, depth + 1)

    def value(self, spec: FieldSpec, depth: int) -> Any:
        if spec.type != "struct":
            return self.scalar(spec)
        values = {}
        for child in spec.fields:
            if child.tag is not None and self.rng.random() < 0.5:
                continue
            values[child.snake] = self.field(child, depth)
        return values

    def message(self, message: MessageSpec) -> dict:
        return self.value(message.root, 0)


# --- where to mutate: an encoder that says where each length, count, marker and tag section is ------

@dataclass
class Point:
    kind: str  # "compact" / "i16" / "i32" (a length or count), "marker", "tags", "tag"
    offset: int
    size: int  # bytes of its encoding
    value: int = 0
    end: int = 0  # "tags": the end of the section; "tag": the end of the tagged value
    size_offset: int = 0  # "tag": where the declared size is
    size_size: int = 0


def _varint(value: int) -> bytes:
    out = bytearray()
    write_uvarint(out, value)
    return bytes(out)


class Tracer:
    """codec's writer, recording the points a mutation can aim at."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.points: list[Point] = []

    def length(self, value: int, flexible: bool, wide: bool) -> None:
        start = len(self.out)
        if flexible:
            write_uvarint(self.out, value + 1)
            self.points.append(Point("compact", start, len(self.out) - start, value))
        else:
            self.out += (I32 if wide else I16).pack(value)
            self.points.append(Point("i32" if wide else "i16", start, 4 if wide else 2, value))

    def value(self, spec: FieldSpec, value: Any) -> None:
        if spec.type == "struct":
            self.struct(spec, value or {})
        elif spec.type in ("string", "bytes", "records"):
            wide = spec.type != "string"
            if value is None:
                self.length(-1, spec.flexible, wide)
                return
            data = value.encode() if isinstance(value, str) else bytes(value)
            self.length(len(data), spec.flexible, wide)
            self.out += data
        else:
            codec.write_scalar(self.out, spec, value)

    def field(self, spec: FieldSpec, value: Any) -> None:
        if spec.array:
            if value is None:
                self.length(-1, spec.flexible, True)
                return
            self.length(len(value), spec.flexible, True)
            element = spec.element()
            for item in value:
                self.value(element, item)
            return
        if spec.type == "struct" and spec.nullable:
            self.points.append(Point("marker", len(self.out), 1, -1 if value is None else 1))
            if value is None:
                self.out += I8.pack(-1)
                return
            self.out += I8.pack(1)
        self.value(spec, value)

    def struct(self, spec: FieldSpec, values: dict) -> None:
        for child in spec.untagged():
            self.field(child, values.get(child.snake, codec.default_value(child)))
        if not spec.flexible:
            return
        present = sorted((c for c in spec.tagged() if values.get(c.snake) is not None), key=lambda c: c.tag)
        section = Point("tags", len(self.out), 0, len(present))
        write_uvarint(self.out, len(present))
        section.size = len(self.out) - section.offset
        self.points.append(section)
        for child in present:
            inner = Tracer()
            inner.field(child, values[child.snake])
            start = len(self.out)
            write_uvarint(self.out, child.tag)
            size_offset = len(self.out)
            write_uvarint(self.out, len(inner.out))
            tag = Point("tag", start, size_offset - start, child.tag, size_offset=size_offset,
                        size_size=len(self.out) - size_offset)
            body = len(self.out)
            self.out += inner.out
            tag.end = len(self.out)
            self.points.append(tag)
            self.points.extend(Point(p.kind, p.offset + body, p.size, p.value, p.end + body if p.end else 0,
                                     p.size_offset + body if p.size_offset else 0, p.size_size)
                               for p in inner.points)
        section.end = len(self.out)


# --- mutations ------------------------------------------------------------------------------------

# Varint encodings a compact length or count can be given: (bytes, what Java reads them as).
SPECIAL_VARINTS = (
    b"\x00",  # 0: null
    b"\xff\xff\xff\xff\x0f",  # 0xffffffff: -1, a length of -2
    b"\xff\xff\xff\xff\x07",  # 0x7fffffff
    b"\x80\x80\x80\x80\x08",  # 0x80000000: a length of 0x7fffffff
    b"\x80\x80\x80\x80\x78",  # bits above 31 lost: 0x80000000
    b"\x81\x80\x80\x80\x70",  # bits above 31 lost: 1, a length of 0
    b"\xff\xff\xff\xff\xff",  # a 5th byte with its high bit: refused
    b"\xff\xff\xff\xff",  # cut short
    b"\x80\x80\x80\x80\x00",  # non-minimal 0
    b"\x81\x00",  # non-minimal 1
    b"\xff\xff\x01",  # 32767
    b"\x81\x80\x02",  # 32769: a string of 32768
    b"\x80\x80\x02",  # 32768
)
SPECIAL_I16 = (-1, -2, -32768, 32767, 0)
SPECIAL_I32 = (-1, -2, -(1 << 31), (1 << 31) - 1, 0, 1 << 24)


def _non_minimal(value: int) -> bytes:
    minimal = bytearray(_varint(value))
    minimal[-1] |= 0x80
    return bytes(minimal) + b"\x00"


class Mutator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def compact(self, value: int, remaining: int) -> bytes:
        rng = self.rng
        pick = rng.random()
        if pick < 0.4:
            return rng.choice(SPECIAL_VARINTS)
        if pick < 0.5:
            return _non_minimal(value + 1)
        return _varint(rng.choice((value, value + 2, max(0, value - 1) + 1, remaining + 1, remaining + 2,
                                   rng.randint(0, 300))) & 0xFFFFFFFF)

    def splices(self, body: bytes, points: list[Point]) -> list[tuple[int, int, bytes]]:
        """One mutation as (start, end, replacement) splices of the original bytes."""
        rng = self.rng
        choice = rng.random()
        if points and choice < 0.55:
            point = rng.choice(points)
            remaining = len(body) - point.offset
            if point.kind == "compact":
                return [(point.offset, point.offset + point.size, self.compact(point.value, remaining))]
            if point.kind == "i16":
                new = rng.choice(SPECIAL_I16 + (point.value + 1, point.value - 1, remaining, remaining + 1))
                return [(point.offset, point.offset + 2, I16.pack(max(-32768, min(32767, new))))]
            if point.kind == "i32":
                new = rng.choice(SPECIAL_I32 + (point.value + 1, point.value - 1, remaining, remaining + 1))
                return [(point.offset, point.offset + 4, I32.pack(max(-(1 << 31), min((1 << 31) - 1, new))))]
            if point.kind == "marker":
                return [(point.offset, point.offset + 1, I8.pack(rng.choice((-1, 0, 1, -128, 127))))]
            if point.kind == "tags":
                what = rng.random()
                if what < 0.6:  # an extra tag at the end of the section: unknown, known, or a duplicate
                    tag = rng.choice((rng.randint(0, 4), rng.randint(5, 200), 0x7FFFFFFF, 0xFFFFFFFF))
                    data = rng.randbytes(rng.choice((0, 1, 2, 5, 17)))
                    size = _varint(len(data)) if rng.random() < 0.85 else rng.choice(SPECIAL_VARINTS)
                    return [(point.offset, point.offset + point.size, _varint(point.value + 1)),
                            (point.end, point.end, _varint(tag) + size + data)]
                count = rng.choice((point.value + 1, max(0, point.value - 1)))
                encoded = _varint(count) if rng.random() < 0.6 else rng.choice(SPECIAL_VARINTS)
                return [(point.offset, point.offset + point.size, encoded)]
            if point.kind == "tag":
                if rng.random() < 0.7:  # the declared size
                    declared = point.end - point.size_offset - point.size_size
                    new = rng.choice((_varint(declared + 1), _varint(max(0, declared - 1)), _varint(0),
                                      _non_minimal(declared), rng.choice(SPECIAL_VARINTS)))
                    return [(point.size_offset, point.size_offset + point.size_size, new)]
                tag = rng.choice((point.value + 1, max(0, point.value - 1), rng.randint(0, 300)))
                return [(point.offset, point.offset + point.size, _varint(tag))]
        if not body:
            return [(0, 0, rng.randbytes(rng.randint(1, 6)))]
        at = rng.randrange(len(body) + 1)
        if choice < 0.75:  # a changed byte
            at = min(at, len(body) - 1)
            new = rng.choice((rng.randrange(256), body[at] ^ (1 << rng.randrange(8)), 0xFF, 0x00, 0x80))
            return [(at, at + 1, bytes((new,)))]
        if choice < 0.85:
            return [(at, at, rng.randbytes(rng.randint(1, 5)))]
        if choice < 0.95:
            return [(at, min(len(body), at + rng.randint(1, 5)), b"")]
        return [(len(body), len(body), rng.randbytes(rng.randint(1, 8)))]  # trailing bytes

    def mutate(self, body: bytes, points: list[Point]) -> bytes:
        rng = self.rng
        splices: list[tuple[int, int, bytes]] = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            splices += self.splices(body, points)
        out = bytearray(body)
        last = len(body) + 1
        for start, end, data in sorted(splices, key=lambda s: (s[0], s[1]), reverse=True):
            if end > last:  # overlaps one already applied
                continue
            out[start:end] = data
            last = start
        if rng.random() < 0.2:  # truncated
            out = out[:rng.randrange(len(out) + 1)]
        return bytes(out)


# --- the run --------------------------------------------------------------------------------------

@dataclass
class Run:
    frames: int = 0
    outcomes: Counter = field(default_factory=Counter)
    stricter: Counter = field(default_factory=Counter)  # Kafka read it, the gateway refused: by error
    lenient: Counter = field(default_factory=Counter)  # Kafka refused, the gateway read it: by Kafka's error
    disagreements: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)
    per_api: Counter = field(default_factory=Counter)
    past_end: int = 0  # request_reader returned an offset past the body (counted as a refusal)


def targets(oracle: Oracle, unstable: bool) -> list[tuple[int, int, MessageSpec]]:
    found = []
    for api_key in message_specs.api_keys():
        for version in message_specs.versions(api_key):
            if version in oracle.versions(api_key, unstable):
                found.append((api_key, version, message_specs.spec(REQUEST, api_key, version)))
    return found


def _short(error: str) -> str:
    """An error without its numbers: one bucket per kind of error."""
    return " ".join(re.sub(r"-?\d+", "N", error).split()[:9])


def save_fixture(api_key: int, version: int, body: bytes, kind: str, details: dict, boundary: bool = False) -> Path:
    """Keep a frame for tests/unit/test_parser_disagreements.py: what Kafka made of it and what the gateway did.
    Replayed against the agreement rule with Kafka's outcome as saved: a disagreement, or a boundary case
    (Kafka and the gateway part ways as the rule allows: the gateway stricter or more lenient)."""
    digest = hashlib.sha256(struct.pack(">hh", api_key, version) + body).hexdigest()[:12]
    FIXTURES.mkdir(parents=True, exist_ok=True)
    path = FIXTURES / f"{kind}-{message_specs.api_snake_name(api_key)}-v{version}-{digest}.json"
    path.write_text(json.dumps({
        "api_key": api_key, "api_version": version, "frame_hex": body.hex(),
        "disagreement": None if boundary else kind, "case": kind,
        "kafka_version": KAFKA_SEEN.get("version"), "kafka": details["kafka"], "found_by_reader": details["reader"], "found_by_checker": details["checker"],
        "found_by_codec": details["codec"],
    }, indent=1, ensure_ascii=False) + "\n")
    return path


def fuzz(oracle: Oracle, frames: int, seed: int, seconds: float | None = None, batch: int = 400,
         keep: bool = True, unstable: bool | None = None, progress: bool = False, boundary: int = 0) -> Run:
    """Fuzz until `frames` frames (or `seconds`); keep disagreements as fixtures if `keep`, and the first frame
    of up to `boundary` kinds of allowed divergence (stricter, more lenient, read past the end) too."""
    rng = random.Random(seed)
    builder, mutator = Builder(rng), Mutator(rng)
    unstable = oracle.version == message_specs.kafka_version() if unstable is None else unstable
    pool = targets(oracle, unstable)
    for api_key, version, _ in pool:
        request_reader(api_key, version)  # compiled before the clock matters
    run = Run()
    kept: Counter = Counter()
    boundaries: set = set()
    started = time.monotonic()
    last_report = started

    def build(count: int) -> list[tuple[int, int, bytes]]:
        chunk = []
        for _ in range(count):
            api_key, version, message = rng.choice(pool)
            tracer = Tracer()
            values = builder.message(message)
            tracer.struct(message.root, values)
            body = bytes(tracer.out)
            if rng.random() < 0.02:
                assert body == codec.encode(message, values), f"the tracer writes {message.name} v{version} unlike codec"
            if rng.random() < 0.9:
                body = mutator.mutate(body, tracer.points)
            chunk.append((api_key, version, body))
        return chunk

    def more() -> bool:
        return run.frames + len(chunk) < frames and (seconds is None or time.monotonic() - started < seconds)

    # Kafka reads each batch while this process builds the next one and judges the one before: both cores at work.
    chunk = build(min(batch, frames))
    pending = oracle.submit(REQUEST_KIND, chunk)
    while chunk:
        following = build(min(batch, frames - run.frames - len(chunk))) if more() else []
        answers = pending()
        if following:
            pending = oracle.submit(REQUEST_KIND, following)
        judged, chunk = chunk, following
        for (api_key, version, body), answer in zip(judged, answers):
            outcome, disagreement, details = judge(api_key, version, body, answer)
            run.frames += 1
            run.outcomes[outcome] += 1
            if details["reader"].get("error", "").startswith(PAST_END):
                run.past_end += 1
            run.per_api[message_specs.api_snake_name(api_key)] += 1
            case = None
            if outcome == "gateway_stricter":
                case = _short(details["reader"]["error"])
                run.stricter[case] += 1
            elif outcome == "gateway_lenient":
                case = _short(details["kafka"]["error"])
                run.lenient[case] += 1
            elif details["reader"].get("error", "").startswith(PAST_END):
                case = PAST_END
            if keep and case is not None and (outcome, case) not in boundaries and len(boundaries) < boundary:
                boundaries.add((outcome, case))
                label = "reader_ended_past_bytes" if case == PAST_END else outcome
                save_fixture(api_key, version, body, f"boundary-{label}", details, boundary=True)
            if disagreement is None:
                continue
            run.disagreements[disagreement] += 1
            label = (disagreement, api_key)
            if kept[label] < 3:
                kept[label] += 1
                example = {"disagreement": disagreement, "api_key": api_key, "api_version": version,
                           "frame_hex": body.hex(), **details}
                run.examples.append(example)
                print(f"DISAGREEMENT {disagreement} {message_specs.api_name(api_key)} v{version}: "
                      f"{json.dumps(details, ensure_ascii=False)[:600]} frame={body.hex()[:200]}", file=sys.stderr)
                if keep:
                    save_fixture(api_key, version, body, disagreement, details)
        now = time.monotonic()
        if progress and now - last_report > 15:
            last_report = now
            print(f"{run.frames} frames, {run.frames / (now - started):.0f}/s, "
                  f"disagreements {sum(run.disagreements.values())}", file=sys.stderr, flush=True)
    return run


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.differential", description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long even if frames remain")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--libs", type=Path, default=None,
                        help="a Kafka libs dir (kafka-clients and jackson jars); default: the lab's Kafka")
    parser.add_argument("--kafka-version", default=None,
                        help="resolve kafka-clients of this version (and jackson) with Maven, e.g. the specs' "
                             f"{message_specs.kafka_version()}")
    parser.add_argument("--no-fixtures", action="store_true", help="do not keep disagreements as test fixtures")
    parser.add_argument("--boundary-fixtures", type=int, default=0, metavar="N",
                        help="also keep the first frame of up to N kinds of allowed divergence as fixtures")
    parser.add_argument("--summary", type=Path, default=SUMMARY)
    args = parser.parse_args(list(argv) if argv is not None else None)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    libs = args.libs or (resolve_libs(args.kafka_version) if args.kafka_version else default_libs())
    oracle = Oracle(libs)
    started = time.monotonic()
    try:
        run = fuzz(oracle, args.frames, seed, args.seconds, keep=not args.no_fixtures, progress=True,
                   boundary=0 if args.no_fixtures else args.boundary_fixtures)
    finally:
        oracle.close()
    duration = time.monotonic() - started
    rate = run.frames / duration if duration else 0.0
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "gateway_app"], cwd=REPO, capture_output=True,
                                text=True).stdout.strip())
    summary = {
        "commit": commit, "gateway_app_uncommitted_changes": dirty,
        "command": " ".join(["python -m lab.differential", *(argv if argv is not None else sys.argv[1:])]),
        "seed": seed, "kafka_libs": str(libs), "kafka_version": oracle.version,
        "specs_version": message_specs.kafka_version(),
        "request_versions": len(targets(oracle, oracle.version == message_specs.kafka_version())),
        "apis_exercised": len(run.per_api), "frames": run.frames, "duration_seconds": round(duration, 1), "frames_per_second": round(rate),
        "outcomes": dict(run.outcomes.most_common()), "reader_ended_past_bytes": run.past_end,
        "disagreements": dict(run.disagreements.most_common()),
        "gateway_stricter_by_error": dict(run.stricter.most_common(40)),
        "gateway_lenient_by_kafka_error": dict(run.lenient.most_common(40)),
        "examples": run.examples[:40],
    }
    args.summary.parent.mkdir(parents=True, exist_ok=True)
    args.summary.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n")
    print(f"seed {seed}: {run.frames} frames in {duration:.0f} s ({rate:.0f} frames/s) against Kafka {oracle.version}")
    for name, count in run.outcomes.most_common():
        print(f"  {name:20} {count}")
    print(f"  (request_reader returned an offset past the bytes, counted as refused: {run.past_end})")
    print("gateway stricter than Kafka (Kafka read, gateway refused), by the gateway's error:")
    for name, count in run.stricter.most_common(15):
        print(f"  {count:8}  {name}")
    print("gateway more lenient (Kafka refused, gateway read), by Kafka's error:")
    for name, count in run.lenient.most_common(15):
        print(f"  {count:8}  {name}")
    print(f"disagreements: {sum(run.disagreements.values())} {dict(run.disagreements)}")
    print(f"summary: {args.summary}")
    return 1 if run.disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
