"""Frames on which the gateway's request reader and Kafka's own parser parted ways, replayed.

Each fixture in fixtures/parser_disagreements was kept by `python -m lab.differential` (lab/differential.py)
with Kafka's outcome as its Java parser gave it: read (with the bytes read and the names found in the
fields the request guard checks) or refused. `disagreement` names a frame that broke the rule below when it
was kept; `case: boundary-...` names one where the gateway parts ways with Kafka as the rule allows
(stricter: Kafka reads, the gateway refuses; more lenient: Kafka refuses, the gateway reads).

The rule, replayed without Java: where Kafka read the frame, the gateway's reader, and the request checker
the relay runs, either refuse it or find exactly Kafka's names, the reader having read exactly Kafka's bytes;
the reader and the codec agree on read/refused; nothing raises but a refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.differential import checker_read, codec_read, gateway_read

FIXTURES = sorted((Path(__file__).parent / "fixtures" / "parser_disagreements").glob("*.json"))


@pytest.mark.parametrize("path", FIXTURES, ids=[path.stem for path in FIXTURES])
def test_the_gateway_reads_the_frame_as_kafka_does(path: Path) -> None:
    case = json.loads(path.read_text())
    key, version, body = case["api_key"], case["api_version"], bytes.fromhex(case["frame_hex"])
    kafka = case["kafka"]

    reader = gateway_read(key, version, body)
    checker = checker_read(key, version, body)
    decoded = codec_read(key, version, body)

    assert reader.ok == decoded.ok, (reader, decoded)
    if kafka["ok"]:
        names = {tuple(name) for name in kafka["names"]}
        if reader.ok:
            assert (reader.names, reader.end) == (names, kafka["end"])
        if checker.ok:
            assert checker.names == names


def test_fixtures_are_kept() -> None:
    assert FIXTURES, "lab/differential.py keeps its disagreements and boundary cases here"
