"""bench.compiled_hot_path's arithmetic: which modules a profile picks, whether a run imported the modules it meant
to, the medians and ratios of the A B rounds, and the projection onto the lab's CPU per GB. No compiler, no timing."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.compiled_hot_path import (hot_modules, import_problems, module_name, project, pytest_outcome,
                                     self_time_by_file, summarise)

ROOT = Path("/src/gateway_app")


def test_module_names_come_from_gateway_app_files_only() -> None:
    assert module_name("/src/gateway_app/proxy/connection.py", ROOT) == "gateway_app.proxy.connection"
    assert module_name("/src/gateway_app/metrics.py", ROOT) == "gateway_app.metrics"
    assert module_name("/src/gateway_app/protocol/__init__.py", ROOT) == "gateway_app.protocol"
    assert module_name("/venv/site-packages/kio/serial/readers.py", ROOT) is None
    assert module_name("<reserved read_produce_0>", ROOT) is None
    assert module_name("~", ROOT) is None


def test_own_time_is_added_up_per_file() -> None:
    stats = {("/src/gateway_app/proxy/framing.py", 92, "feed"): (10, 10, 0.5, 2.0, {}),
             ("/src/gateway_app/proxy/framing.py", 157, "_boundary"): (10, 10, 0.25, 1.0, {}),
             ("~", 0, "<built-in method len>"): (99, 99, 0.125, 0.125, {})}
    assert self_time_by_file(stats) == {"/src/gateway_app/proxy/framing.py": 0.75, "~": 0.125}


def test_modules_are_picked_by_their_share_and_generated_readers_counted_apart() -> None:
    seconds = {"/src/gateway_app/proxy/connection.py": 4.0, "/src/gateway_app/proxy/framing.py": 2.0,
               "/src/gateway_app/protocol/wire.py": 0.1, "/src/gateway_app/__init__.py": 0.5,
               "<reserved read_produce_0>": 1.0, "<schema_walk skip_entity>": 0.4, "~": 2.0}
    picked = hot_modules(seconds, min_share=0.02, source_root=ROOT)
    assert list(picked["modules"]) == ["gateway_app.proxy.connection", "gateway_app.proxy.framing"]
    assert picked["modules"]["gateway_app.proxy.connection"] == 0.4
    assert picked["generated_readers_share"] == 0.14
    assert picked["gateway_app_share"] == 0.66  # the package's __init__ and wire.py count, though not picked
    assert picked["picked_share"] == 0.6
    assert list(hot_modules(seconds, min_share=0.005, source_root=ROOT)["modules"])[-1] == "gateway_app.protocol.wire"
    with pytest.raises(ValueError):
        hot_modules({}, 0.01, ROOT)


def test_a_run_that_imported_the_wrong_modules_says_which() -> None:
    root = Path("/scratch/compiled")
    good = {"gateway_app": "/scratch/compiled/gateway_app/__init__.py",
            "gateway_app.proxy.framing": "/scratch/compiled/gateway_app/proxy/framing.cpython-311-x86_64-linux-gnu.so"}
    assert import_problems(good, root, ["gateway_app.proxy.framing"]) == []
    assert import_problems({**good, "gateway_app.metrics": "/work/gateway_app/metrics.py"}, root,
                           ["gateway_app.proxy.framing"]) == ["gateway_app.metrics from /work/gateway_app/metrics.py"]
    as_source = {**good, "gateway_app.proxy.framing": "/scratch/compiled/gateway_app/proxy/framing.py"}
    assert import_problems(as_source, root, ["gateway_app.proxy.framing"]) == [
        "gateway_app.proxy.framing is /scratch/compiled/gateway_app/proxy/framing.py, not an extension module"]
    assert import_problems(good, root, ["gateway_app.proxy.framing", "gateway_app.metrics"]) == [
        "gateway_app.metrics not imported"]
    assert import_problems(good, root, []) == [
        "gateway_app.proxy.framing is an extension module but was not compiled here"]


def _run(request_us: float, response_us: float, writes: float = 0.2) -> dict:
    return {"produce_request_us": request_us, "per_pair_us": request_us + response_us, "pipelined": 5,
            "pipelined_1k_writes_per_frame": writes, "fetch_rack_cost_us": 1.0}


def test_rounds_are_summarised_as_medians_and_ratios() -> None:
    runs = {"pure": [_run(10.0, 2.0), _run(12.0, 2.0), _run(11.0, 2.0)],
            "compiled": [_run(5.0, 1.0), _run(9.0, 1.0), _run(4.0, 1.0)]}
    figures = summarise(runs)
    assert set(figures) == {"produce_request_us", "per_pair_us"}  # counts checked, the rack cost a difference
    request = figures["produce_request_us"]
    assert request["pure_us"] == [10.0, 12.0, 11.0] and request["compiled_us"] == [5.0, 9.0, 4.0]
    assert (request["pure_median_us"], request["compiled_median_us"]) == (11.0, 5.0)
    assert (request["pure_best_us"], request["compiled_best_us"]) == (10.0, 4.0)
    assert request["compiled_over_pure"] == round(5 / 11, 3)
    assert request["round_ratios_median"] == 0.5  # of 0.5, 0.75 and 0.364


def test_runs_that_did_different_work_are_refused() -> None:
    with pytest.raises(ValueError, match="pipelined_1k_writes_per_frame"):
        summarise({"pure": [_run(10.0, 2.0)], "compiled": [_run(5.0, 1.0, writes=1.0)]})
    with pytest.raises(ValueError, match="pairs"):
        summarise({"pure": [_run(10.0, 2.0)], "compiled": []})


LAB = {"gateway_cpu": {"produce_default": {"cpu_s_per_gb": 6.0, "mean_produce_request_bytes": 9_900},
                       "produce_batched": {"cpu_s_per_gb": 1.2, "mean_produce_request_bytes": 99_900},
                       "produce_1k_requests": {"cpu_s_per_gb": 60.0, "mean_produce_request_bytes": 900},
                       "consume": {"cpu_s_per_gb": 0.7, "mean_produce_request_bytes": None}},
       "relay_cpu": {"produce_default": {"cpu_s_per_gb": 2.0}, "produce_batched": {"cpu_s_per_gb": 0.5},
                     "produce_1k_requests": {"cpu_s_per_gb": 30.0}, "consume": {"cpu_s_per_gb": 0.8}}}


def _figure(pure: float, ratio: float) -> dict:
    return {"pure_median_us": pure, "compiled_over_pure": ratio}


def test_the_speed_up_is_projected_onto_the_python_share_and_as_a_bound() -> None:
    figures = {"per_pair_us": _figure(20.0, 0.5), "pipelined_1k_per_pair_us": _figure(10.0, 0.8),
               "fetch_response_us": _figure(5.0, 0.6)}
    rows = project(LAB, figures, produce_response_bytes=100)
    default = rows["produce_default"]
    # 1e9 / 10_000 B = 100k requests per GB at 20 µs each: 2 CPU-s of 6 is Python, halved by compiling
    assert default["requests_per_gb"] == 100_000 and default["python_cpu_s_per_gb"] == 2.0
    assert default["python_share"] == 0.333
    assert default["estimated_cpu_s_per_gb"] == 5.0 and default["if_all_python_cpu_s_per_gb"] == 3.0
    assert default["target_cpu_s_per_gb"] == 3.0 and not default["met_now"]
    assert not default["estimated_met"] and default["if_all_python_met"]
    assert default["without_python_cpu_s_per_gb"] == 4.0 and not default["without_python_met"]
    batched = rows["produce_batched"]  # 10k requests per GB: 0.2 CPU-s of Python, 1.1 left against 0.5
    assert batched["estimated_cpu_s_per_gb"] == 1.1 and not batched["estimated_met"]
    assert batched["if_all_python_cpu_s_per_gb"] == 0.6 and not batched["if_all_python_met"]
    small = rows["produce_1k_requests"]  # 1M requests per GB at 10 µs: 10 of 60 CPU-s, 8 after
    assert small["hot_path_figure"] == "pipelined_1k_per_pair_us"
    assert small["estimated_cpu_s_per_gb"] == 58.0 and small["target_cpu_s_per_gb"] == 45.0
    assert small["without_python_cpu_s_per_gb"] == 50.0 and not small["without_python_met"]
    consume = rows["consume"]
    assert consume["met_now"] and "estimated_cpu_s_per_gb" not in consume and "without_python_met" not in consume
    assert consume["if_all_python_cpu_s_per_gb"] == 0.42


def test_python_is_never_projected_as_more_than_the_whole_figure() -> None:
    figures = {"per_pair_us": _figure(200.0, 0.5), "pipelined_1k_per_pair_us": _figure(10.0, 0.8),
               "fetch_response_us": _figure(5.0, 0.6)}
    default = project(LAB, figures, produce_response_bytes=100)["produce_default"]
    assert default["python_cpu_s_per_gb"] == 6.0 and default["estimated_cpu_s_per_gb"] == 3.0


def test_a_test_run_against_the_compiled_copy_is_summed_up_by_its_summary_and_failed_tests() -> None:
    output = """....F
ERROR    asyncio:base_events.py:1771 Fatal error: protocol.data_received() call failed.
============================= slowest 25 durations =============================
0.72s call     tests/unit/test_mapping.py::test_balance_bound
=========================== short test summary info ============================
FAILED tests/unit/test_protocol_framing.py::test_frame_size_limits[-1-negative_size] - TypeError: Argument 'reason'
ERROR tests/unit/test_splice.py::test_x - OSError
2 failed, 1800 passed, 1 deselected in 96.81s (0:01:36)
"""
    assert pytest_outcome(output, 1) == {
        "exit_code": 1, "summary": "2 failed, 1800 passed, 1 deselected in 96.81s (0:01:36)",
        "failures": ["FAILED tests/unit/test_protocol_framing.py::test_frame_size_limits[-1-negative_size]",
                     "ERROR tests/unit/test_splice.py::test_x"]}
    passed = pytest_outcome("==== 1814 passed, 3 warnings in 56.37s ====\n", 0)
    assert passed["summary"] == "1814 passed, 3 warnings in 56.37s" and passed["failures"] == []
