"""One JSON of the runs of broker-cpu-protocol.sh: each OUTDIR's steps (plus each module's pytest summary line) under
its label, the command and the lab's broker flags beside them. Used as:
    python3 results/suite-timings/broker-cpu-collect.py 'NOTE' LABEL=OUTDIR [LABEL=OUTDIR ...] > broker-cpu-X.json
"""
import json
import re
import sys
from pathlib import Path

MODULES = ("test_dataplane", "test_dataplane_broker_restart", "test_cluster_gateway", "test_lab")


def run(outdir: Path) -> dict:
    steps = {name: json.loads((outdir / f"{name}.json").read_text()) for name in ("lab-up", "idle", "restart")}
    for module in MODULES:
        steps[module] = json.loads((outdir / f"{module}.json").read_text())
        summary = [line for line in (outdir / f"{module}.log").read_text().splitlines()
                   if re.search(r"\d+ (passed|failed)", line) and " in " in line]
        steps[module]["pytest_summary"] = summary[-1].strip("= ") if summary else None
        steps[module]["failed"] = re.findall(r"^FAILED (\S+)", (outdir / f"{module}.log").read_text(), re.M)
    return steps


def main(note: str, pairs: list[str]) -> None:
    out = {"note": note, "command": "flock /run/kgw-lab0.lock results/suite-timings/broker-cpu-protocol.sh OUTDIR",
           "runs": {}}
    for pair in pairs:
        label, outdir = pair.split("=", 1)
        out["runs"][label] = run(Path(outdir))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
