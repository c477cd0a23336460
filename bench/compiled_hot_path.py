"""``python -m bench.compiled_hot_path``: what compiling the hot path's Python with Cython would buy, no lab needed.

Issue 28 asks, where a target cannot be reached in Python, to measure what a compiled module would buy before any is
added. This command:

1. profiles ``bench.hot_path``'s timed feeds (cProfile) and picks the gateway_app modules that hold at least
   ``--min-share`` of their own time (code that gateway_app generates at run time from Kafka's definitions, the
   ``<reserved …>`` and ``<schema_walk …>`` readers, has no file to compile: its share is reported);
2. copies gateway_app twice into a scratch directory (``--build-dir``, a temporary one by default) and compiles the
   picked modules of one copy with Cython 3 in pure-Python mode (the project's ``bench`` extra), each on its own: a
   module that does not compile is left out and its error kept; the source tree and the installed package are not
   touched; and runs tests/unit against the compiled copy (the result says how that went);
3. runs ``bench.hot_path``'s measurement in a fresh interpreter per run, the scratch copy first on ``sys.path``,
   pure and compiled alternately (A B A B …, ``--rounds``), each run checking that every gateway_app module came from
   its own copy and that the compiled ones are the extension modules; the feeds are timed by the thread's CPU time
   here (``--clock cpu``), so that other work on a shared machine does not count;
4. reports each µs figure's median and best per variant and compiled/pure of the medians, and what that speed-up
   would do to the lab's gateway CPU per GB against HAProxy's (``--lab``, the benchmark's result file): ``project``.

``--out`` writes all of it as JSON (docs/benchmark.md's "What a compiled module would buy" is generated from it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .relay_runs import REPO, provenance

PACKAGE = "gateway_app"
VARIANTS = ("pure", "compiled")
# gateway_app's own frames in a profile; anything else (kio, the standard library, builtins) stays as it is
SOURCE_ROOT = REPO / PACKAGE
# compile(…, "<reserved read_produce_0>", …): readers gateway_app builds at run time, which no compiler sees
GENERATED_PREFIXES = ("<reserved", "<schema_walk", "<offset")
# the targets: gateway CPU per GB at most this many times HAProxy's in the same run
TARGETS = {"produce_default": 1.5, "produce_batched": 1.0, "produce_1k_requests": 1.5, "consume": 1.0}
# Cython's default enforces annotations as types (a `reason: str` refuses CloseReason, a str subclass), and 12 unit
# tests of the compiled modules failed so: compiled as plain Python, the modules behave as the pure ones
DEFAULT_DIRECTIVES = ["annotation_typing=False"]
# the unit tests run against the compiled copy, ansible-lint's (no gateway code, most of the time) left out
UNIT_TESTS = ["-q", "-p", "no:cacheprovider", "-m", "not lab and not network", "tests/unit",
              "--ignore=tests/unit/test_ansible_lint.py"]
# which hot_path figure is the Python a lab workload pays per Produce request and its response
PER_PAIR_FIGURE = {"produce_default": "per_pair_us", "produce_batched": "per_pair_us",
                   "produce_1k_requests": "pipelined_1k_per_pair_us"}


# --- which modules ------------------------------------------------------------------------------------------------

def self_time_by_file(stats: dict) -> dict[str, float]:
    """pstats' raw table ({(file, line, name): (calls, primitive, tottime, cumtime, callers)}) as seconds per file."""
    seconds: dict[str, float] = {}
    for (filename, _, _), (_, _, own, _, _) in stats.items():
        seconds[filename] = seconds.get(filename, 0.0) + own
    return seconds


def module_name(filename: str, source_root: Path = SOURCE_ROOT) -> str | None:
    """`.../gateway_app/proxy/connection.py` → `gateway_app.proxy.connection`; None for anything outside it."""
    path = Path(filename)
    if path.suffix != ".py" or not path.is_relative_to(source_root):
        return None
    parts = path.relative_to(source_root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def hot_modules(seconds: dict[str, float], min_share: float, source_root: Path = SOURCE_ROOT) -> dict:
    """The gateway_app modules holding at least `min_share` of all the profiled time, busiest first, with each one's
    share; and the shares of gateway_app's run-time generated readers and of everything else."""
    total = sum(seconds.values())
    if total <= 0:
        raise ValueError("the profile recorded no time")
    shares: dict[str, float] = {}
    generated = 0.0
    for filename, own in seconds.items():
        name = module_name(filename, source_root)
        if name is not None:
            shares[name] = shares.get(name, 0.0) + own / total
        elif filename.startswith(GENERATED_PREFIXES):
            generated += own / total
    picked = {name: round(share, 4) for name, share in sorted(shares.items(), key=lambda item: -item[1])
              if share >= min_share and not name.endswith("__init__") and name != PACKAGE}
    return {"modules": picked, "gateway_app_share": round(sum(shares.values()), 4),
            "generated_readers_share": round(generated, 4),
            "picked_share": round(sum(picked.values()), 4)}


def profile_hot_path(args: argparse.Namespace) -> dict[str, float]:
    """Seconds of own time per file while hot_path's timed feeds run, in this (pure-Python) interpreter."""
    import cProfile
    import pstats

    from . import hot_path

    profiler = cProfile.Profile()
    hot_path.measured(_profile_args(args), profiler)
    return self_time_by_file(pstats.Stats(profiler).stats)  # type: ignore[attr-defined]


def _profile_args(args: argparse.Namespace) -> argparse.Namespace:
    # a shorter run than the measured ones: the shares settle well before the timings do
    return argparse.Namespace(**{**vars(args), "frames": min(args.frames, 4000), "passes": 1})


# --- compiling ----------------------------------------------------------------------------------------------------

def scratch_copies(build_dir: Path) -> dict[str, Path]:
    """gateway_app copied for each variant under build_dir/VARIANT (without caches or earlier builds)."""
    roots = {}
    for variant in VARIANTS:
        root = build_dir / variant
        if root.exists():
            shutil.rmtree(root)
        shutil.copytree(SOURCE_ROOT, root / PACKAGE,
                        ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.c", "build"))
        roots[variant] = root
    return roots


def compile_module(root: Path, module: str, directives: list[str]) -> str | None:
    """Cythonize and build one module in place in the copy at `root`; None when it built, else why not."""
    source = root / (module.replace(".", "/") + ".py")
    options = [option for directive in directives for option in ("-X", directive)]
    done = subprocess.run([sys.executable, "-m", "Cython.Build.Cythonize", "-i", "-3", "-q", *options, str(source)],
                          cwd=root, capture_output=True, text=True)
    built = list(source.parent.glob(source.stem + ".*.so"))
    if done.returncode == 0 and built:
        return None
    for leftover in [*built, source.with_suffix(".c")]:
        leftover.unlink(missing_ok=True)
    lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    errors = [line for line in lines if "Error" in line or "error" in line]
    return "\n".join((errors or lines)[-6:])


def compile_modules(root: Path, modules: list[str], jobs: int,
                    directives: list[str]) -> tuple[list[str], dict[str, str]]:
    """The modules that built, and each that did not with its compiler's last error lines."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = dict(zip(modules, pool.map(lambda module: compile_module(root, module, directives), modules)))
    built = [module for module, error in outcomes.items() if error is None]
    return built, {module: error for module, error in outcomes.items() if error is not None}


def cython_version() -> str:
    try:
        import Cython
    except ImportError:
        raise SystemExit("bench.compiled_hot_path needs Cython: pip install -e '.[bench]' (scripts/bootstrap does)")
    return Cython.__version__


# --- one measured run, in a fresh interpreter ---------------------------------------------------------------------

def run_variant(root: Path, compiled: list[str], args: argparse.Namespace) -> dict:
    """hot_path's figures from a fresh interpreter whose gateway_app is the copy at `root`."""
    done = _in_fresh_interpreter("child", {"root": str(root), "compiled": compiled, "args": _hot_path_args(args)})
    if done.returncode != 0:
        raise RuntimeError(f"the {root.name} run failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _in_fresh_interpreter(function: str, spec: dict) -> subprocess.CompletedProcess[str]:
    """Run this module's `function` with `spec` in a new interpreter whose first sys.path entry is spec["root"] (the
    copy of gateway_app it is to import), writing no bytecode into the copy."""
    code = (f"import sys; sys.path.insert(0, sys.argv[1]); from bench.compiled_hot_path import {function}; "
            f"{function}(sys.argv[2])")
    return subprocess.run([sys.executable, "-c", code, spec["root"], json.dumps(spec)], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def _hot_path_args(args: argparse.Namespace) -> dict:
    return {key: getattr(args, key) for key in ("frames", "passes", "request_size", "metadata_topics", "pipelined",
                                                "fetch_partitions", "clock")}


def child(spec_json: str) -> None:
    """In the fresh interpreter: check where gateway_app comes from, measure, print the figures as one JSON line."""
    spec = json.loads(spec_json)
    from . import hot_path  # imports gateway_app from the copy, first on sys.path

    figures = hot_path.measured(argparse.Namespace(**spec["args"]))
    loaded = _check_imports(spec)
    print(json.dumps({"figures": figures, "extension_modules": sorted(
        name for name, where in loaded.items() if where.endswith(".so"))}))


def check_compiled(root: Path, compiled: list[str]) -> dict:
    """The unit tests run in a fresh interpreter whose gateway_app is the compiled copy: its compiled modules
    imported before pytest starts, so that the tests' own imports find them."""
    done = _in_fresh_interpreter("child_tests", {"root": str(root), "compiled": compiled})
    problems = done.stderr.strip().splitlines()[-1:] if "not imported as intended" in done.stderr else []
    return {"command": shlex.join(["pytest", *UNIT_TESTS]), **pytest_outcome(done.stdout, done.returncode),
            "import_problems": problems}


def pytest_outcome(output: str, exit_code: int) -> dict:
    """pytest's exit code, its closing summary and the tests it names as failed (-rfE), at most 20."""
    lines = output.splitlines()
    failures = [line.split(" - ")[0] for line in lines if re.match(r"(FAILED|ERROR) \S+::", line)]
    summary = next((line.strip("= ") for line in reversed(lines)
                    if re.search(r"\d+ (passed|failed|error)", line)), "")
    return {"exit_code": exit_code, "summary": summary, "failures": failures[:20]}


def child_tests(spec_json: str) -> None:
    import importlib

    import pytest

    spec = json.loads(spec_json)
    for name in spec["compiled"]:
        importlib.import_module(name)
    code = pytest.main([*UNIT_TESTS, "-rfE"])
    _check_imports(spec)
    sys.exit(code)


def _check_imports(spec: dict) -> dict[str, str]:
    loaded = {name: module.__file__ for name, module in list(sys.modules.items())
              if (name == PACKAGE or name.startswith(PACKAGE + ".")) and getattr(module, "__file__", None)}
    problems = import_problems(loaded, Path(spec["root"]), spec["compiled"])
    if problems:
        raise SystemExit("gateway_app was not imported as intended: " + "; ".join(problems))
    return loaded


def import_problems(loaded: dict[str, str], root: Path, compiled: list[str]) -> list[str]:
    """Why the modules a run imported are not the copy's (every one under root, the compiled ones as .so)."""
    problems = [f"{name} from {where}" for name, where in loaded.items() if not Path(where).is_relative_to(root)]
    problems += [f"{name} not imported" for name in compiled if name not in loaded]
    problems += [f"{name} is {loaded[name]}, not an extension module" for name in compiled
                 if name in loaded and not loaded[name].endswith(".so")]
    problems += [f"{name} is an extension module but was not compiled here" for name, where in loaded.items()
                 if where.endswith(".so") and name not in compiled]
    return problems


# --- the figures --------------------------------------------------------------------------------------------------

def summarise(runs: dict[str, list[dict]]) -> dict:
    """Per µs figure: each variant's median and best, compiled/pure of the medians and the median of the rounds'
    ratios; the other figures (counts of writes, sizes) must be the same in every run, the code doing the same work."""
    pure, compiled = runs["pure"], runs["compiled"]
    if not pure or len(pure) != len(compiled):
        raise ValueError("runs come in pairs, one pure and one compiled per round")
    figures: dict[str, dict] = {}
    for key in pure[0]:
        values = {variant: [run[key] for run in runs[variant]] for variant in VARIANTS}
        if not key.endswith("_us"):
            if len(set(values["pure"] + values["compiled"])) != 1:
                raise ValueError(f"{key} differs between runs: {values}")
            continue
        if key == "fetch_rack_cost_us":  # a difference of two figures, not a cost of its own
            continue
        medians = {variant: statistics.median(values[variant]) for variant in VARIANTS}
        figures[key] = {**{f"{variant}_us": values[variant] for variant in VARIANTS},
                        **{f"{variant}_median_us": round(medians[variant], 2) for variant in VARIANTS},
                        **{f"{variant}_best_us": min(values[variant]) for variant in VARIANTS},
                        "compiled_over_pure": round(medians["compiled"] / medians["pure"], 3),
                        "round_ratios_median": round(statistics.median(
                            c / p for p, c in zip(values["pure"], values["compiled"])), 3)}
    return figures


def project(lab: dict, figures: dict, produce_response_bytes: int) -> dict:
    """What the measured speed-up would do to each lab workload's gateway CPU per GB, against the issue's target.

    Three figures per workload. `if_all_python`: the whole of the gateway's CPU per GB scaled by compiled/pure, as if
    every cycle were the compiled modules' (an upper bound on the gain). `estimated`: only the Python the hot path
    measures scaled — its µs per Produce request and response (pure) times the requests in a GB (both directions, as
    the lab counts them), at most the whole figure — the rest (the kernel's sends and receives, the event loop) left
    as it was; and `without_python`, that Python costing nothing at all, the most any compiled module could buy.
    Consume has no estimate: the lab's file does not say how many Fetch responses carried its gigabyte, and
    its responses are spliced; its bound uses the copying path's Fetch response figure.
    """
    cpu, relay = lab["gateway_cpu"], lab["relay_cpu"]
    fetch = figures["fetch_response_us"]["compiled_over_pure"]
    out = {}
    for workload, factor in TARGETS.items():
        gateway, haproxy = cpu[workload]["cpu_s_per_gb"], relay[workload]["cpu_s_per_gb"]
        row: dict = {"gateway_cpu_s_per_gb": gateway, "haproxy_cpu_s_per_gb": haproxy,
                     "target_cpu_s_per_gb": round(factor * haproxy, 2), "target_over_haproxy": factor,
                     "met_now": gateway <= factor * haproxy}
        if workload in PER_PAIR_FIGURE:
            figure = figures[PER_PAIR_FIGURE[workload]]
            speed = figure["compiled_over_pure"]
            requests_per_gb = 1e9 / (cpu[workload]["mean_produce_request_bytes"] + produce_response_bytes)
            # hot_path's µs come from another machine state than the lab's CPU figure: never more than all of it
            python = min(requests_per_gb * figure["pure_median_us"] / 1e6, gateway)
            estimated = gateway - python * (1 - speed)
            row.update({"hot_path_figure": PER_PAIR_FIGURE[workload], "compiled_over_pure": speed,
                        "requests_per_gb": round(requests_per_gb), "python_cpu_s_per_gb": round(python, 2),
                        "python_share": round(python / gateway, 3), "estimated_cpu_s_per_gb": round(estimated, 2),
                        "estimated_met": estimated <= factor * haproxy,
                        # what no compiler can beat: the hot path's Python gone altogether
                        "without_python_cpu_s_per_gb": round(gateway - python, 2),
                        "without_python_met": gateway - python <= factor * haproxy})
        else:
            speed = fetch
            row.update({"hot_path_figure": "fetch_response_us", "compiled_over_pure": speed})
        bound = gateway * speed
        row.update({"if_all_python_cpu_s_per_gb": round(bound, 2), "if_all_python_met": bound <= factor * haproxy})
        out[workload] = row
    return out


# --- the command --------------------------------------------------------------------------------------------------

def measure(args: argparse.Namespace) -> dict:
    from . import hot_path

    version = cython_version()
    result = {**provenance("bench.compiled_hot_path"), "cython": version, "python": sys.version.split()[0]}
    seconds = profile_hot_path(args)
    picked = hot_modules(seconds, args.min_share)
    build_dir = args.build_dir or Path(tempfile.mkdtemp(prefix="compiled-hot-path-"))
    roots = scratch_copies(build_dir)
    directives = DEFAULT_DIRECTIVES if args.directive is None else args.directive
    built, failed = compile_modules(roots["compiled"], list(picked["modules"]), args.jobs, directives)
    tests = check_compiled(roots["compiled"], built)
    print(f"unit tests against the compiled copy: {tests['summary']}", file=sys.stderr)
    runs: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
    for round_ in range(args.rounds):
        for variant in VARIANTS:
            outcome = run_variant(roots[variant], built if variant == "compiled" else [], args)
            runs[variant].append(outcome["figures"])
            print(f"round {round_ + 1}/{args.rounds} {variant}: {json.dumps(outcome['figures'])}", file=sys.stderr)
    if not args.build_dir:
        shutil.rmtree(build_dir)
    figures = summarise(runs)
    lab = json.loads(args.lab.read_text())
    result["machine"]["loadavg_end"] = list(os.getloadavg())
    return {**result, "hot_path_args": _hot_path_args(args), "rounds": args.rounds,
            "profile": {"min_share": args.min_share, **picked}, "cython_directives": directives,
            "modules_compiled": built, "modules_failed": failed, "unit_tests_compiled": tests,
            "figures": figures,
            "lab": {"file": str(args.lab.resolve().relative_to(REPO)) if args.lab.resolve().is_relative_to(REPO)
                    else str(args.lab), "commit": lab.get("commit"), "started": lab.get("started")},
            "projection": project(lab, figures, len(hot_path.produce_response_frame(0)))}


def main() -> None:
    from . import hot_path

    parser = hot_path.options(prog="python -m bench.compiled_hot_path", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    # CPU time: the two variants alternate on a machine shared with other work, which the wall clock counts too
    parser.set_defaults(clock="cpu")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of (pure, compiled), each run a fresh process")
    parser.add_argument("--min-share", type=float, default=0.002,
                        help="compile the gateway_app modules with at least this share of the profiled time")
    parser.add_argument("--jobs", type=int, default=2, help="modules compiled at once")
    parser.add_argument("--directive", action="append", metavar="NAME=VALUE",
                        help="a Cython compiler directive for every module (cythonize -X), in place of the default "
                             f"{' '.join(DEFAULT_DIRECTIVES)}")
    parser.add_argument("--build-dir", type=Path, help="where to copy and build (kept); a temporary directory if not")
    parser.add_argument("--lab", type=Path, default=REPO / "bench" / "results" / "latest.json",
                        help="the lab benchmark's result whose CPU per GB is projected (default %(default)s)")
    parser.add_argument("--out", type=Path, help="write the result to this JSON file")
    args = parser.parse_args()
    result = measure(args)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"modules_compiled": result["modules_compiled"], "modules_failed": list(result["modules_failed"]),
                      **{key: fig["compiled_over_pure"] for key, fig in result["figures"].items()}}))


if __name__ == "__main__":
    main()
