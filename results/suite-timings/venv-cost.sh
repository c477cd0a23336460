#!/bin/bash
# What a gateway release's venv costs on a lab host's own Python, the role's old way against its new way, without a
# lab: each cached host root file system (/var/cache/kgw-lab/rootfs-*) is mounted read-only under a throwaway
# overlay, and its python3 makes a venv and installs that host target's cached dependency wheel set, three times each:
#   old: python3 -m venv V; V/bin/pip install --no-index --find-links WH <the set's wheels>
#   new: python3 -m venv --without-pip V; V/bin/python -I -c "$(the role's _gateway_pip_code)" install <the same>
# Prints user+system CPU seconds and wall seconds per step. Run as root from the checkout:
#   results/suite-timings/venv-cost.sh > results/suite-timings/venv-cost-1.txt
set -euo pipefail
cache=${KGW_LAB_CACHE:-/var/cache/kgw-lab}
pip_code=$(python3 -c 'import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))["_gateway_pip_code"])' \
  roles/gateway/vars/main.yml)
work=$(mktemp -d /tmp/venv-cost.XXXXXX)
trap 'umount -q "$work"/root 2>/dev/null || true; rm -rf "$work"' EXIT
echo "venv-cost.sh at $(git rev-parse --short HEAD), $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
for rootfs in "$cache"/rootfs-*; do
  tag=$(chroot "$rootfs" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  sets=("$cache"/wheelhouse/gateway/"$tag"-*/*/)
  set_dir=${sets[0]}
  [ -d "$set_dir" ] || { echo "$(basename "$rootfs"): no cached $tag wheel set, skipped"; continue; }
  mkdir -p "$work"/upper "$work"/work "$work"/root
  mount -t overlay overlay -o lowerdir="$rootfs",upperdir="$work"/upper,workdir="$work"/work "$work"/root
  mkdir -p "$work"/root/wh && cp "$set_dir"/*.whl "$work"/root/wh/
  wheels=$(cd "$work"/root && ls wh/*.whl | sed 's|^|/|' | tr '\n' ' ')
  echo "$(basename "$rootfs") ($(chroot "$work"/root python3 --version)), wheel set $set_dir ($(echo $wheels | wc -w) wheels)"
  step() { # label, command run in the host's root
    /usr/bin/time -f "cpu %U+%S s, wall %e s" -o "$work"/t chroot "$work"/root sh -c "$2" >/dev/null
    printf "  %-30s %s\n" "$1" "$(tail -1 "$work"/t)"
  }
  for round in ${ROUNDS:-1 2 3}; do
    step "old: venv with pip" "python3 -m venv /v-old-$round"
    step "old: pip install" "/v-old-$round/bin/pip install --quiet --no-index --disable-pip-version-check --find-links /wh $wheels"
    step "new: venv --without-pip" "python3 -m venv --without-pip /v-new-$round"
    step "new: ensurepip's pip install" \
      "/v-new-$round/bin/python -I -c '$pip_code' install --quiet --no-index --disable-pip-version-check --find-links /wh $wheels"
    chroot "$work"/root /v-new-$round/bin/python -c 'import aiohttp, confluent_kafka, uvloop, kio' \
      || { echo "  new: the venv cannot import the set"; exit 1; }
  done
  umount "$work"/root && rm -rf "${work:?}"/upper "$work"/work
done
