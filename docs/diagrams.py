"""The docs' diagrams, drawn by Graphviz (`dot -Tsvg`) from the code they describe, never by hand.

- the lab: racks, gateway hosts, brokers, HAProxy hosts, the client and host networks (`lab/layout.py`,
  `lab/core.py`'s default hosts, molecule's `external_lb` hosts);
- the broker -> node mapping of one membership, computed by `gateway_app.cluster.mapping.assign` itself;
- the path of one request through a node, each step named by its module and the first line of its docstring.

Graphviz comes from Debian (scripts/bootstrap installs it); its SVG is the same bytes for the same DOT source with the
same Graphviz version and fonts (the diagrams name DejaVu Sans, which bootstrap installs).
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import yaml

ROOT = Path(__file__).resolve().parent.parent
FONT = "DejaVu Sans"
RACK_COLOURS = {"rack-a": "#dbe9f6", "rack-b": "#e2f0d9", "rack-c": "#fdebd3"}
NO_RACK_COLOUR = "#eeeeee"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _attrs(**attrs: str) -> str:
    return "[" + ", ".join(f"{key}={_quote(str(value))}" for key, value in attrs.items()) + "]"


def _graph(name: str, body: list[str], rankdir: str = "TB") -> str:
    head = [f"digraph {_quote(name)} {{", f"  graph {_attrs(rankdir=rankdir, fontname=FONT, fontsize='12', nodesep='0.3')};",
            f"  node {_attrs(fontname=FONT, fontsize='11', shape='box', style='rounded,filled', fillcolor='white')};",
            f"  edge {_attrs(fontname=FONT, fontsize='9')};"]
    return "\n".join(head + ["  " + line for line in body] + ["}"]) + "\n"


def render_svg(dot_source: str) -> str:
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("Graphviz's `dot` is not installed: apt-get install graphviz (scripts/bootstrap does)")
    done = subprocess.run([dot, "-Tsvg"], input=dot_source, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"dot failed: {done.stderr.strip()}")
    return done.stdout


# --- the lab ---------------------------------------------------------------------------------------------------------

def _node(name: str, *label: str, **attrs: str) -> str:
    return f"{_quote(name)} {_attrs(label=chr(10).join(label), **attrs)};"


def _edge(tail: str, head: str, **attrs: str) -> str:
    return f"{_quote(tail)} -> {_quote(head)} {_attrs(**attrs)};"


def _cluster(name: str, label: str, lines: list[str], **attrs: str) -> list[str]:
    return [f"subgraph {_quote('cluster_' + name)} {{", f"  graph {_attrs(label=label, **attrs)};",
            *("  " + line for line in lines), "}"]


def _hosts_of(specs: list[str], first_index: int) -> list[tuple[object, str]]:
    """(host spec, address) as `lab.core.add_hosts` gives them: the next free host address, in order."""
    from lab.core import HostSpec
    from lab.layout import Layout

    layout = Layout(0)
    return [(HostSpec.parse(spec), layout.nspawn_host_ip(first_index + i)) for i, spec in enumerate(specs)]


def _external_lb_specs() -> list[str]:
    """The HAProxy hosts of the molecule scenario that deploys external load balancing."""
    scenario = yaml.safe_load((ROOT / "molecule/external_lb/molecule.yml").read_text())
    specs = scenario["provisioner"]["env"]["KGW_LAB_HOSTS"].split()
    return [spec for spec in specs if "gateway_lb" in spec.partition("@")[2]]


def lab_dot() -> str:
    from lab.core import DEFAULT_HOSTS
    from lab.layout import BROKER_IDS, BROKER_PORT, RACKS, Layout, broker_rack

    layout = Layout(0)
    gateways = _hosts_of(list(DEFAULT_HOSTS), 0)
    balancers = _hosts_of(_external_lb_specs(), len(gateways))
    body = [
        _node("client", f"client namespace {layout.client_netns}", layout.client_ip, "(no route to the Kafka network)",
              fillcolor="#fff7c2"),
        _node("controller", "controller (Ansible, fleet doctor)",
              f"{layout.controller_host_ip} / {layout.controller_kafka_ip}", fillcolor="#f2f2f2"),
    ]
    for rack in RACKS:
        members = [_node(spec.name, f"{spec.name}: gateway node", f"{address} ({spec.release})")
                   for spec, address in gateways if spec.rack == rack]
        members += [_node(f"broker{b}", f"Kafka broker {b}", f"{layout.broker_ip(b)}:{BROKER_PORT}",
                          f"netns {layout.broker_netns(b)}", shape="cylinder")
                    for b in BROKER_IDS if broker_rack(b) == rack]
        body += _cluster(rack, rack, members, style="rounded,filled", fillcolor=RACK_COLOURS.get(rack, NO_RACK_COLOUR),
                         color="#888888")
    body += _cluster("lb", "HAProxy hosts, external load balancing only (molecule external_lb)",
                     [_node(spec.name, f"{spec.name}: HAProxy", address, fillcolor="#f3e5f5") for spec, address in balancers],
                     style="dashed", color="#888888")
    for spec, _ in gateways:
        body.append(_edge("client", spec.name, label="Kafka protocol", color="#1f77b4"))
        for b in BROKER_IDS:
            same_rack = broker_rack(b) == spec.rack
            body.append(_edge(spec.name, f"broker{b}", color="#333333" if same_rack else "#bbbbbb",
                              style="solid" if same_rack else "dashed"))
    for spec, _ in balancers:
        body.append(_edge("client", spec.name, style="dashed", color="#7b1fa2"))
        body += [_edge(spec.name, gateway.name, style="dashed", color="#7b1fa2") for gateway, _ in gateways]
    body.append(_edge("controller", gateways[len(gateways) // 2][0].name, label="SSH", style="dotted", constraint="false"))
    body.append("labelloc=b; label=" + _quote(
        f"host network {layout.host_net} and Kafka network {layout.kafka_net} on bridge {layout.bridge}; grey dashed: "
        "a node to a broker of another rack (used only when the mapping sends that broker there)"))
    return _graph("lab", body)


# --- the mapping -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Member:
    node_id: str
    rack: str | None


# One membership that shows every rule: two nodes sharing rack-a, one node in rack-b, rack-c with brokers but no
# live node, and a broker without a rack.
EXAMPLE_MEMBERS = (Member("gw-a1", "rack-a"), Member("gw-a2", "rack-a"), Member("gw-b1", "rack-b"))
EXAMPLE_BROKERS = ((1, "rack-a"), (2, "rack-a"), (3, "rack-a"), (4, "rack-b"), (5, "rack-b"), (6, "rack-c"),
                   (7, "rack-c"), (8, None))


def mapping_dot() -> str:
    from gateway_app.cluster.mapping import BrokerRack, assign

    brokers = [BrokerRack(broker_id, rack) for broker_id, rack in EXAMPLE_BROKERS]
    serving = assign(EXAMPLE_MEMBERS, brokers)
    member_racks = {member.rack for member in EXAMPLE_MEMBERS}
    racks = sorted({rack for _, rack in EXAMPLE_BROKERS} | member_racks, key=lambda rack: (rack is None, rack or ""))
    body = []
    for rack in racks:
        title = rack or "no rack"
        if rack is not None and rack not in member_racks:
            title += ": no live node, its brokers go to the fallback scope"
        lines = ["{ rank=same; " + " ".join(_quote(f"b{b.broker_id}") for b in brokers if b.rack == rack) + " }"]
        lines += [_node(f"b{b.broker_id}", f"broker {b.broker_id}", shape="cylinder") for b in brokers if b.rack == rack]
        for member in EXAMPLE_MEMBERS:
            if member.rack == rack:
                load = sum(1 for m in serving.values() if m.node_id == member.node_id)
                lines.append(_node(member.node_id, member.node_id, f"serves {load}", penwidth="2"))
        body += _cluster(rack or "none", title, lines, style="rounded,filled",
                         fillcolor=RACK_COLOURS.get(rack, NO_RACK_COLOUR), color="#888888")
    for broker in brokers:
        member = serving[broker.broker_id]
        local = broker.rack is not None and broker.rack == member.rack
        body.append(_edge(f"b{broker.broker_id}", member.node_id, color="#2e7d32" if local else "#c62828",
                          penwidth="2" if local else "1.5", style="solid" if local else "dashed",
                          label="" if local else "fallback"))
    body.append("labelloc=b; label=" + _quote(
        "gateway_app.cluster.mapping.assign(members, brokers): green, a broker served in its own rack; red dashed, "
        "a broker whose rack has no live node (or no rack), served by the least loaded node that scores highest"))
    return _graph("mapping", body)


# --- the path of one request -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Step:
    key: str
    title: str
    module: str
    optional: str = ""


REQUEST_PATH = (
    Step("accept", "1. accept", "gateway_app.proxy.server"),
    Step("proxy", "2. PROXY v2 header", "gateway_app.proxy.proxy_protocol", "GATEWAY_PROXY_PROTOCOL=true only"),
    Step("tls", "3. TLS", "gateway_app.proxy.tls", "GATEWAY_SSL_CERT_FILE only"),
    Step("framing", "4. framing", "gateway_app.proxy.framing"),
    Step("policy", "5. policy", "gateway_app.protocol.policy"),
    Step("guard", "6. guard: reserved names", "gateway_app.protocol.reserved"),
    Step("relay", "7. forward, cut-through", "gateway_app.proxy.connection"),
)
RESPONSE_PATH = (
    Step("dispatch", "8. response: rewrite or relay", "gateway_app.protocol.rewriting"),
    Step("broker_lists", "rewrite: broker lists", "gateway_app.protocol.broker_lists"),
    Step("node_endpoints", "rewrite: KIP-951 NodeEndpoints", "gateway_app.protocol.node_endpoints"),
    Step("api_versions", "rewrite: ApiVersions cap", "gateway_app.protocol.api_versions"),
    Step("topology", "9. addresses", "gateway_app.cluster.topology"),
)
CLOSES = {"proxy": "no header: refused", "framing": "oversized or bad frame: closed", "policy": "dropped API or version: closed",
          "guard": "reserved topic or group: refused (refusal.py)"}


def _summary(module: ModuleType) -> str:
    """The first sentence line of a module's docstring, wrapped for a box."""
    first = (module.__doc__ or "").strip().splitlines()[0].rstrip(":;,")
    return "\n".join(textwrap.wrap(first, 46))


def _step_node(step: Step) -> str:
    module = importlib.import_module(step.module)
    label = [step.title, step.module.replace(".", "/") + ".py", _summary(module)]
    label += [f"({step.optional})"] if step.optional else []
    return _node(step.key, *label, style="rounded,filled,dashed" if step.optional else "rounded,filled")


def request_path_dot() -> str:
    body = [_node("client", "Kafka client", shape="oval", fillcolor="#fff7c2"),
            _node("broker", "the broker the port names", "(proxy/directory.py)", shape="cylinder"),
            _node("closed", "connection closed, counted", "(proxy/incidents.py)", shape="octagon", fillcolor="#fde0dc")]
    body += [_step_node(step) for step in REQUEST_PATH + RESPONSE_PATH]
    chain = ["client", *(step.key for step in REQUEST_PATH), "broker"]
    body += [_edge(a, b, color="#1f77b4", penwidth="1.5") for a, b in zip(chain, chain[1:])]
    body.append(_edge("broker", "dispatch", label="response", color="#2e7d32", penwidth="1.5"))
    for rewriter in ("broker_lists", "node_endpoints", "api_versions"):
        body += [_edge("dispatch", rewriter, color="#2e7d32"), _edge(rewriter, "topology", color="#2e7d32")]
    body.append(_edge("topology", "client", label="rewritten", color="#2e7d32", penwidth="1.5", constraint="false"))
    body.append(_edge("dispatch", "client", label="no broker address: streamed as it came", color="#2e7d32",
                      style="bold", constraint="false"))
    body += [_edge(key, "closed", label=why, color="#c62828", style="dashed", fontcolor="#c62828")
             for key, why in CLOSES.items()]
    body.append("{ rank=same; broker; dispatch }")
    return _graph("request_path", body)


DIAGRAMS = {
    "pictures/lab-layout.svg": lab_dot,
    "pictures/broker-mapping.svg": mapping_dot,
    "pictures/request-path.svg": request_path_dot,
}
