"""The docs' plots, drawn by matplotlib from the committed result files that hold their figures.

- the benchmark's throughput ratios and CPU per GB beside HAProxy's: `bench/results/latest.json`;
- the soak's chaos on a timeline and each client's longest pause on it, both legs: `results/soak-10min.json` (the
  soak's own output);
- the handover's foreign connections and out-of-rack bytes around a rolling restart:
  `results/handover-rolling-restart.json`.

The SVG is the same bytes for the same figures: matplotlib is pinned in the `test` extra, glyphs are drawn as paths
with its own DejaVu font (no system font is looked up), ids come from a fixed `svg.hashsalt`, and no date is written.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench/results/latest.json"
SOAK = ROOT / "results/soak-10min.json"
HANDOVER = ROOT / "results/handover-rolling-restart.json"

STYLE = {"svg.hashsalt": "kafka-gateway-docs", "svg.fonttype": "path", "font.family": "DejaVu Sans", "font.size": 9,
         "axes.spines.top": False, "axes.spines.right": False}
GATEWAY, DIRECT, RELAY = "#1f77b4", "#7f7f7f", "#7b1fa2"

# Workloads of bench/results/latest.json, by the key of their throughput figures and of their CPU figures.
THROUGHPUT = {"produce_default_mb_s": "produce,\ndefault batching", "produce_batched_mb_s": "produce,\nbatched",
              "produce_1k_requests_mb_s": "produce,\n1 KiB requests", "consume_mb_s": "consume"}
CPU = {"produce_default": "produce,\ndefault batching", "produce_batched": "produce,\nbatched",
       "produce_1k_requests": "produce,\n1 KiB requests", "consume": "consume"}


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _svg(figure: Any) -> str:
    import matplotlib

    out = io.StringIO()
    with matplotlib.rc_context(STYLE):
        figure.savefig(out, format="svg", metadata={"Date": None}, bbox_inches="tight")
    return out.getvalue()


def _figure(width: float, height: float, panels: int = 1) -> tuple[Any, list[Any]]:
    import matplotlib
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(width, height))
        axes = [figure.add_subplot(1, panels, i + 1) for i in range(panels)]
    return figure, axes


def benchmark_svg() -> str:
    import matplotlib

    result = _load(BENCH)
    with matplotlib.rc_context(STYLE):
        figure, (ratios, cpu) = _figure(10, 3.8, 2)
        width = 0.38
        for i, key in enumerate(THROUGHPUT):
            figures = result[key]
            noise = figures["aa_control"]
            ratios.add_patch(matplotlib.patches.Rectangle(
                (i - 0.45, noise["min"]), 0.9, noise["max"] - noise["min"], color="#eeeeee", zorder=0,
                label="direct vs direct (noise)" if i == 0 else None))
            ratios.bar(i - width / 2, figures["ratio"], width, color=GATEWAY, label="gateway / direct" if i == 0 else None)
            ratios.bar(i + width / 2, figures["reference_relay"]["over_gateway"], width, color=RELAY,
                       label="HAProxy + gateway / gateway" if i == 0 else None)
            ratios.annotate(f"{figures['ratio']:.3f}", (i - width / 2, figures["ratio"]), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
            ratios.annotate(f"{figures['reference_relay']['over_gateway']:.3f}",
                            (i + width / 2, figures["reference_relay"]["over_gateway"]), ha="center", va="bottom",
                            fontsize=7, xytext=(0, 2), textcoords="offset points")
        ratios.axhline(1.0, color="black", linewidth=0.8)
        ratios.set_xticks(range(len(THROUGHPUT)), list(THROUGHPUT.values()))
        ratios.set_ylim(0.6, 1.35)
        ratios.set_ylabel("throughput ratio (medians)")
        ratios.set_title("Throughput: one more hop, gateway or HAProxy")
        ratios.legend(loc="upper left", fontsize=7, frameon=False, ncols=2)

        for i, key in enumerate(CPU):
            gateway, relay = result["gateway_cpu"][key]["cpu_s_per_gb"], result["relay_cpu"][key]["cpu_s_per_gb"]
            cpu.bar(i - width / 2, gateway, width, color=GATEWAY, label="gateway" if i == 0 else None)
            cpu.bar(i + width / 2, relay, width, color=RELAY, label="HAProxy (C relay, splice)" if i == 0 else None)
            for x, value in ((i - width / 2, gateway), (i + width / 2, relay)):
                cpu.annotate(f"{value:g}", (x, value), ha="center", va="bottom", fontsize=7, xytext=(0, 2),
                             textcoords="offset points")
        cpu.set_yscale("log")
        cpu.set_xticks(range(len(CPU)), list(CPU.values()))
        cpu.set_ylabel("CPU-seconds per GB relayed (log)")
        cpu.set_title("CPU per GB relayed")
        cpu.legend(loc="upper left", fontsize=7, frameon=False)
        figure.suptitle(f"bench/results/latest.json: {result['commit']}, {result['pairs']} pairs, "
                        f"{result['machine']['cpus']} cores", fontsize=8, y=0.02, va="bottom")
        figure.tight_layout(rect=(0, 0.05, 1, 1))
    return _svg(figure)


def _soak_rows(leg: dict) -> list[tuple[str, float, float | None]]:
    """(client, longest pause s, wall time it began) of every producer and consumer of one leg."""
    rows = [(name, fig["longest_produce_pause_s"], fig["longest_produce_pause_began"])
            for name, fig in leg["producers"].items()]
    rows += [(name, fig["longest_consume_pause_s"], fig["longest_consume_pause_began"])
             for name, fig in leg["consumers"].items()]
    return rows


def soak_svg() -> str:
    """The soak's chaos on a timeline (node kills, SIGTERMs, broker restarts) and, per client and leg, its longest
    produce or consume pause where it fell: the gateway leg above the direct leg, which lives through the same
    broker restarts only."""
    import matplotlib

    result = _load(SOAK)
    zero = result["began"]
    events = result["events"]
    with matplotlib.rc_context(STYLE):
        figure, (axis,) = _figure(10, 4.2)
        labels: list[str] = []
        for leg, colour in (("direct", DIRECT), ("gateway", GATEWAY)):
            for client, pause, began in _soak_rows(result[leg]):
                row = len(labels)
                labels.append(f"{leg}: {client}")
                if began is not None:
                    axis.barh(row, max(pause, 0.2), left=began - zero, height=0.6, color=colour)
                    axis.annotate(f"{pause} s", (began - zero + max(pause, 0.2), row), xytext=(3, 0),
                                  textcoords="offset points", va="center", fontsize=7)
        for event in events:
            x = event["at"] - zero
            style = {"color": "#c62828", "linestyle": "-"} if event["signal"] == "KILL" else \
                {"color": "#ef6c00", "linestyle": "--"}
            axis.axvline(x, linewidth=0.8, **style)
            axis.text(x, len(labels) - 0.3, f"{event['signal']}\n{event['node'].removeprefix('soak-')}",
                      fontsize=6, ha="center", va="bottom", color=style["color"])
            if "broker_window" in event:
                start, end = (t - zero for t in event["broker_window"])
                axis.axvspan(start, end, color="#fff3e0", zorder=0)
                axis.text(start, -1.0, f"broker {event['broker_restarted']} restart", fontsize=6, va="top")
        axis.set_yticks(range(len(labels)), labels, fontsize=7)
        axis.set_ylim(-1.6, len(labels) + 0.9)
        axis.set_xlabel("seconds into the soak")
        minutes = float(result["settings"]["minutes"])
        kills = sum(e["signal"] == "KILL" for e in events)
        axis.set_title(f"Soak of {minutes:g} minutes ({result['commit']}, Kafka {result.get('kafka_version')}): "
                       f"{kills} kill -9, {len(events) - kills} SIGTERM, "
                       f"{sum('broker_window' in e for e in events)} broker restarts (shaded); "
                       f"gateway-only errors: {len(result['gateway_only_errors'])}", fontsize=8)
        figure.tight_layout()
    return _svg(figure)


def handover_svg() -> str:
    import matplotlib

    result = _load(HANDOVER)
    t = [s["t_s"] for s in result["samples"]]
    with matplotlib.rc_context(STYLE):
        figure, (foreign,) = _figure(8, 3.4)
        window = result["settle_s"] + result["spread_s"]
        kb = foreign.twinx()  # drawn below the connections' axes: the span and the bars stay behind the line
        kb.axvspan(0, window, color="#eeeeee", zorder=0, label=f"settle {result['settle_s']} s + spread {result['spread_s']} s")
        kb.bar(t, [s["out_of_rack_kb"] for s in result["samples"]], -4, align="edge", color="#fdae6b",
               label="out-of-rack kB in the 5 s before")
        kb.set_ylabel("out-of-rack kB per 5 s")
        kb.spines["right"].set_visible(True)
        foreign.plot(t, [s["foreign_connections"] for s in result["samples"]], marker="o", color=GATEWAY, zorder=3,
                     label="foreign connections (all nodes)")
        foreign.set_zorder(kb.get_zorder() + 1)
        foreign.patch.set_visible(False)
        foreign.axvline(0, color="black", linewidth=0.8)
        foreign.axvline(result["followed_mapping_after_s"], color="#2e7d32", linestyle="--", linewidth=1,
                        label=f"connections follow the mapping (+{result['followed_mapping_after_s']} s)")
        foreign.set_xlabel(f"seconds from {result['t_zero']}")
        foreign.set_ylabel("foreign connections")
        foreign.set_ylim(0, max(s["foreign_connections"] for s in result["samples"]) + 2)
        handles = foreign.get_legend_handles_labels()[0] + kb.get_legend_handles_labels()[0]
        foreign.legend(handles=handles, loc="upper left", fontsize=7, frameon=False)
        foreign.set_title(f"Handover around a rolling restart ({result['commit']}, the restart took "
                          f"{result['rolling_restart_s']} s)")
        figure.tight_layout()
    return _svg(figure)


PLOTS = {
    "pictures/benchmark.svg": benchmark_svg,
    "pictures/soak-timeline.svg": soak_svg,
    "pictures/handover.svg": handover_svg,
}
