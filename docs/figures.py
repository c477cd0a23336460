"""Figures inside hand-written pages (README.md, docs/*.md), generated from the committed result files.

A page marks each generated passage with `<!-- figures:NAME -->` … `<!-- /figures:NAME -->`; `python -m docs.generate`
rewrites what lies between from BLOCKS[NAME], and tests/docs/test_reference_drift.py fails when a committed passage
differs. Prose outside the markers carries no measured number: a figure is either here, drawn from a file anyone can
regenerate with the command the file names, or not stated.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
BENCH_LATEST = ROOT / "bench" / "results" / "latest.json"
BENCH_BEFORE = ROOT / "results" / "bench-request-parser-before.json"
BENCH_AFTER = ROOT / "results" / "bench-request-parser-after.json"
SOAK = ROOT / "results" / "soak-10min.json"
HANDOVER = ROOT / "results" / "handover-rolling-restart.json"
NO_RETRY = ROOT / "results" / "no-retry-rolling-restart.json"
COMPILED = ROOT / "results" / "compiled-hot-path.json"
METADATA_SHAPES = ROOT / "results" / "metadata-shapes.json"
PAGES_WITH_FIGURES = ("README.md", "docs/benchmark.md", "docs/reliability.md", "docs/handover.md",
                      "docs/production.md")
_BLOCK = re.compile(r"(<!-- figures:([\w-]+) -->\n)(.*?)(<!-- /figures:\2 -->)", re.S)


@cache
def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _load_average(values: list[float]) -> str:
    return f"{values[0]:.1f}"


# --- the benchmark ------------------------------------------------------------------------------------------------

THROUGHPUT = (("produce_default_mb_s", "produce MB/s, default batching", "produce_default"),
              ("produce_batched_mb_s", "produce MB/s, batch.size=131072 linger.ms=1", "produce_batched"),
              ("produce_1k_requests_mb_s", "produce MB/s, 1 KiB requests (batch.size=1024 linger.ms=0)", "produce_1k_requests"),
              ("consume_mb_s", "consume MB/s (ConsumerPerformance fetch MB/s)", "consume"))


CPU_WORKLOADS = {"produce_default": "produce, default batching", "produce_batched": "produce, batch.size=131072 linger.ms=1",
                 "produce_1k_requests": "produce, 1 KiB requests", "consume": "consume",
                 "produce_fixed_rate": "produce at the fixed latency rate"}


def _spread(fig: dict) -> str:
    aa = fig.get("aa_control")
    return f"{aa['min']:.3f}–{aa['max']:.3f}" if aa else ""


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}".replace("-", "−")


def bench_latest() -> str:
    r = _load(BENCH_LATEST)
    m = r["machine"]
    out = [f"`{_rel(BENCH_LATEST)}`: {r['pairs']} pairs of {r['records']} records of {r['record_size']} B, started "
           f"{r['started']} at {r['commit']} on the {m['cpus']}-core lab VM (Linux {m['kernel']}), load average "
           f"{_load_average(m['loadavg_start'])} at the start and {_load_average(m['loadavg_end'])} at the end.\n\n"]
    rows = []
    for key, label, _ in THROUGHPUT:
        fig = r[key]
        rows.append([label, fig["direct_median"], fig["gateway_median"], f"{fig['ratio']:.3f}",
                     f"{fig['pair_ratio_median']:.3f}; {_spread(fig)}"])
    rate = r["latency_rate_records_s"]
    for key, label, digits in (("latency_p50_ms", f"produce p50 ms at {rate} rec/s (ProducerPerformance)", 1),
                               ("latency_p99_ms", f"produce p99 ms at {rate} rec/s (ProducerPerformance)", 0),
                               ("steady_latency_p50_ms", f"steady-state p50 ms at {rate} rec/s (`bench.latency`, librdkafka)", 2),
                               ("steady_latency_p99_ms", f"steady-state p99 ms at {rate} rec/s", 2),
                               ("steady_latency_p999_ms", f"steady-state p99.9 ms at {rate} rec/s", 2),
                               ("e2e_latency_avg_ms", E2E_LATENCY["e2e_latency_avg_ms"], 2),
                               ("e2e_latency_p99_ms", E2E_LATENCY["e2e_latency_p99_ms"], 2)):
        fig = r[key]
        rows.append([label, fig["direct_median"], fig["gateway_median"], f"added {_signed(fig['added_ms'], digits)} ms",
                     f"pair differences {_signed(fig['pair_added_ms_median'], digits)} ms"])
    meta = r["metadata_requests_s"]
    rows.append(["Metadata requests/s (one gateway node vs one broker)", round(meta["direct_median"]),
                 round(meta["gateway_median"]), f"{meta['ratio']:.3f}", f"{meta['pair_ratio_median']:.3f}"])
    rows.append(["Metadata requests per CPU-second of the gateway's one core", "",
                 round(r["metadata_requests_per_gateway_cpu_s"]["median"]), "", ""])
    out.append(_table(["workload", "direct (median)", "gateway (median)", "gateway/direct",
                       "median of pair ratios; direct vs direct"], rows))
    cpu = r["gateway_cpu"]
    rows = [[CPU_WORKLOADS[name], cpu[name]["cpu_s_per_gb"],
             f"{cpu[name]['mean_produce_request_bytes']} B" if cpu[name]["mean_produce_request_bytes"] else ""]
            for name in cpu]
    out.append("\n" + _table(["gateway CPU per GB relayed (user+sys from /proc over its own `gateway_bytes_total`)",
                              "CPU-s/GB", "mean Produce request"], rows))
    relay = r["relay_cpu"]
    rows = []
    for key, label, cpu_key in THROUGHPUT:
        ref = r[key]["reference_relay"]
        rows.append([label, r[key]["gateway_median"], ref["median"], f"{ref['over_gateway']:.3f} ({ref['pair_ratio_median']:.3f})",
                     f"{relay[cpu_key]['cpu_s_per_gb']:.2f}", f"{cpu[cpu_key]['cpu_s_per_gb']:.2f}"])
    out.append("\n" + _table(["reference relay: HAProxy in front of a gateway, same rounds", "gateway MB/s",
                              "HAProxy + gateway MB/s", "chain/gateway (pair ratios)", "HAProxy CPU-s/GB",
                              "gateway CPU-s/GB"], rows))
    out.append(_relay_latency_and_metadata(r, rate))
    return "".join(out)


E2E_LATENCY = {"e2e_latency_avg_ms": "EndToEndLatency average ms (Kafka's tool, one record at a time)",
               "e2e_latency_p99_ms": "EndToEndLatency p99 ms"}


def _relay_latency_and_metadata(r: dict, rate: int) -> str:
    """The reference relay's legs of the latency and Metadata workloads (results from before they had one: none)."""
    latencies = (("steady_latency_p50_ms", f"steady-state p50 ms at {rate} rec/s"),
                 ("steady_latency_p99_ms", f"steady-state p99 ms at {rate} rec/s"),
                 ("steady_latency_p999_ms", f"steady-state p99.9 ms at {rate} rec/s"), *E2E_LATENCY.items())
    rows = [[label, f"{_signed(r[key]['added_ms'], 2)} ms ({_signed(r[key]['pair_added_ms_median'], 2)} ms)",
             r[key]["reference_relay"]["median"],
             f"{_signed(r[key]['reference_relay']['added_ms'], 2)} ms "
             f"({_signed(r[key]['reference_relay']['pair_added_ms_median'], 2)} ms)"]
            for key, label in latencies if "reference_relay" in r[key]]
    out = ""
    if rows:
        out += "\n" + _table(["reference relay, latency: HAProxy in front of a gateway, same rounds",
                               "the gateway adds to direct (pair differences)", "HAProxy + gateway (median)",
                               "HAProxy adds to the gateway (pair differences)"], rows)
    meta = r["metadata_requests_s"]
    if "reference_relay" in meta:
        relay = meta["reference_relay"]
        out += "\n" + _table(
            ["Metadata, same rounds", "requests/s (median)", "of the broker's (pair ratios)", "per CPU-second of the relay"],
            [["one broker", round(meta["direct_median"]), "", ""],
             ["one gateway node in front of it", round(meta["gateway_median"]),
              f"{meta['ratio']:.3f} ({meta['pair_ratio_median']:.3f})",
              round(r["metadata_requests_per_gateway_cpu_s"]["median"])],
             ["HAProxy in front of it (C, TCP mode, one thread)", round(relay["median"]),
              f"{relay['over_direct']:.3f} ({relay['pair_ratio_median']:.3f})", round(relay["requests_per_relay_cpu_s"])]])
    return out


def metadata_shapes() -> str:
    r = _load(METADATA_SHAPES)
    m = r["machine"]
    out = [f"`{r['command']}` at {r['commit']} (`{_rel(METADATA_SHAPES)}`), started {r['started']}: {r['rounds']} "
           f"interleaved rounds of {r['seconds']:g} s per shape against broker {r['broker']}, load average "
           f"{_load_average(m['loadavg_start'])} at the start and {_load_average(m['loadavg_end'])} at the end. "
           "Medians of the rounds; system calls per request from one more run under strace, CPU samples from one "
           "more under perf.\n\n"]

    def pair(entry: dict, key: str, digits: int) -> str:
        return f"{entry['gateway'][key]:.{digits}f} / {entry['haproxy'][key]:.{digits}f}"

    def syscalls(figures: dict) -> str:
        return f"{sum(figures['syscalls_per_request'].values()):.2f}"

    def samples(figures: dict) -> str:
        shares = figures.get("cpu_samples_percent")
        return f"{shares['interpreter']:.0f} / {shares['kernel']:.0f}" if shares else ""

    rows = [[f"{e['connections']}×{e['depth']}", e["broker_rate_median"],
             f"{e['gateway']['rate']:.0f} ({e['gateway']['of_broker']:.3f})",
             f"{e['haproxy']['rate']:.0f} ({e['haproxy']['of_broker']:.3f})", pair(e, "cpu_us_per_request", 1),
             f"{syscalls(e['gateway'])} / {syscalls(e['haproxy'])}", pair(e, "involuntary_per_request", 3),
             pair(e, "voluntary_per_request", 3), samples(e["gateway"]),
             f"{e['haproxy']['cpu_samples_percent']['kernel']:.0f}" if "cpu_samples_percent" in e["haproxy"] else ""]
            for e in r["shapes"]]
    out.append(_table(["connections × pipelined", "broker req/s", "gateway req/s (of the broker's)",
                       "HAProxy req/s (of the broker's)", "CPU µs per request, gateway / HAProxy",
                       "system calls per request", "preempted per request", "waits per request",
                       "gateway's CPU samples: interpreter / kernel %", "HAProxy's: kernel %"], rows))
    bench_shape = next((e for e in r["shapes"] if (e["connections"], e["depth"]) == (4, 16)), None)
    if bench_shape and "cpu_samples_percent" in bench_shape["gateway"]:
        g, h = bench_shape["gateway"], bench_shape["haproxy"]

        def part(figures: dict, kind: str) -> float:
            return figures["cpu_us_per_request"] * figures["cpu_samples_percent"][kind] / 100

        out.append(f"\nAt the benchmark's shape (4×16), per request: the gateway spends {part(g, 'kernel'):.1f} µs in the "
                   f"kernel and {part(g, 'interpreter'):.1f} µs in the interpreter, HAProxy {part(h, 'kernel'):.1f} µs "
                   f"in the kernel; {syscalls(g)} system calls against HAProxy's {syscalls(h)}.\n")
    return "".join(out)


def bench_parser() -> str:
    before, after = _load(BENCH_BEFORE), _load(BENCH_AFTER)
    out = [f"The code before the rework ({before['commit']}, `{_rel(BENCH_BEFORE)}`, started {before['started']}) and "
           f"after it ({after['commit']}, `{_rel(BENCH_AFTER)}`, started {after['started']}); each file holds its "
           "command.\n\n"]

    def mb(fig: dict) -> str:
        return f"{fig['ratio']:.3f} ({_spread(fig)})"

    rows = []
    for key, label, cpu_key in THROUGHPUT:
        b, a = before[key], after[key]
        rows.append([label, f"{b['gateway_median']} → {a['gateway_median']}", f"{mb(b)} → {mb(a)}",
                     f"{before['gateway_cpu'][cpu_key]['cpu_s_per_gb']} → {after['gateway_cpu'][cpu_key]['cpu_s_per_gb']}"])
    b, a = before["metadata_requests_s"], after["metadata_requests_s"]
    rows.append(["Metadata requests/s", f"{b['gateway_median'] / 1000:.1f}k → {a['gateway_median'] / 1000:.1f}k",
                 f"{b['ratio']:.3f} → {a['ratio']:.3f}", ""])
    out.append(_table(["workload", "gateway before → after", "gateway/direct before → after (direct vs direct)",
                       "gateway CPU-s/GB before → after"], rows))
    return "".join(out)


def bench_sizing() -> str:
    r = _load(BENCH_LATEST)
    m, cpu, relay = r["machine"], r["gateway_cpu"], r["relay_cpu"]
    rows = [[CPU_WORKLOADS[name].replace("produce at the fixed latency rate",
                                         f"produce at a fixed {r['latency_rate_records_s']} records/s"),
             cpu[name]["cpu_s_per_gb"],
             f"{cpu[name]['mean_produce_request_bytes']} B" if cpu[name]["mean_produce_request_bytes"] else ""]
            for name in cpu]
    rows.append(["Metadata requests", f"{round(r['metadata_requests_per_gateway_cpu_s']['median'])} answered per gateway "
                 "CPU-second", ""])
    default, batched, small, consume = (cpu[k]["cpu_s_per_gb"] for k in ("produce_default", "produce_batched",
                                                                          "produce_1k_requests", "consume"))
    example = 0.1 * default + 0.3 * consume
    return (f"`{_rel(BENCH_LATEST)}`, at commit {r['commit']} (Linux {m['kernel']}, load average "
            f"{_load_average(m['loadavg_start'])} at the start and {_load_average(m['loadavg_end'])} at the end; "
            "[Benchmark](benchmark.md) has the whole run):\n\n"
            + _table(["workload (1 KiB records, acks=all)", "gateway CPU-seconds per GB relayed", "mean Produce request"], rows)
            + "\nHow to read them:\n\n"
            f"- **CPU follows requests, not bytes.** The same gigabyte costs {batched} CPU-s in 128 KiB requests and "
            f"{small} CPU-s in 1 KiB requests. Ask what your producers' batching looks like (`gateway_bytes_total / "
            "gateway_requests_total` by API on a running node) before sizing on bytes.\n"
            "- **A node is one core.** The data plane is one event loop; a node never uses much more than one core for "
            f"relaying. By the table, a core on that machine relays about 1 GB/s / {default} ≈ {1000 / default:.0f} MB/s "
            f"of default-batched produce or about {1 / consume:.1f} GB/s of consume traffic — arithmetic from the table, "
            "not a measured ceiling.\n"
            "- **Worked example** (same caveat): 100 MB/s of default-batched produce and 300 MB/s of consume in one rack "
            f"is 0.1 × {default} + 0.3 × {consume} ≈ {example:.2f} core. Two nodes in that rack keep it rack-local "
            f"through one node's loss, each at ~{example / 2:.2f} core in normal operation and ~{example:.2f} with its "
            "peer gone.\n"
            "- **CPU figures move with the machine's load**; compare figures within one run only.\n"
            "- **The gateway against a C relay.** In the same run HAProxy alone in the path (TCP mode, one thread, splice) "
            f"cost {relay['consume']['cpu_s_per_gb']:.2f} CPU-s/GB consume, {relay['produce_batched']['cpu_s_per_gb']:.2f} "
            f"batched and {relay['produce_1k_requests']['cpu_s_per_gb']:.2f} at 1 KiB requests: a relay hop of any kind "
            "costs CPU of the same order.\n")


def _hot_path_labels(args: dict) -> dict[str, str]:
    return {"produce_request_us": f"Produce request of {args['request_size']} B",
            "produce_response_us": "its Produce response",
            "per_pair_us": "Produce request and response",
            "pipelined_1k_per_pair_us": f"1 KiB Produce request and response, {args['pipelined']} to a read",
            "metadata_response_us": "Metadata response",
            "fetch_request_us": f"Fetch request of {args['fetch_partitions']} partitions, no client rack",
            "fetch_request_rack_us": "Fetch request, its rack filled in",
            "fetch_response_us": "Fetch response (copying path)",
            "fetch_response_rack_us": "Fetch response to a racked consumer"}


def _marked(value: float | None, reached: bool | None) -> str:
    """A CPU-s/GB figure, ticked when it reaches the target; empty where there is none."""
    return "" if value is None else f"{value}" + (" ✓" if reached else "")


def compiled_hot_path() -> str:
    r = _load(COMPILED)
    m, args, profile = r["machine"], r["hot_path_args"], r["profile"]
    failed = "; ".join(f"`{name}`: {why.splitlines()[-1]}" for name, why in r["modules_failed"].items()) or "none"
    directives = ", ".join(f"`{directive}`" for directive in r["cython_directives"]) or "Cython's defaults"
    tests = r["unit_tests_compiled"]
    out = [f"`{r['command']}` at {r['commit']} (`{_rel(COMPILED)}`), started {r['started']}: Cython {r['cython']} "
           f"({directives}) on Python {r['python']}, {r['rounds']} rounds of a pure and a compiled run of "
           f"`bench.hot_path --frames {args['frames']} --passes {args['passes']} --clock {args['clock']}`, each a "
           f"fresh interpreter; load average {_load_average(m['loadavg_start'])} at the start and "
           f"{_load_average(m['loadavg_end'])} at the end. Compiled: "
           + ", ".join(f"`{name.removeprefix('gateway_app.')}`" for name in r["modules_compiled"])
           + f", {profile['picked_share']:.0%} of the profiled time (the readers gateway_app generates at run time, "
           f"which have no file to compile, {profile['generated_readers_share']:.0%}; the rest is kio, the standard "
           f"library and builtins). Left out as not compiling: {failed}. The unit tests against the compiled copy "
           f"(`{tests['command']}`): {tests['summary']}"
           + (f", failed: {', '.join(tests['failures'])}" if tests["failures"] else "") + ".\n\n"]
    labels = _hot_path_labels(args)
    rows = [[labels[key], f"{fig['pure_median_us']} ({fig['pure_best_us']})",
             f"{fig['compiled_median_us']} ({fig['compiled_best_us']})",
             f"{fig['compiled_over_pure']:.3f} ({fig['round_ratios_median']:.3f})"]
            for key, fig in r["figures"].items()]
    out.append(_table(["µs of CPU per frame", "pure: median (best)", "compiled: median (best)",
                       "compiled/pure (median of the rounds' ratios)"], rows))
    lab = r["lab"]
    rows = []
    for workload, row in r["projection"].items():
        share = f"{row['python_cpu_s_per_gb']} ({row['python_share']:.0%})" if "python_share" in row else "not known"
        rows.append([CPU_WORKLOADS[workload], _marked(row["gateway_cpu_s_per_gb"], row["met_now"]),
                     f"{row['target_cpu_s_per_gb']} ({row['target_over_haproxy']}× {row['haproxy_cpu_s_per_gb']})",
                     share, f"{row['compiled_over_pure']:.3f}",
                     _marked(row.get("estimated_cpu_s_per_gb"), row.get("estimated_met")),
                     _marked(row["if_all_python_cpu_s_per_gb"], row["if_all_python_met"]),
                     _marked(row.get("without_python_cpu_s_per_gb"), row.get("without_python_met"))])
    out.append(f"\nProjected onto the lab's gateway CPU per GB (`{lab['file']}`, at {lab['commit']}, started "
               f"{lab['started']}); CPU-s/GB, ✓ where at or under the target:\n\n")
    out.append(_table(["workload", "gateway now", "target (× HAProxy's)", "hot path's Python per GB (share)",
                       "compiled/pure", "compiled, estimated", "compiled, if all were Python",
                       "no hot-path Python at all"], rows))
    ratios = [fig["compiled_over_pure"] for fig in r["figures"].values()]

    def reaching(flag: str) -> str:
        names = [CPU_WORKLOADS[workload] for workload, row in r["projection"].items() if row.get(flag)]
        return "; ".join(names) or "none"

    out.append(f"\nIn this run compiled/pure is {min(ratios):.3f} to {max(ratios):.3f} over the "
               f"{len(ratios)} figures (under 1: the compiled modules are faster). At or under its target: now, "
               f"{reaching('met_now')}; compiled, estimated, {reaching('estimated_met')}; with no hot-path Python at "
               f"all (estimated for produce only), {reaching('without_python_met')}.\n")
    return "".join(out)


# --- the soak, the handover and a producer without retries -------------------------------------------------------

def soak_summary() -> str:
    r = _load(SOAK)
    events = r["events"]
    kills = sum(1 for e in events if e["signal"] == "KILL")
    brokers = sum(1 for e in events if "broker_restarted" in e)
    legs = []
    for leg in ("gateway", "direct"):
        producers = r[leg]["producers"]
        told = ", ".join(f"{name} {fig['acked']} of {fig['sent']} acknowledged, {fig['failed']} failed, "
                         f"{fig['missing']} missing, {fig['duplicated']} duplicated" for name, fig in producers.items())
        legs.append(f"{leg} leg: {told}; the group consumed {r[leg]['group']['consumed']} "
                    f"({r[leg]['group']['distinct']} distinct)")
    verdict = "OK" if r["ok"] else "FAILED"
    told = ""
    if "node_round_client_errors" in r:  # a result written before the soak judged client-level errors has none
        def listed(counts: dict) -> str:
            return ", ".join(f"{n}× {what}" for what, n in sorted(counts.items())) or "none"
        told = (f"; client-level errors of the gateway leg outside every node round and not matched by the direct "
                f"leg: {listed(r['gateway_only_client_errors'])}; inside node rounds (counted against the gateway, "
                f"allowed there only): {sum(r['node_round_client_errors'].values())}; excused by the direct leg: "
                f"{listed(r['excused_client_errors'])}")
    return (f"`{r['command']}` at {r['commit']} on Kafka {r['kafka_version']} (`{_rel(SOAK)}`): {len(events)} rounds, "
            f"{kills} of them `kill -9` and {len(events) - kills} SIGTERM, and {brokers} broker restarts. "
            + "; ".join(legs) + f". {len(r['gateway_only_errors'])} gateway-only application errors{told}; verdict "
            f"{verdict}.\n")


def handover_rolling() -> str:
    r = _load(HANDOVER)
    samples = r["samples"]
    rows = [["foreign connections", *(s["foreign_connections"] for s in samples)],
            ["out-of-rack kB in the 5 s before", *(s["out_of_rack_kb"] for s in samples)]]
    return (f"`{r['command']}` at {r['commit']} (`{_rel(HANDOVER)}`; {r['source']}). The rolling restart took "
            f"{r['rolling_restart_s']} s, and the connections followed the mapping {r['followed_mapping_after_s']} s "
            f"after the last node was ready (settle {r['settle_s']} s + spread {r['spread_s']} s). Foreign connections "
            "of all nodes and out-of-rack bytes per 5 s, t from the last node ready:\n\n"
            + _table(["t (s)", *(f"{s['t_s']:+d}" if s["t_s"] else "0" for s in samples)], rows))


def no_retry_rolling() -> str:
    r = _load(NO_RETRY)
    rows = []
    for run in r["runs"]:
        errors = ", ".join(f"{n}× {name}" for name, n in run["errors"].items()) or "none"
        during = ", ".join(f"{n} in {where}" for where, n in run["failed_during"].items()) or "—"
        if run.get("note"):  # what the run's own logs say beyond the line the test printed
            during += f" ({run['note']})"
        drains = run.get("drains")  # the nodes' drain log lines, in runs whose nodes logged them
        rows.append([run["label"], run["gateway"], run["acked"], run["failed"], errors, during,
                     f"{run['rolling_restart_s']} s", "; ".join(drains) if drains else "–"])
    return (f"`{r['command']}` on Kafka {r['kafka_version']} (`{_rel(NO_RETRY)}`; {r['source']}):\n\n"
            + _table(["run", "gateway nodes from", "acked", "failed sends", "by error", "when",
                      "rolling restart took", "each node's drain (its log)"], rows))


BLOCKS: dict[str, Callable[[], str]] = {
    "bench-latest": bench_latest,
    "metadata-shapes": metadata_shapes,
    "bench-parser": bench_parser,
    "bench-sizing": bench_sizing,
    "compiled-hot-path": compiled_hot_path,
    "soak-summary": soak_summary,
    "handover-rolling": handover_rolling,
    "no-retry-rolling": no_retry_rolling,
}


def fill(text: str) -> str:
    """The page with every marked passage rewritten from its result file."""
    def one(match: re.Match) -> str:
        name = match.group(2)
        if name not in BLOCKS:
            raise KeyError(f"no generator for the figures block {name!r}")
        return match.group(1) + BLOCKS[name]() + match.group(4)

    return _BLOCK.sub(one, text)


def blocks_in(text: str) -> list[str]:
    return [match.group(2) for match in _BLOCK.finditer(text)]


def pages() -> dict[Path, str]:
    """Every page that holds figures, as it must read."""
    return {ROOT / page: fill((ROOT / page).read_text()) for page in PAGES_WITH_FIGURES}
