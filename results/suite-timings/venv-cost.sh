#!/bin/bash
# What the roles' pip installs cost on a lab host's own Python, without a lab: each cached host root file system
# (/var/cache/kgw-lab/rootfs-*) is mounted read-only under a throwaway overlay (one per host, like one host's
# converges), and its python3 makes `--without-pip` venvs and installs into them exactly as the roles do:
#   gateway:  V/bin/python -I -c PIP install --quiet --no-index --disable-pip-version-check --force-reinstall
#             --find-links <the target's unpacked wheel set archive> kafka-gateway
#   netport:  V/bin/python -I -c PIP install ... --find-links <pyroute2's wheel> pyroute2==<version>
# once with PIP = pip imported from the host's ensurepip wheel, a zip (the roles before the pip home), and once with
# PIP = the roles' roles/gateway_pip/files/pip_home.py (the wheel unpacked once into the host's pip home, where Python
# caches pip's compiled modules). Round 1's pip-home install is the host's first: it unpacks pip and compiles what it
# imports.
# Prints user+system CPU seconds and wall seconds per step. Run as root from the checkout, after a converge or the
# suite built the wheel sets (KGW_WHEELHOUSE, default build/wheelhouse; the lab's cache holds pyroute2's wheel):
#   results/suite-timings/venv-cost.sh > results/suite-timings/venv-cost-2.txt
set -euo pipefail
cache=${KGW_LAB_CACHE:-/var/cache/kgw-lab}
wheelhouse=${KGW_WHEELHOUSE:-build/wheelhouse}
pyroute2=$(ls "$cache"/wheelhouse/netport/pyroute2-*.whl | tail -1)
pyroute2_version=$(basename "$pyroute2" | cut -d- -f2)
# the roles' code (the gateway_pip role's, which both roles include), run with the roles' default pip home as argument
pip_home_code=$(cat roles/gateway_pip/files/pip_home.py)
# the roles' code before the pip home: pip imported from the wheel itself
zip_code='import ensurepip, os, runpy, sys, sysconfig
wheel = "pip-%s-py3-none-any.whl" % ensurepip.version()
dirs = [d for d in (sysconfig.get_config_var("WHEEL_PKG_DIR"), os.path.join(os.path.dirname(ensurepip.__file__), "_bundled")) if d]
sys.path[:0] = [p for p in (os.path.join(d, wheel) for d in dirs) if os.path.isfile(p)][:1] or sys.exit("no %s in %s" % (wheel, dirs))
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)'
work=$(mktemp -d /tmp/venv-cost.XXXXXX)
trap 'umount -q "$work"/root 2>/dev/null || true; rm -rf "$work"' EXIT
echo "venv-cost.sh at $(git rev-parse --short HEAD), $(date -u '+%F %T') UTC, load $(cut -d' ' -f1-3 /proc/loadavg)"
for rootfs in "$cache"/rootfs-*; do
  tag=$(chroot "$rootfs" python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
  archives=("$wheelhouse"/"$tag"-*/*.tar)
  [ -f "${archives[0]}" ] || { echo "$(basename "$rootfs"): no $tag wheel set archive in $wheelhouse, skipped"; continue; }
  mkdir -p "$work"/upper "$work"/work "$work"/root
  mount -t overlay overlay -o lowerdir="$rootfs",upperdir="$work"/upper,workdir="$work"/work "$work"/root
  mkdir -p "$work"/root/wh "$work"/root/netwh && tar -C "$work"/root/wh -xf "${archives[0]}" && cp "$pyroute2" "$work"/root/netwh/
  echo "$(basename "$rootfs") ($(chroot "$work"/root python3 --version)), ${archives[0]}, $(basename "$pyroute2")"
  step() { # label, command run in the host's root
    /usr/bin/time -f "cpu %U+%S s, wall %e s" -o "$work"/t chroot "$work"/root sh -c "$2" >/dev/null 2>"$work"/err \
      || { cat "$work"/err; exit 1; }
    printf "  %-38s %s\n" "$1" "$(tail -1 "$work"/t)"
  }
  pip_args="install --quiet --no-index --disable-pip-version-check"
  for round in ${ROUNDS:-1 2 3}; do
    for way in zip home; do
      if [ $way = zip ]; then code=$zip_code home=; else code=$pip_home_code home=/opt/kafka-gateway/pip; fi
      chroot "$work"/root python3 -m venv --without-pip /gw-$way-$round
      chroot "$work"/root python3 -m venv --without-pip /net-$way-$round
      step "$way: gateway install" \
        "/gw-$way-$round/bin/python -I -c '$code' $home $pip_args --force-reinstall --find-links /wh kafka-gateway"
      step "$way: pyroute2 install" \
        "/net-$way-$round/bin/python -I -c '$code' $home $pip_args --find-links /netwh pyroute2==$pyroute2_version"
      chroot "$work"/root /gw-$way-$round/bin/python -c 'import gateway_app, aiohttp, confluent_kafka, uvloop, kio' \
        || { echo "  $way: the gateway's venv cannot import its set"; exit 1; }
      chroot "$work"/root /net-$way-$round/bin/python -c 'import pyroute2' \
        || { echo "  $way: the port module's venv cannot import pyroute2"; exit 1; }
    done
  done
  echo "  pip home: $(ls "$work"/root/opt/kafka-gateway/pip)"
  umount "$work"/root && rm -rf "${work:?}"/upper "$work"/work
done
