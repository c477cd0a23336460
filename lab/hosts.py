"""Lab hosts: systemd-nspawn containers with real systemd as PID 1, sshd and a static address.

There is no systemd on the machine running the lab, so each container is given a cgroup of its own by hand
(a directory in the named ``systemd`` hierarchy and in the unified one) before nspawn starts inside it.
Each host boots an overlay over the shared, read-only cached root file system; its writes go to its own upper dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from . import rootfs
from .layout import Layout
from .logs import rotated_if_large
from .shell import run, stop_pids, wait_until
from .state import Host, LabState

CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"))


def host_dir(layout: Layout, name: str) -> Path:
    return layout.state_dir / "hosts" / name


def cgroup_dirs(layout: Layout, name: str) -> list[Path]:
    return [h / layout.cgroup_name / name for h in CGROUP_HIERARCHIES if h.exists()]


def _network_unit(layout: Layout, address: str) -> str:
    # Only the lab's host network and routes to the Kafka network and the rack client networks (all on the one
    # bridge): no default route, so no internet.
    return f"""\
[Match]
Name=host0

[Network]
Address={address}/24
LinkLocalAddressing=no
IPv6AcceptRA=no

[Route]
Destination={layout.kafka_net}

[Route]
Destination={layout.rack_client_block}
"""


def ensure_rack_client_route(layout: Layout, state: LabState, host: Host) -> None:
    """The rack client networks' route on a host that booted before the lab had them (its network unit lacks it)."""
    run(state.ssh_cmd(host.name, f"ip route replace {layout.rack_client_block} dev host0"))


def _prepare_upper(layout: Layout, state: LabState, host: Host, upper: Path) -> None:
    etc = upper / "etc"
    (etc / "systemd/network").mkdir(parents=True, exist_ok=True)
    (etc / "systemd/network/10-host0.network").write_text(_network_unit(layout, host.address))
    (etc / "hostname").write_text(host.name + "\n")
    hosts = ["127.0.0.1 localhost", f"127.0.1.1 {host.name}"]
    hosts += [f"{h.address} {h.name}" for h in state.hosts if h.name != host.name]
    (etc / "hosts").write_text("\n".join(hosts) + "\n")
    ssh_dir = upper / "root/.ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    (ssh_dir / "authorized_keys").write_text(Path(str(layout.ssh_key) + ".pub").read_text())
    os.chmod(ssh_dir / "authorized_keys", 0o600)
    _ensure_host_key(upper, host.name)


def _host_key(upper: Path) -> Path:
    return upper / "etc/ssh/ssh_host_ed25519_key"


def _ensure_host_key(upper: Path, name: str) -> None:
    # Every host boots the same cached root file system, so its baked-in host keys are shared by all hosts:
    # each host gets an ed25519 key of its own, which the lab's known_hosts lists (see write_known_hosts).
    key = _host_key(upper)
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name} host key", "-f", str(key)])


def write_known_hosts(layout: Layout, state: LabState) -> None:
    """The lab's known_hosts: each host's own ed25519 key under its address, for clients that check host keys."""
    lines = []
    for host in state.hosts:
        public = Path(str(_host_key(host_dir(layout, host.name) / "upper")) + ".pub")
        if not public.exists():  # booted before hosts had keys of their own: the root file system's key
            public = Path(str(_host_key(rootfs.rootfs_dir(host.release))) + ".pub")
        if public.exists():
            kind, blob = public.read_text().split()[:2]
            lines.append(f"{host.address} {kind} {blob}")
    layout.known_hosts.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    layout.known_hosts.write_text("".join(line + "\n" for line in lines))


def boot(layout: Layout, state: LabState, rootfs: Path, host: Host) -> None:
    base = host_dir(layout, host.name)
    upper = base / "upper"
    upper.mkdir(parents=True, exist_ok=True)
    _prepare_upper(layout, state, host, upper)
    cgroups = cgroup_dirs(layout, host.name)
    for cg in cgroups:
        cg.mkdir(parents=True, exist_ok=True)

    def enter_own_cgroup() -> None:
        for cg in cgroups:
            (cg / "cgroup.procs").write_text(str(os.getpid()))

    log = rotated_if_large(host_log(layout, host))
    stamp(layout, host, "booting")
    argv = [
        "systemd-nspawn", "--quiet", "--boot", f"--directory={rootfs}", f"--overlay={rootfs}:{upper}:/",
        f"--machine={host.machine}", "--register=no", "--keep-unit", f"--network-bridge={layout.bridge}",
        "--console=read-only",
    ]
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=enter_own_cgroup,
        )
    host.pid = proc.pid


def host_log(layout: Layout, host: Host) -> Path:
    """The host's console output, appended to across boots (kept by `lab down`; see lab/logs.py)."""
    return layout.log_dir / f"host-{host.name}.log"


def stamp(layout: Layout, host: Host, what: str) -> None:
    """A dated line in the host's console log: the console's own lines carry no time, and a slow boot (35-46 s
    instead of 4-6 in some suite runs) must show where its time went."""
    now = time.time()
    with open(host_log(layout, host), "a") as out:
        # on a line of its own: the console leaves its "login:" prompt without a newline
        out.write(f"\n==== lab {time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(now))}.{int(now * 1000) % 1000:03d}Z: "
                  f"{host.name} {what}\n")


def wait_for_ssh(state: LabState, host: Host, timeout: float = 90.0) -> None:
    def sshd_answers() -> bool:
        try:
            with socket.create_connection((host.address, 22), timeout=1) as sock:
                return sock.recv(4).startswith(b"SSH")
        except OSError:
            return False

    wait_until(sshd_answers, timeout=timeout, interval=0.3, what=f"sshd on {host.name} ({host.address})")
    run(state.ssh_cmd(host.name, "true"))


def shutdown(layout: Layout, hosts: Sequence[Host]) -> None:
    """SIGTERM to nspawn powers a container off cleanly, all of them at once; then their cgroups and upper dirs go."""
    for host in hosts:
        stamp(layout, host, "powering off")
    stop_pids([host.pid for host in hosts if host.pid], timeout=30)
    for host in hosts:
        stamp(layout, host, "off")
        host.pid = None
        for cg in cgroup_dirs(layout, host.name):
            remove_cgroup_tree(cg)
        shutil.rmtree(host_dir(layout, host.name), ignore_errors=True)


def remove_cgroup_tree(top: Path) -> None:
    if not top.exists():
        return
    for dirpath, _dirnames, _files in os.walk(top, topdown=False):
        try:
            os.rmdir(dirpath)
        except OSError as exc:
            raise RuntimeError(f"cgroup {dirpath} still in use: {exc}") from exc


def remove_instance_cgroups(layout: Layout) -> None:
    for hierarchy in CGROUP_HIERARCHIES:
        top = hierarchy / layout.cgroup_name
        if top.exists():
            remove_cgroup_tree(top)


def ensure_ssh_key(layout: Layout) -> None:
    if not layout.ssh_key.exists():
        layout.ssh_key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"kgw-lab-{layout.instance}", "-f", str(layout.ssh_key)])
