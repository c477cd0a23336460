#!/bin/sh
# The broker CPU protocol of broker-cpu-{before,after}.json, on one lab instance, under its lock (the caller takes it):
#   flock /run/kgw-lab0.lock results/suite-timings/broker-cpu-protocol.sh OUTDIR
# A fresh lab from this checkout, 30 s to settle, 60 s idle, three broker restarts, then four test modules with the
# brokers' CPU sampled. Each step's JSON goes to OUTDIR; pytest's output to OUTDIR/*.log.
set -eu
out=$1; mkdir -p "$out"
# The brokers' JVM as scripts/test starts it (the "before" runs, at ef46d7f, had G1 and both compilers built in).
export KGW_LAB_BROKER_JVM=${KGW_LAB_BROKER_JVM:--XX:TieredStopAtLevel=1 -XX:+UseSerialGC}
py=.venv/bin/python; cpu=results/suite-timings/broker-cpu.py
$py -m lab down >"$out/lab-down.log" 2>&1
start=$(date +%s.%N); $py -m lab up >"$out/lab-up.log" 2>&1; end=$(date +%s.%N)
echo "{\"lab_up_wall_s\": $(echo "$end - $start" | bc)}" >"$out/lab-up.json"
sleep 30
$py $cpu idle 60 >"$out/idle.json"
$py $cpu restart 1 2 3 >"$out/restart.json" 2>"$out/restart.log"
for t in tests/e2e/test_dataplane.py tests/e2e/test_dataplane_broker_restart.py tests/e2e/test_cluster_gateway.py \
         tests/lab/test_lab.py; do
    name=$(basename "$t" .py)
    $py $cpu traffic -- $py -m pytest -q -p no:cacheprovider "$t" >"$out/$name.json" 2>"$out/$name.log" || true
done
