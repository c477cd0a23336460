#!/usr/bin/env bash
# How much of the machine a lab test leaves idle, alone and beside another on a second lab (docs/testing.md, The
# test command). Brings up labs 0 and 1 (reused if up); run it from the repository root under both locks:
#   flock /run/kgw-lab0.lock flock /run/kgw-lab1.lock results/suite-timings/idle-probe.sh OUTDIR
# idle = (idle + iowait) / all of /proc/stat's CPU time over the window; vmstat 5 goes to OUTDIR/vmstat.txt.
set -u
cd "$(dirname "$0")/../.."
M=${1:?OUTDIR}; mkdir -p "$M"
cpu() { awk '/^cpu /{print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6}' /proc/stat; }
idle() { # $1 = "total idle" at start, $2 at end
  read t0 i0 <<<"$1"; read t1 i1 <<<"$2"; python3 -c "print(f'{($i1-$i0)/($t1-$t0):.3f}')"; }
vmstat -n 5 > $M/vmstat.txt & VM=$!
echo "labs up: $(date +%T)"
s=$(cpu); t=$(date +%s)
.venv/bin/python -m lab --instance 0 up > $M/up0.log 2>&1 & A=$!
.venv/bin/python -m lab --instance 1 up > $M/up1.log 2>&1 & B=$!
wait $A; echo "up0 rc=$? at +$(( $(date +%s)-t ))s"; wait $B; echo "up1 rc=$? at +$(( $(date +%s)-t ))s"
echo "both up idle=$(idle "$s" "$(cpu)")"
P=".venv/bin/python -m pytest -p no:cacheprovider -q"
echo "cluster_gateway alone: $(date +%T)"; s=$(cpu); t=$(date +%s)
$P tests/e2e/test_cluster_gateway.py > $M/cg-alone.log 2>&1; echo "rc=$? took $(( $(date +%s)-t ))s idle=$(idle "$s" "$(cpu)")"
echo "molecule default alone (instance 1): $(date +%T)"; s=$(cpu); t=$(date +%s)
KGW_LAB_INSTANCE=1 $P tests/e2e/test_ansible_molecule.py -k default -s > $M/mol-alone.log 2>&1; echo "rc=$? took $(( $(date +%s)-t ))s idle=$(idle "$s" "$(cpu)")"
echo "both at once: $(date +%T)"; s=$(cpu); t=$(date +%s)
KGW_LAB_INSTANCE=1 $P tests/e2e/test_ansible_molecule.py -k default -s > $M/mol-both.log 2>&1 & A=$!
$P tests/e2e/test_cluster_gateway.py > $M/cg-both.log 2>&1; echo "cluster_gateway rc=$? took $(( $(date +%s)-t ))s"
wait $A; echo "molecule rc=$? took $(( $(date +%s)-t ))s idle=$(idle "$s" "$(cpu)")"
kill $VM
echo "end $(date +%T)"
