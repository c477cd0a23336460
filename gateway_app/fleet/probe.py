"""What the fleet doctor runs on each host: a standalone script for the host's own python3 (stdlib only).

The doctor sends this file's source as `python3 -c SOURCE ROLE JSON-ARGS` over SSH. Once started, the script waits
for one line on stdin and answers it with the host's clock at once (the doctor times that exchange to estimate the clock
offset), then collects the host's facts and prints them as one JSON document. It only reads: unit state, the
installed version, the env file's owner, mode and a few non-secret keys (never any other value), the node's HTTP
endpoints, TCP connects to the backing brokers, and HAProxy's stats socket.
"""

import glob
import grp
import json
import os
import pwd
import shlex
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# The only env-file keys whose values leave the host; everything else (SASL passwords, the cluster secret) stays.
ENV_KEYS_REPORTED = (
    "GATEWAY_NODE_ID", "GATEWAY_RACK_ID", "GATEWAY_CLUSTER_ID", "GATEWAY_BIND_HOST", "GATEWAY_HTTP_BIND_HOST",
    "GATEWAY_HTTP_PORT", "KAFKA_BOOTSTRAP_SERVERS", "GATEWAY_CLIENT_RACK_NETWORKS",
)
# Read on the host and sent only to the node's own /cluster (for the brokers' addresses); never reported or printed.
ADMIN_TOKEN_KEY = "GATEWAY_HTTP_ADMIN_TOKEN"
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
UNIT_PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "NRestarts", "ExecMainStartTimestamp")
CONNECT_TIMEOUT_S = 2.0
SELECTORS_TIMEOUT_S = 4  # Kafka's answer, inside the doctor's 10 s per host (--timeout) with the probe's other checks
HTTP_TIMEOUT_S = 3.0


def unit_state(unit):
    out = subprocess.run(["systemctl", "show", unit, "--property=" + ",".join(UNIT_PROPERTIES)],
                         capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        return {"error": out.stderr.strip() or "systemctl show failed"}
    return dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)


def env_file(path):
    """The env file's owner, mode and reported keys, and (kept apart, never reported) the operator token if set."""
    try:
        st = os.stat(path)
    except OSError as error:
        return {"error": error.strerror or str(error)}, None
    facts = {"owner": _name(pwd.getpwuid, st.st_uid), "group": _name(grp.getgrgid, st.st_gid),
             "mode": "%04o" % stat.S_IMODE(st.st_mode), "values": {}}
    token = None
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                key, sep, value = line.strip().partition("=")
                if sep and key.strip() in ENV_KEYS_REPORTED:
                    facts["values"][key.strip()] = _unquote(value.strip())
                elif sep and key.strip() == ADMIN_TOKEN_KEY:
                    token = _unquote(value.strip()) or None
    except OSError as error:
        facts["error"] = error.strerror or str(error)
    return facts, token


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def _unquote(value):
    try:
        words = shlex.split(value)
    except ValueError:
        return value
    return words[0] if len(words) == 1 else value


def installed_version(venv):
    """Version of the kafka-gateway distribution in the node's virtualenv (read from its dist-info)."""
    for metadata in sorted(glob.glob(venv + "/lib/python3*/site-packages/kafka_gateway-*.dist-info/METADATA")):
        with open(metadata, encoding="utf-8") as text:
            for line in text:
                if line.startswith("Version:"):
                    return line.split(":", 1)[1].strip()
    return None


def http_get(url, token=None):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            return {"status": response.status, "body": json.loads(response.read())}
    except urllib.error.HTTPError as error:
        try:
            return {"status": error.code, "body": json.loads(error.read())}
        except ValueError:
            return {"status": error.code, "body": None}
    except (OSError, ValueError) as error:
        return {"error": str(getattr(error, "reason", None) or error)}


def tcp_connect(endpoint):
    host, _, port = endpoint.rpartition(":")
    started = time.monotonic()
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            return {"ok": True, "ms": round((time.monotonic() - started) * 1000, 1)}
    except (OSError, ValueError) as error:
        return {"ok": False, "error": str(error) or type(error).__name__}


def cluster_summary(view):
    """The parts of /cluster the doctor judges: members, mapping, its digest and epoch, the backing brokers."""
    backing = (view.get("backing_cluster") or {}).get("brokers") or {}
    return {
        "mode": view.get("mode"), "node_id": view.get("node_id") or (view.get("node") or {}).get("node_id"),
        "epoch": view.get("epoch"), "mapping_digest": view.get("mapping_digest"),
        "members": [{"node_id": m.get("node_id"), "rack": m.get("rack")} for m in view.get("members") or []],
        "mapping": {b: {"node_id": e.get("node_id"), "rack": e.get("rack"), "error": e.get("error")}
                    for b, e in (view.get("mapping") or {}).items()},
        "brokers": {b: {"rack": e.get("rack"), "endpoint": "%s:%s" % (e["host"], e["port"]) if e.get("host") else None}
                    for b, e in backing.items()},
    }


def selectors_wanted(values, reach):
    """Whether to ask the brokers for their replica selector: client networks configured and a broker reached."""
    return bool(values.get("GATEWAY_CLIENT_RACK_NETWORKS")) and any(r.get("ok") for r in reach.values())


def replica_selectors(venv, env_path):
    """The brokers' replica.selector.class, read in the node's venv with its own settings (fleet/replica_selectors.py)."""
    try:
        out = subprocess.run([venv + "/bin/python", "-m", "gateway_app.fleet.replica_selectors", "--config", env_path,
                              "--timeout", str(SELECTORS_TIMEOUT_S)],
                             capture_output=True, text=True, timeout=SELECTORS_TIMEOUT_S + 3)
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError) as error:
        return {"error": str(error) or type(error).__name__}


def gateway_facts(args):
    env, token = env_file(args["env_file"])
    values = env.get("values", {})
    host = values.get("GATEWAY_HTTP_BIND_HOST") or values.get("GATEWAY_BIND_HOST") or ""
    host = "127.0.0.1" if host in WILDCARD_HOSTS else host
    base = "http://%s:%s" % ("[%s]" % host if ":" in host else host, values.get("GATEWAY_HTTP_PORT") or args["http_port"])
    ready = http_get(base + "/health/ready")
    # without the token (or from outside GATEWAY_HTTP_ADMIN_NETWORKS) /cluster withholds the brokers' addresses:
    # reachability is then checked against KAFKA_BOOTSTRAP_SERVERS below
    cluster = http_get(base + "/cluster", token)
    summary = cluster_summary(cluster["body"]) if isinstance(cluster.get("body"), dict) else None
    endpoints = [b["endpoint"] for b in (summary or {}).get("brokers", {}).values() if b.get("endpoint")]
    if not endpoints:  # the node does not know (or does not show) its brokers: the configured bootstrap servers
        endpoints = [e.strip() for e in values.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",") if e.strip()]
    with ThreadPoolExecutor(max_workers=max(1, len(endpoints))) as pool:
        reach = dict(zip(endpoints, pool.map(tcp_connect, endpoints)))
    return {
        "unit": unit_state(args["unit"]), "version": installed_version(args["venv"]), "env_file": env,
        "ready": ready, "cluster": summary if summary is not None else {"error": cluster.get("error") or
                                                                       "HTTP %s" % cluster.get("status")},
        "broker_reach": reach,
        # rack-aware reads need the brokers' selector: asked only where client networks are configured, and only
        # of brokers this host reaches (unreachable ones are reported above; waiting on them would cost the host's
        # whole probe its time)
        "replica_selectors": replica_selectors(args["venv"], args["env_file"]) if selectors_wanted(values, reach) else None,
    }


def haproxy_socket(config):
    try:
        with open(config, encoding="utf-8") as text:
            for line in text:
                words = line.split()
                if words[:2] == ["stats", "socket"] and len(words) > 2:
                    return words[2]
    except OSError:
        pass
    return "/run/haproxy/admin.sock"


def haproxy_servers(path):
    """Every server row of `show stat`: backend, server, status and the last check's outcome."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(HTTP_TIMEOUT_S)
            sock.connect(path)
            sock.sendall(b"show stat\n")
            chunks = []
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
    except OSError as error:
        return {"error": "%s: %s" % (path, error.strerror or error)}
    lines = b"".join(chunks).decode("utf-8", "replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        return {"error": "%s: unexpected answer to 'show stat'" % path}
    header = lines[0][2:].split(",")
    rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
    return {"servers": [
        {"backend": r["pxname"], "server": r["svname"], "status": r.get("status", ""),
         "check": r.get("check_status", ""), "check_desc": r.get("check_desc", "")}
        for r in rows if r.get("svname") not in ("FRONTEND", "BACKEND")]}


def lb_facts(args):
    return {"unit": unit_state("haproxy"), "haproxy": haproxy_servers(haproxy_socket(args["haproxy_config"]))}


def main():
    role, args = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps({"ready": True}), flush=True)  # started: the clock exchange that follows is not slowed by it
    sys.stdin.readline()
    print(json.dumps({"clock": time.time()}), flush=True)
    facts = gateway_facts(args) if role == "gateway" else lb_facts(args)
    print(json.dumps(facts), flush=True)


if __name__ == "__main__":
    main()
