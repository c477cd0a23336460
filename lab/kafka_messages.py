"""Regenerate gateway_app/protocol/kafka_messages.json from Kafka's own message definitions.

Kafka describes every request and response in JSON files (`common/message/*.json`) that ship inside the
kafka-clients jar; its Java classes are generated from them. The gateway reads client requests by the same
definitions, compacted here into one file: every request and response, with the common structs inlined and
the version ranges parsed, and nothing a reader does not need (docs, defaults, map keys).

    .venv/bin/python -m lab.kafka_messages                       # the jar of Kafka 4.4.0, fetched with Maven
    .venv/bin/python -m lab.kafka_messages --jar kafka-clients.jar

tests/lab/test_kafka_messages_drift.py fails when the lab's Kafka defines a version the file does not know.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent.parent
OUTPUT = REPO_DIR / "gateway_app" / "protocol" / "kafka_messages.json"
DEFAULT_KAFKA_VERSION = "4.4.0"
_COMMENT = re.compile(r"^\s*//.*$", re.MULTILINE)


def versions(text: str | None) -> list[int | None] | None:
    """Kafka's version range ("0+", "3-5", "7", "none") as [low, high], high None for open-ended."""
    if text is None or text == "none":
        return None
    if text.endswith("+"):
        return [int(text[:-1]), None]
    low, _, high = text.partition("-")
    return [int(low), int(high or low)]


def _field(raw: dict, structs: dict[str, list[dict]]) -> dict:
    kind = raw["type"]
    array = kind.startswith("[]")
    element = kind[2:] if array else kind
    field: dict = {"name": raw["name"], "type": "struct" if element[0].isupper() else element, "array": array,
                   "versions": versions(raw["versions"])}
    if "nullableVersions" in raw:
        field["nullable"] = versions(raw["nullableVersions"])
    if "tag" in raw:
        field["tag"] = raw["tag"]
        field["tagged"] = versions(raw.get("taggedVersions", raw["versions"]))
    if "entityType" in raw:
        field["entity"] = raw["entityType"]
    if field["type"] == "struct":
        children = raw.get("fields", structs.get(element))
        if children is None:
            raise ValueError(f"{raw['name']}: struct {element} is defined nowhere")
        field["fields"] = [_field(child, structs) for child in children]
    return field


def compact(definitions: dict[str, str]) -> dict:
    """{file name: JSON text} of Kafka's message definitions -> the gateway's compact file."""
    messages: dict[str, dict[str, dict]] = {"request": {}, "response": {}}
    for name in sorted(definitions):
        spec = json.loads(_COMMENT.sub("", definitions[name]))
        if spec.get("type") not in messages or "apiKey" not in spec:
            continue  # headers, records and data messages: not requests or responses of an API
        structs = {struct["name"]: struct["fields"] for struct in spec.get("commonStructs", [])}
        messages[spec["type"]][str(spec["apiKey"])] = {
            "name": spec["name"].removesuffix("Request").removesuffix("Response"),
            "valid": versions(spec["validVersions"]),
            "flexible": versions(spec.get("flexibleVersions")),
            "unstable_latest": bool(spec.get("latestVersionUnstable", False)),
            "fields": [_field(field, structs) for field in spec.get("fields", [])],
        }
    return messages


def read_jar(jar: Path) -> dict[str, str]:
    with zipfile.ZipFile(jar) as archive:
        return {Path(name).name: archive.read(name).decode() for name in archive.namelist()
                if name.startswith("common/message/") and name.endswith(".json")}


def fetch_jar(kafka_version: str, into: Path) -> Path:
    subprocess.run(["mvn", "-q", "-B", "dependency:copy", f"-Dartifact=org.apache.kafka:kafka-clients:{kafka_version}",
                    f"-DoutputDirectory={into}"], check=True, cwd=into)
    return into / f"kafka-clients-{kafka_version}.jar"


def render(kafka_version: str, messages: dict) -> str:
    return json.dumps({"kafka_version": kafka_version, "messages": messages}, separators=(",", ":"), sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.kafka_messages", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kafka-version", default=DEFAULT_KAFKA_VERSION, help="the kafka-clients release to read")
    parser.add_argument("--jar", type=Path, help="a kafka-clients jar already at hand (its version: --kafka-version)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        jar = args.jar or fetch_jar(args.kafka_version, Path(scratch))
        args.output.write_text(render(args.kafka_version, compact(read_jar(jar))))
    print(f"wrote {args.output} from kafka-clients {args.kafka_version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
