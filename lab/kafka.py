"""Real Apache Kafka for the lab: jars from Maven Central, three KRaft brokers in three racks."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from . import frames, kafka_versions
from .cache_lock import cache_lock
from .layout import (BROKER_IDS, BROKER_PORT, CACHE_DIR, CONTROLLER_PORT, REPO_DIR, SASL_PORT, SASL_USERS, Layout,
                     broker_rack)
from .logs import rotated_if_large
from .shell import run, say, stop_pid, wait_until
from .state import Broker

POM = REPO_DIR / "lab" / "maven" / "pom.xml"
# Kafka 3.9 logs through reload4j: leave its slf4j binding out so every release logs through log4j2 (LOG4J2 below).
SECOND_LOGGING_BINDING = "slf4j-reload4j,reload4j"
RACK_AWARE_SELECTOR = "org.apache.kafka.common.replica.RackAwareReplicaSelector"
JAVA_HEAP = os.environ.get("KGW_LAB_BROKER_HEAP", "-Xms256m -Xmx768m").split()
# The brokers' other JVM flags. The lab's own default is Kafka's (G1, both compilers), so that the benchmark, the soak
# and the demo measure brokers as operators run them. The test suite (scripts/test) asks for a leaner JVM: a test
# broker lives for minutes on a 2-core machine shared with a second lab and the tests' clients, where C2's optimising
# compiles were the largest single use of its CPU (about 40% over a test module, 1.3 s of every start) and never paid
# back; one serial collector replaces G1's parallel and concurrent threads. Neither changes what Kafka does.
# Measured in results/suite-timings/broker-cpu-{before,after}.json.
BROKER_JVM = os.environ.get("KGW_LAB_BROKER_JVM", "-XX:+UseG1GC").split()
# Short-lived JVMs (the storage format, the test clients): C1 only and the serial collector start them in about half
# the time of G1 and C2, and what they do is the same. lab/clients/cluster_clients.py spells the same flags out: it
# runs by path, without the lab package.
LEAN_JVM = ["-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def kafka_home(version: str) -> Path:
    """Where one release's jars are cached: each release apart, so switching versions resolves each once."""
    return CACHE_DIR / f"kafka-{kafka_versions.validate(version)}"


def ensure_jars(version: str | None = None) -> Path:
    """Resolve the broker and tools jars of a release (default: the selected one) with Maven once; later runs find
    them in the cache."""
    version = kafka_versions.selected(version)
    home = kafka_home(version)
    marker = home / ".complete"
    # The cache is valid for the pom that filled it: change the pom and the jars are resolved again.
    pom_digest = hashlib.sha256(POM.read_bytes() + SECOND_LOGGING_BINDING.encode()).hexdigest()
    if marker.exists() and marker.read_text() == pom_digest:
        return home
    with cache_lock(f"kafka-{version}"):
        if not (marker.exists() and marker.read_text() == pom_digest):  # another lab instance may have resolved them
            _resolve_jars(version, home, pom_digest)
    return home


def _resolve_jars(version: str, home: Path, pom_digest: str) -> None:
    libs = home / "libs"
    say(f"resolving Apache Kafka {version} from Maven Central into {libs}")
    if libs.exists():
        shutil.rmtree(libs)
    maven_repo = [f"-Dmaven.repo.local={os.environ['KGW_LAB_MAVEN_REPO']}"] if "KGW_LAB_MAVEN_REPO" in os.environ else []
    run([
        "mvn", "-q", "-B", "-f", str(POM), *maven_repo, f"-Dkafka.version={version}",
        "dependency:copy-dependencies", f"-DoutputDirectory={libs}", f"-DexcludeArtifactIds={SECOND_LOGGING_BINDING}",
    ])
    (home / "log4j2.properties").write_text(LOG4J2)
    (home / ".complete").write_text(pom_digest)


def java_cmd(home: Path, main_class: str, *args: str, jvm: list[str] | None = None) -> list[str]:
    return [
        "java", *(jvm or ["-Xmx256m", "-XX:+UseG1GC"]), "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={home / 'log4j2.properties'}",
        "-cp", f"{home / 'libs'}/*", main_class, *args,
    ]


def broker_config(layout: Layout, broker_id: int, rack: str, data_dir: Path) -> str:
    voters = ",".join(f"{b}@{layout.broker_ip(b)}:{CONTROLLER_PORT}" for b in BROKER_IDS)
    ip = layout.broker_ip(broker_id)
    users = " ".join(f'user_{name}="{password}"' for name, password in SASL_USERS.items())
    return f"""\
process.roles=broker,controller
node.id={broker_id}
broker.rack={rack}
# KIP-392: a consumer that names its rack (the gateway names it for clients in a rack's client network) reads
# from the replica in its rack.
replica.selector.class={RACK_AWARE_SELECTOR}
controller.quorum.voters={voters}
listeners=PLAINTEXT://{ip}:{BROKER_PORT},SASL_PLAINTEXT://{ip}:{SASL_PORT},CONTROLLER://{ip}:{CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://{ip}:{BROKER_PORT},SASL_PLAINTEXT://{ip}:{SASL_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required {users};
log.dirs={data_dir}
num.partitions=3
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
share.coordinator.state.topic.replication.factor=3
share.coordinator.state.topic.min.isr=2
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.segment.bytes=67108864
# Sized for a 2-core test machine, not Kafka's defaults of 3 network threads per listener and 8 request handlers (for
# the broker and again for the controller): an idle handler or processor still wakes every 300 ms to poll.
num.network.threads=2
num.io.threads=2
"""


def broker_dir(layout: Layout, broker_id: int) -> Path:
    return layout.state_dir / f"kafka{broker_id}"


def wanted_config(layout: Layout, broker_id: int) -> str:
    return broker_config(layout, broker_id, broker_rack(broker_id), broker_dir(layout, broker_id) / "data")


def config_is_current(layout: Layout, broker_id: int) -> bool:
    """Was the broker started with the configuration this checkout would give it?"""
    config = broker_dir(layout, broker_id) / "server.properties"
    return config.exists() and config.read_text() == wanted_config(layout, broker_id)


def prepare_broker(layout: Layout, broker_id: int, cluster_id: str, version: str) -> Path:
    """Write server.properties and format KRaft storage (once per data directory)."""
    home = broker_dir(layout, broker_id)
    data = home / "data"
    config = home / "server.properties"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(wanted_config(layout, broker_id))
    if not (data / "meta.properties").exists():
        # 3.9 and 4.x take the same format flags for a static quorum (controller.quorum.voters), as the lab runs.
        # a one-shot tool: 1.5 s on the lean JVM, 3 s on G1 and C2
        run(java_cmd(kafka_home(version), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config),
                     jvm=LEAN_JVM))
    return config


def start_broker(layout: Layout, broker_id: int, version: str) -> Broker:
    config = broker_dir(layout, broker_id) / "server.properties"
    log = rotated_if_large(layout.log_dir / f"kafka{broker_id}.log")
    netns = layout.broker_netns(broker_id)
    with open(log, "ab") as out:
        command = java_cmd(kafka_home(version), "kafka.Kafka", str(config), jvm=JAVA_HEAP + BROKER_JVM)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, *command],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
    return Broker(
        id=broker_id, address=layout.broker_ip(broker_id), port=BROKER_PORT,
        rack=broker_rack(broker_id), netns=netns, pid=proc.pid,
    )


STOP_TIMEOUT_S = 45  # a broker's controlled shutdown, before it is killed


def stop_broker(broker: Broker) -> None:
    if broker.pid:
        stop_pid(broker.pid, timeout=STOP_TIMEOUT_S)
        broker.pid = None


def new_cluster_id() -> str:
    # KRaft wants a base64url-encoded UUID, as `kafka-storage random-uuid` prints. Like Kafka's Uuid.randomUuid(),
    # never one that starts with "-": `kafka-storage format -t -x2b…` reads it as an option (1 lab up in 64 failed).
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def wait_for_brokers(bootstrap: str, expected: int, timeout: float = 300.0) -> dict[int, str | None]:
    """Block until a broker's Metadata lists every broker; return {broker id: rack}.

    Raw Metadata frames rather than librdkafka's admin client: its DescribeCluster parsing once aborted the whole lab
    tool while Kafka 3.9.2 brokers were starting (rd_kafka_admin_response_parse: Assertion 'rko_result' failed)."""
    addresses = [(host, int(port)) for host, port in (address.rsplit(":", 1) for address in bootstrap.split(","))]
    seen: dict[int, str | None] = {}

    def ready() -> bool:
        for host, port in addresses:  # the first broker that answers: one still starting refuses or closes
            try:
                brokers = frames.metadata_brokers(host, port, timeout_s=5)
            except OSError:
                continue
            seen.clear()
            seen.update({broker_id: rack for broker_id, (_, _, rack) in brokers.items()})
            return len(seen) == expected
        return False

    wait_until(ready, timeout=timeout, interval=0.25, what=f"{expected} brokers in Metadata at {bootstrap}")
    return dict(seen)
