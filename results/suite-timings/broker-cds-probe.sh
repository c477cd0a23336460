#!/bin/sh
# What a class-data-sharing archive would save per broker start (not adopted yet): broker 1 restarted once with
# -XX:ArchiveClassesAtExit (the JVM writes the archive when it stops), then restarts measured without and with
# -XX:SharedArchiveFile. Leaves the brokers on the lab's own flags. Run: flock /run/kgw-lab0.lock sh results/suite-timings/broker-cds-probe.sh
mkdir -p /tmp/brokers-cds
B="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
KGW_LAB_BROKER_JVM="$B -XX:ArchiveClassesAtExit=/tmp/brokers-cds/k440.jsa" .venv/bin/python -m lab broker restart 1 >/dev/null
sleep 20
.venv/bin/python results/suite-timings/broker-cpu.py restart 1 > /tmp/brokers-cds/plain.json 2>/dev/null
ls -la /tmp/brokers-cds/
KGW_LAB_BROKER_JVM="$B -XX:SharedArchiveFile=/tmp/brokers-cds/k440.jsa -Xlog:cds=info:file=/tmp/brokers-cds/cds.log" .venv/bin/python results/suite-timings/broker-cpu.py restart 1 2 > /tmp/brokers-cds/cds.json 2>/dev/null
.venv/bin/python results/suite-timings/broker-cpu.py restart 1 2 > /tmp/brokers-cds/plain2.json 2>/dev/null
