"""The Grafana dashboard of the gateways, built with grafana-foundation-sdk (never edited as JSON).

    .venv/bin/python -m monitoring.dashboard          # rewrite roles/gateway_monitoring/files/kafka-gateway-dashboard.json
    .venv/bin/python -m monitoring.dashboard --check  # exit 1 if the committed file differs from this code

The role installs the generated file for Grafana's file provisioning. Every query is also asked of a real Prometheus
by the `external_lb` molecule scenario (molecule/shared/check_monitoring.py), which fails when a panel draws nothing.
Queries use two dashboard variables: `$datasource` (a Prometheus) and `$cluster` (the gateways' cluster label).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh

OUTPUT = Path(__file__).resolve().parents[1] / "roles/gateway_monitoring/files/kafka-gateway-dashboard.json"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
GW = 'cluster=~"$cluster"'
RATE = "[$__rate_interval]"

# A panel that can draw data in one load-balancing mode only says so first in its description; the monitoring check
# (molecule/shared/check_monitoring.py --mode) leaves out the other mode's panels.
INTERNAL_ONLY = "Internal load balancing only: "
EXTERNAL_ONLY = "External load balancing (HAProxy) only: "
DESCRIPTIONS = {
    "Foreign connections and handovers by node (docs/handover.md)":
        INTERNAL_ONLY + "connections a node holds for a broker the mapping gives to another node, and their handovers.",
    "Bytes served out of rack by node":
        INTERNAL_ONLY + "client bytes of brokers served outside their rack while it has a live node (empty when none).",
    "Consumer bytes read across racks, by client rack":
        "Fetch response bytes relayed to consumers from brokers outside the consumer's rack (client racks from "
        "GATEWAY_CLIENT_RACK_NETWORKS), beside all consumer bytes of that rack ('none': clients without a rack).",
    "HAProxy: gateways UP per port": EXTERNAL_ONLY + "gateway servers UP in each HAProxy backend.",
    "HAProxy: gateway servers not UP": EXTERNAL_ONLY + "gateway servers DOWN, MAINT, DRAIN or NOLB.",
}

# (title, unit, [(query, legend)]): the panels in order, two per row.
PANELS: list[tuple[str, str, list[tuple[str, str]]]] = [
    ("Gateways per rack", "short", [
        (f'sum by (rack) (up{{job="kafka-gateway", {GW}}})', "{{rack}} scraped up"),
        (f"max by (rack) (gateway_cluster_members_per_rack{{{GW}}})", "{{rack}} members"),
    ]),
    ("Cluster members seen by each node", "short", [
        (f"gateway_cluster_members{{{GW}}}", "{{node}}"),
    ]),
    ("Client connections by node and port", "short", [
        (f"sum by (node, port) (gateway_client_connections_active{{{GW}}})", "{{node}} :{{port}}"),
    ]),
    ("Broker connections by node", "short", [
        (f"sum by (node) (gateway_upstream_connections_active{{{GW}}})", "{{node}}"),
    ]),
    ("Requests per second by API", "reqps", [
        (f"sum by (api) (rate(gateway_requests_total{{{GW}}}{RATE}))", "{{api}}"),
    ]),
    ("Request latency by API (p50, p99)", "s", [
        (f"histogram_quantile(0.5, sum by (api, le) (rate(gateway_request_latency_seconds_bucket{{{GW}}}{RATE})))",
         "p50 {{api}}"),
        (f"histogram_quantile(0.99, sum by (api, le) (rate(gateway_request_latency_seconds_bucket{{{GW}}}{RATE})))",
         "p99 {{api}}"),
    ]),
    ("Bytes per second in and out", "Bps", [
        (f"sum by (direction) (rate(gateway_bytes_total{{{GW}}}{RATE}))", "{{direction}}"),
    ]),
    ("Upstream errors by reason", "short", [
        (f"sum by (node, reason) (increase(gateway_upstream_errors_total{{{GW}}}{RATE}))", "{{node}} {{reason}}"),
    ]),
    ("Malformed client frames by reason", "short", [
        (f"sum by (node, reason) (increase(gateway_malformed_frames_total{{{GW}}}{RATE}))", "{{node}} {{reason}}"),
    ]),
    ("Connections refused by limits", "short", [
        (f"sum by (node, reason) (increase(gateway_connections_refused_total{{{GW}}}{RATE}))", "{{node}} {{reason}}"),
    ]),
    ("Mapping changes and epoch", "short", [
        (f"sum by (node) (increase(gateway_cluster_mapping_changes_total{{{GW}}}{RATE}))", "{{node}} changes"),
        (f"gateway_cluster_mapping_epoch{{{GW}}}", "{{node}} epoch"),
    ]),
    ("Brokers mapped to each node", "short", [
        (f"gateway_cluster_brokers_mapped_to_this_node{{{GW}}}", "{{node}}"),
        (f"gateway_known_brokers{{{GW}}}", "{{node}} known"),
    ]),
    ("Foreign connections and handovers by node (docs/handover.md)", "short", [
        (f"sum by (node) (gateway_handover_foreign_connections{{{GW}}})", "foreign {{node}}"),
        (f"sum by (node, outcome) (increase(gateway_handovers_total{{{GW}}}{RATE}))", "handed over {{node}} {{outcome}}"),
        (f"sum by (node, reason) (increase(gateway_handovers_refused_total{{{GW}}}{RATE}))",
         "refused {{node}} {{reason}}"),
    ]),
    ("Bytes served out of rack by node", "Bps", [
        (f"sum by (node) (rate(gateway_out_of_rack_bytes_total{{{GW}}}{RATE}))", "{{node}}"),
    ]),
    ("Consumer bytes read across racks, by client rack", "Bps", [
        # same-rack series taken away: each broker rack renamed a client rack of the same name (PromQL cannot
        # compare two labels of one series)
        (f'sum by (client_rack) (rate(gateway_fetch_response_bytes_total{{{GW}, client_rack!="none", broker_rack!="none"}}'
         f"{RATE}) unless on (cluster, client_rack, broker_rack) label_replace(sum by (cluster, broker_rack) "
         f'(gateway_fetch_response_bytes_total{{{GW}}}), "client_rack", "$1", "broker_rack", "(.*)"))',
         "{{client_rack}} across racks"),
        (f"sum by (client_rack) (rate(gateway_fetch_response_bytes_total{{{GW}}}{RATE}))", "{{client_rack}} all"),
    ]),
    ("HAProxy: gateways UP per port", "short", [
        ('sum by (instance, proxy) (haproxy_server_status{job="haproxy", proxy=~"gateways_.*", state="UP"})',
         "{{instance}} {{proxy}}"),
    ]),
    ("HAProxy: gateway servers not UP", "short", [
        ('sum by (instance, server) (haproxy_server_status{job="haproxy", proxy=~"gateways_.*", state!="UP"})',
         "{{instance}} {{server}}"),
    ]),
]


def build() -> dict:
    board = (
        dashboard.Dashboard("Kafka gateway")
        .uid("kafka-gateway")
        .tags(["kafka", "gateway"])
        .refresh("30s")
        .time("now-1h", "now")
        .editable()
        .with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
        .with_variable(
            dashboard.QueryVariable("cluster").label("Cluster").datasource(DATASOURCE)
            .query('label_values(up{job="kafka-gateway"}, cluster)')
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).multi(True).include_all(True))
    )
    for number, (title, unit, queries) in enumerate(PANELS, 1):
        panel = timeseries.Panel().id(number).title(title).datasource(DATASOURCE).unit(unit).height(8).span(12)
        if title in DESCRIPTIONS:
            panel = panel.description(DESCRIPTIONS[title])
        for ref, (query, legend) in zip("ABCDEFGH", queries):
            panel = panel.with_target(prometheus.Dataquery().expr(query).legend_format(legend).ref_id(ref))
        board = board.with_panel(panel)
    return json.loads(json.dumps(board.build(), cls=JSONEncoder))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.dashboard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed file instead of writing it")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUTPUT.read_text() != text:
            print(f"{OUTPUT} differs from monitoring/dashboard.py: run python -m monitoring.dashboard", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
