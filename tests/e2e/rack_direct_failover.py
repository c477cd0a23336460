"""Why test_rack_aware_reads.py's broker-restart test leaves kafka-python and aiokafka out: straight to the brokers,
no gateway, each consumer with a client.rack of its own (rack-c), a producer writing on, broker 3 (rack-c) stopped
and started again. Prints what each consumer counted against what was acknowledged.

    KGW_LAB_INSTANCE=1 flock /run/kgw-lab1.lock .venv/bin/python -m tests.e2e.rack_direct_failover

(two runs on Kafka 4.4.0 with the consumers of 8e1645b: librdkafka all of 9393 and 12350; aiokafka 0.14.0 6280 and
9110; kafka-python 3.0.12 nothing, still running at the deadline both times.)
"""

from __future__ import annotations

import json
import subprocess
import time

from lab.state import LabState
from tests.e2e.cluster_support import elect_preferred_leaders
from tests.e2e.test_rack_aware_reads import PYTHON, REPLICAS, REPO, PacedProducer, lab_broker, spread_topic

FAMILIES = ("kafka-python", "aiokafka", "librdkafka")


def main() -> None:
    lab = LabState.load()
    topic = spread_topic(lab, "rack-direct")
    count_file = f"/tmp/rack-direct-{topic}"
    with PacedProducer(lab, topic) as producer:
        procs = {family: subprocess.Popen(
            [PYTHON, "-m", "tests.e2e.rack_clients", family, "--bootstrap", lab.bootstrap_servers, "--topic", topic,
             "--partitions", str(len(REPLICAS)), "--count-file", count_file, "--max-s", "100", "--client-rack", "rack-c"],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for family in FAMILIES}
        time.sleep(6)
        lab_broker("stop", 3)
        time.sleep(4)
        lab_broker("start", 3)
        time.sleep(12)
        acked = producer.stop()
        with open(count_file, "w") as out:
            out.write(str(producer.sent))
        for family, proc in procs.items():
            try:
                out, _ = proc.communicate(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, _ = proc.communicate()
            counted = json.loads(out.strip().splitlines()[-1]) if out.strip() else {"still running at": "the deadline"}
            counted.pop("ids", None)
            print(f"{family}: acked {len(acked)}, counted {counted}")
    elect_preferred_leaders(lab)


if __name__ == "__main__":
    main()
