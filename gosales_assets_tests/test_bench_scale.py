"""benchmarks/bench_scale.py: the pure pieces (growth exponent, CPU / peak attribution to step windows, the render
with its PASS / FAIL lines). The benchmark itself runs only by hand (`make bench-large`)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def scale():
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_scale", BENCH / "bench_scale.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


def test_growth_exponent_recovers_a_power_law(scale):
    xs = [50_000, 100_000, 250_000, 500_000]
    linear = scale.growth_exponent([(x, 3e-4 * x) for x in xs])
    assert linear["exponent"] == pytest.approx(1.0, abs=1e-3) and linear["r2"] == pytest.approx(1.0)
    assert not linear["superlinear"] and linear["points"] == 4
    quad = scale.growth_exponent([(x, 2e-9 * x ** 1.5) for x in xs])
    assert quad["exponent"] == pytest.approx(1.5, abs=1e-3) and quad["superlinear"]
    flat = scale.growth_exponent([(x, 7.0) for x in xs])
    assert flat["exponent"] == pytest.approx(0.0, abs=1e-9) and flat["r2"] == 1.0
    # noisy points: the least-squares slope of the logs, by hand
    pts = [(1000, 2.0), (2000, 4.4), (4000, 7.9)]
    lx, ly = [math.log(x) for x, _ in pts], [math.log(y) for _, y in pts]
    mx, my = sum(lx) / 3, sum(ly) / 3
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)
    assert scale.growth_exponent(pts)["exponent"] == pytest.approx(slope, abs=1e-3)
    # exactly at the threshold is not flagged; just above is
    assert not scale.growth_exponent([(1, 1.0), (2, 2 ** 1.15)])["superlinear"]
    assert scale.growth_exponent([(1, 1.0), (2, 2 ** 1.16)])["superlinear"]


def test_growth_exponent_needs_two_sizes_with_a_cost(scale):
    assert scale.growth_exponent([]) is None
    assert scale.growth_exponent([(1000, 5.0)]) is None
    assert scale.growth_exponent([(1000, 5.0), (1000, 6.0)]) is None
    assert scale.growth_exponent([(1000, 5.0), (2000, None), (4000, 0.0)]) is None
    assert scale.growth_exponent([(1000, 5.0), (2000, 10.0), (4000, None)])["points"] == 2


def test_sweeps_become_intervals_from_the_process_start(scale):
    # (t, cpu s, children's cpu s, VmRSS kB, VmHWM kB of the interval)
    points = [(101.0, 0.5, 0.0, 1000, 1500), (102.0, 1.5, 0.0, 1200, 1300), (103.0, 1.5, 0.0, 900, 1200)]
    born = scale.interval_samples(points, start=100.0)
    assert born == [(100.0, 101.0, 1500, 0.0, 0.5), (101.0, 102.0, 1300, 0.5, 1.5), (102.0, 103.0, 1200, 1.5, 1.5)]
    unborn = scale.interval_samples(points, start=None)  # seen after its birth: the first sweep opens the series
    assert unborn == [(101.0, 102.0, 1300, 0.5, 1.5), (102.0, 103.0, 1200, 1.5, 1.5)]
    inexact = scale.interval_samples(points, start=100.0, exact=False)  # VmRSS where VmHWM could not be reset
    assert [s[2] for s in inexact] == [1000, 1200, 900]
    assert scale.interval_samples([], start=1.0) == []


def test_step_windows_get_their_cpu_and_peak(scale):
    # A worker born at t=0, sampled every second: 1 CPU s per s for 4 s (a step on 2 threads at half speed),
    # then idle for 2 s, then 2 CPU s per s (2 threads) for 2 s. Interval peaks in kB.
    cpu = [0, 1, 2, 3, 4, 4, 4, 6, 8]
    peaks = [100, 200, 300, 5000, 400, 300, 300, 9000, 700]
    points = [(float(t), float(cpu[t]), 0.0, peaks[t] // 2, peaks[t]) for t in range(1, 9)]
    samples = scale.interval_samples(points, start=0.0)
    assert samples[0] == (0.0, 1.0, 200, 0.0, 1.0)  # from birth, CPU 0
    windows = [(0.5, 3.5), (3.5, 5.9), (6.0, 8.0), (6.5, 7.25), (0.0, 8.0)]
    got = scale.window_costs(samples, windows)
    assert [g["cpu_s"] for g in got] == pytest.approx([3.0, 0.5, 4.0, 1.5, 8.0])
    # a window's peak: the largest interval peak overlapping it (intervals (t-1, t] carry peaks[t])
    assert [g["peak_rss_mb"] for g in got] == [round(5000 / 1024, 1), round(400 / 1024, 1), round(9000 / 1024, 1),
                                               round(9000 / 1024, 1), round(9000 / 1024, 1)]
    # steps that tile the run: their CPU adds up to the process's CPU over the run
    tiles = scale.window_costs(samples, [(0.0, 2.25), (2.25, 5.5), (5.5, 8.0)])
    assert sum(t["cpu_s"] for t in tiles) == pytest.approx(cpu[-1])


def test_the_division_cutoff_step_is_cut_into_its_stages(scale):
    """One step makes a whole division × cutoff partition: its stages are the intervals between its outputs'
    materializations (labels + frame, model, scores + drift, peers, validation), and they tile the step."""
    from gosales_assets.assets.division_cutoff import DIVISION_CUTOFF_ASSETS

    suite = scale._suite()
    stored = {"labels": 1.0, "division_features": 2.0, "division_model": 7.0, "icp_scores": 8.0, "drift": 8.5,
              "peer_scores": 9.0, "forward_validation": 9.8}
    assert set(stored) == set(DIVISION_CUTOFF_ASSETS)
    parts = suite.step_parts("division_cutoff", 0.5, 10.0, stored)
    assert parts == [("division_features", 0.5, 2.0), ("division_model", 2.0, 7.0), ("icp_scores", 7.0, 8.5),
                     ("peer_scores", 8.5, 9.0), ("forward_validation", 9.0, 10.0)]
    assert [scale.step_stage(n) for n, _, _ in parts] == ["division_features", "models", "scoring", "peers",
                                                          "validation"]
    # failed after the model: what follows it is one last part, and the parts still tile the step
    failed = suite.step_parts("division_cutoff", 0.5, 7.5, {k: stored[k] for k in ("labels", "division_features",
                                                                                    "division_model")})
    assert failed == [("division_features", 0.5, 2.0), ("division_model", 2.0, 7.0), ("forward_validation", 7.0, 7.5)]
    assert suite.step_parts("customer_features", 0.0, 3.0, {"customer_features": 2.9}) == [
        ("customer_features", 0.0, 3.0)]


def test_stage_summary_sums_wall_and_cpu_and_takes_the_largest_peak(scale):
    steps = [
        {"stage": "models", "status": "success", "wall_s": 10.0, "cpu_s": 18.0, "peak_rss_mb": 900.0},
        {"stage": "models", "status": "success", "wall_s": 30.0, "cpu_s": 55.0, "peak_rss_mb": 2500.0},
        {"stage": "models", "status": "skipped", "wall_s": 0.0, "cpu_s": 0.0, "peak_rss_mb": None},
        {"stage": "star", "status": "success", "wall_s": 5.0, "cpu_s": None, "peak_rss_mb": None},
    ]
    got = scale.stage_summary(steps)
    assert got["models"] == {"wall_s": 40.0, "cpu_s": 73.0, "peak_rss_mb": 2500.0, "steps": 2, "max_step_s": 30.0}
    assert got["star"]["cpu_s"] == 0.0 and got["star"]["steps"] == 1


def _size(n: int, k: float, *, failed: int = 0, trained: int = 68, inc_wall: float | None = None) -> dict:
    """A synthetic result of one size: stage costs proportional to n (models to n^1.3)."""
    stages = {"star": {"wall_s": 1e-4 * n * k, "cpu_s": 1.2e-4 * n * k, "peak_rss_mb": 2e-3 * n, "steps": 4},
              "models": {"wall_s": 2e-5 * n ** 1.3 * k, "cpu_s": 3e-5 * n ** 1.3 * k, "peak_rss_mb": 9e-3 * n,
                         "steps": 96}}
    wall = sum(s["wall_s"] for s in stages.values()) + 300
    full = {"wall_s": wall, "cpu_s": wall * 1.4, "peak_rss_mb": 0.022 * n, "peak_rss_tree_mb": 0.025 * n,
            "peak_process": {"role": "run worker", "step": "division_model"}, "runs": 450,
            "counts": {"ok": 450 - failed, "held": 0, "failed": failed},
            "models": {"trained": trained, "held": 3, "skipped": 96 - trained, "by_status": {}},
            "stages": stages, "outside_steps": {"wall_s": 200.0, "cpu_s": 150.0, "peak_rss_mb": None},
            "services": {"wall_s": None, "cpu_s": 60.0, "peak_rss_mb": 400.0},
            "cpu_check": {"steps_cpu_s": 10.0, "outside_steps_cpu_s": 2.0, "workers_cpu_sampled_s": 12.0,
                          "workers_cpu_reaped_s": 12.1},
            "load_average": {"mean": 1.5}}
    inc = {"wall_s": inc_wall if inc_wall is not None else 1e-3 * n, "cpu_s": 2e-3 * n, "peak_rss_mb": 0.02 * n,
           "lists_published_s": 0.9e-3 * n, "runs": 14, "counts": {"ok": 14, "held": 0, "failed": 0},
           "models": {"trained": 12, "held": 0, "skipped": 0, "by_status": {}}, "cutoff": "2026-07-31",
           "mode": "cutoff", "expected_models": {"with_window": 12, "without_window": 0}, "load_average": {"mean": 1.2}}
    return {"customers": n, "cutoffs": ["2024-09-30", "2026-06-30"], "divisions": 12,
            "generation": {"sales_rows": 9 * n}, "expected_models": {"with_window": 68, "without_window": 28},
            "full": full, "increment": inc}


def _res(sizes: list[dict]) -> dict:
    return {"started_at": "2026-12-01T10:00:00", "total_wall_s": 7200.0, "command": "make bench-large",
            "interval_s": 0.5, "args": {"cutoffs": None},
            "machine": {"cores": 2, "ram_gib": 23.5, "python": "3.11.7",
                        "packages": {"dagster": "1.13", "duckdb": "1.5", "polars": "2.1", "lightgbm": "4.7"}},
            "code": {"source": "head", "commit": "0123456789abcdef"}, "sizes": sizes}


def test_render_passes_a_500k_row_that_meets_the_targets(scale):
    res = _res([_size(n, 1.0) for n in (50_000, 100_000, 250_000, 500_000)])
    res["scaling"] = sc = scale.scaling(res["sizes"])
    assert sc["sizes"] == [50_000, 100_000, 250_000, 500_000]
    assert sc["rows"]["star"]["exponents"]["cpu_s"]["exponent"] == pytest.approx(1.0, abs=1e-3)
    assert sc["rows"]["models"]["exponents"]["wall_s"]["exponent"] == pytest.approx(1.3, abs=1e-3)
    assert ["models", "cpu_s"] in sc["superlinear"] and ["models", "wall_s"] in sc["superlinear"]
    assert not any(r == "star" for r, _ in sc["superlinear"])
    # 500k: wall = 50 + 2e-5 * 500000^1.3 + 300 s ≈ 862 s < 30 min; peak 11,000 MB < 12 GiB; increment 500 s
    v = {x["target"].split(" <")[0].split(" (")[0]: x for x in scale.verdicts(res)}
    assert v["whole backfill"]["verdict"] == "PASS"
    assert v["peak RSS"]["verdict"] == "PASS" and "10.74 GiB" in v["peak RSS"]["value"]
    assert v["monthly increment"]["verdict"] == "FAIL" and v["monthly increment"]["value"].startswith("8.3 min")
    assert v["no failed run"]["verdict"] == "PASS"
    assert v["every model trained"]["verdict"] == "PASS"
    assert v["no stage grows faster than linearly"]["verdict"] == "CHECK"
    text = scale.render(res)
    assert text.startswith("## Production scale, measured (make bench-large)")
    assert "| whole backfill < 30 min | 14.4 min | **PASS** |" in text
    assert "| monthly increment < 5 min | 8.3 min (lists published at 450 s) | **FAIL** |" in text
    assert "| no failed run | 450 + 14 runs, 0 failed | **PASS** |" in text
    assert "| models: wall 1.30, CPU 1.30 | **CHECK** |" in text
    assert "**1.30** ⚠" in text  # the models row's exponent, marked
    assert "| 500,000 (4,500,000) | **14.4 min** /" in text


def test_render_fails_what_misses_and_says_when_500k_was_not_run(scale):
    bad = _size(500_000, 3.0, failed=2, trained=60, inc_wall=200.0)
    bad["full"]["peak_rss_mb"] = 13 * 1024
    bad["full"]["stages"]["star"]["peak_rss_mb"] *= 5  # 100 MB at 50k, 5,000 MB at 500k: exponent log10(50)
    res = _res([_size(50_000, 3.0), bad])
    res["scaling"] = scale.scaling(res["sizes"])
    assert res["scaling"]["superlinear"] == [["models", "cpu_s"], ["models", "wall_s"], ["star", "peak_rss_mb"]]
    flagged = scale.verdicts(res)[-1]["value"]
    assert flagged == "models: wall 1.30, CPU 1.30; star: peak RSS 1.70"
    v = {x["target"].split(" <")[0].split(" (")[0]: x["verdict"] for x in scale.verdicts(res)}
    assert v == {"whole backfill": "FAIL", "peak RSS": "FAIL", "monthly increment": "PASS", "no failed run": "FAIL",
                 "every model trained": "FAIL", "no stage grows faster than linearly": "CHECK"}
    assert "| peak RSS < 12 GiB (largest process) | 13.00 GiB" in scale.render(res)

    small = _res([_size(2000, 1.0), _size(4000, 1.0)])
    small["args"]["cutoffs"] = 4
    small["scaling"] = scale.scaling(small["sizes"])
    rows = scale.verdicts(small)
    assert all(r["verdict"] == "–" and "largest size measured: 4,000" in r["value"] for r in rows[:5])
    text = scale.render(small)
    assert "limited with `--cutoffs`" in text and "not measured (largest size measured: 4,000)" in text
    assert "separate runs" not in text
    small["sizes"][1]["code"] = {"source": "head", "commit": "fedcba9876543210", "files_sha256": "other"}
    assert "**the engine's code differs between sizes**" in scale.render(small)


def test_code_snapshot_is_byte_compiled(scale, tmp_path, monkeypatch):
    """The engine snapshot the benchmarks run is byte-compiled as an installed package is: where
    PYTHONDONTWRITEBYTECODE is set no run worker writes bytecode, and each would compile the sources again."""
    bn = scale.bn
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.delenv(bn.CODE_ENV, raising=False)
    info = bn.snapshot_code(tmp_path, "worktree")
    sources = sorted((tmp_path / "code" / "gosales_assets").rglob("*.py"))
    assert len(sources) > 20
    missing = [p for p in sources if not Path(importlib.util.cache_from_source(str(p))).is_file()]
    assert not missing, f"not byte-compiled: {missing[:3]}"
    # the snapshot's identity is its sources: bytecode does not change the digest
    (tmp_path / "again").mkdir()
    again = bn.snapshot_code(tmp_path / "again", "worktree")
    assert again["files_sha256"] == info["files_sha256"]


def test_overlapping_runs_are_counted_per_pool(scale):
    """With two slots per pool, two warehouse runs and a ranking run at once are allowed; a third warehouse run
    beside two is flagged, whatever the ranking run does (the slots are dagster.yaml's, `dagster_stack.pool_slots`)."""
    def run(run_id, start, end, pool):
        return {"run_id": run_id, "starting": start, "start": start, "end": end, "pools": [pool]}

    w, r = "gosales_warehouse", "gosales_ranking"
    allowed = [run("a", 100.0, 110.0, w), run("b", 101.0, 110.0, w), run("c", 102.0, 110.0, r)]
    assert scale.bn.overlaps(allowed, 2) == []
    too_many = [*allowed, run("d", 103.0, 110.0, w)]
    assert scale.bn.overlaps(too_many, 2) == [["a", "b", "d"]]


def test_a_copied_homes_snapshot_is_adopted_only_when_it_is_the_same_file(scale, tmp_path):
    import os
    import shutil

    import duckdb

    from gosales_assets import snapshot as snap

    live = tmp_path / "a" / "warehouse.duckdb"
    live.parent.mkdir()
    with duckdb.connect(str(live)) as con:
        con.execute("CREATE TABLE t AS SELECT range AS x FROM range(1000)")
    snap.publish(live, checkpoint=lambda: None, force=True, source="test")
    assert scale.adopt_copied_snapshot(live) is None  # the original: nothing to do

    shutil.copytree(tmp_path / "a", tmp_path / "b")  # copy2: same mtimes, new inodes (as cp -a)
    copy = tmp_path / "b" / "warehouse.duckdb"

    def due(warehouse):
        target = snap.snapshot_path(warehouse)
        return snap.snapshot_due(now=0.0, interval_s=60.0, force=False, state=snap.warehouse_state(warehouse),
                                 meta=snap.read_meta(target), snapshot_stat=snap._snapshot_stat(target))

    assert due(copy) == (True, "the snapshot file is not the one recorded in snapshot.json")
    said = scale.adopt_copied_snapshot(copy)
    assert said is not None and "re-recorded" in said
    assert due(copy)[0] is False and "is current" in due(copy)[1]
    assert snap.read_meta(snap.snapshot_path(copy))["snapshot_inode"] == snap.snapshot_path(copy).stat().st_ino

    # A snapshot file that was written to (another mtime) is not adopted: the engine republishes it.
    shutil.rmtree(tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    target = snap.snapshot_path(copy)
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert scale.adopt_copied_snapshot(copy) is None
    assert due(copy)[0] is True


def test_each_backfill_records_the_hosts_reference_work_before_and_after_it(scale, tmp_path, monkeypatch):
    bn = scale.bn
    readings = iter([1.86, 2.91])
    calls = []

    class Sampler:
        def __init__(self, interval):
            pass

        def start(self):
            calls.append("sampling")
            return self

        def stop(self):
            calls.append("stopped")

    def backfill(*args):
        calls.append("backfill")
        return {"runs": []}

    def reference():
        calls.append("reference")
        return {"total_s": next(readings)}

    summary = {"wall_s": 1.0, "cpu_s": 1.0, "peak_rss_mb": 1.0, "peak_rss_tree_mb": 1.0, "peak_process": {},
               "runs": 0, "counts": {}, "models": {"by_status": {}}, "unmapped_steps": [],
               "cpu_check": {k: 0.0 for k in ("steps_cpu_s", "outside_steps_cpu_s", "workers_cpu_sampled_s",
                                              "workers_cpu_reaped_s")}}
    monkeypatch.setattr(scale, "TreeSampler", Sampler)
    monkeypatch.setattr(scale, "run_events", lambda home, ids: [])
    monkeypatch.setattr(scale, "measure", lambda native, events, sampler: (dict(summary), {}))
    monkeypatch.setattr(bn, "init_pool", lambda home: None)
    monkeypatch.setattr(bn, "native_backfill", backfill)
    monkeypatch.setattr(bn, "reference_work", reference)
    monkeypatch.setattr(bn, "log", lambda msg: calls.append(msg))

    class Loads:
        def summary(self):
            return {}

    out = scale.measured_backfill("n=1 whole", tmp_path, tmp_path / "c.yaml", tmp_path / "stack", [], "t", Loads(),
                                  60.0, 0.5, tmp_path / "detail.json")
    assert out["reference_work"] == {"before_s": 1.86, "after_s": 2.91}
    # read outside the measured backfill: before the sampling starts, after it stops
    assert calls[:5] == ["reference", "sampling", "backfill", "stopped", "reference"]
    assert "reference work before / after 1.86 / 2.91 CPU-s" in calls[-1]


def test_render_splits_the_increment_into_daemon_waits_and_work(scale):
    size = _size(500_000, 1.0)
    assert "### The monthly increment, where its wall goes" not in scale.render(_res([size]))  # no timeline: none
    size["increment"]["timeline"] = {"steps": 217.2, "startup": 13.2, "queue": 2.4, "daemon_before_first_run": 29.6,
                                     "daemon_between_runs": 44.7, "daemon_after_last_run": 22.4, "daemon": 96.7,
                                     "wall": 329.5}
    size["increment"]["lists_published_s"] = 306.9
    text = scale.render(_res([size]))
    assert "| 500,000 | **307 s** | 29.6 s / 44.7 s | 2.4 s | 13.2 s | 217 s | 330 s |" in text
    assert "The first look came 29.6 s after submission: nearly a whole interval" in text
    assert "waits 15 s on average" in text
    size["increment"]["timeline"]["daemon_before_first_run"] = 4.0  # a submission right before a look
    text = scale.render(_res([size]))
    assert "The first look came 4.0 s after submission. The waits" in text and "on average" not in text
    small = _size(50_000, 1.0)
    small["increment"]["timeline"] = dict(size["increment"]["timeline"], daemon_before_first_run=28.3)
    text = scale.render(_res([small, size]))
    assert "The first look came 4.0 s–28.3 s after submission." in text  # one early look: no claim about the loop


def test_render_reads_each_backfill_against_its_reference_work(scale):
    size = _size(500_000, 1.0)
    assert "Reference work right before / after each backfill" not in scale.render(_res([size]))
    size["full"]["reference_work"] = {"before_s": 1.86, "after_s": 1.88}
    size["increment"]["reference_work"] = {"before_s": 2.15, "after_s": 2.93}
    text = scale.render(_res([size]))
    assert ("Reference work right before / after each backfill (the host's speed moves within an hour; read each "
            "backfill against its own): 500,000: 1.86 / 1.88 CPU-s, increment 2.15 / 2.93 CPU-s.") in text


def test_cpu_at_the_reference_speed_takes_the_hosts_drift_out_of_the_exponents(scale):
    """A stage whose work grows linearly, the larger size measured while the host was 1.5 times slower (its
    reference work 1.5 times the reference speed's): its raw CPU looks super-linear, its CPU at the reference speed
    grows linearly; a result without reference work has no such figure."""
    small, large = _size(100_000, 1.0), _size(400_000, 1.5)
    small["full"]["reference_work"] = {"before_s": 1.80, "after_s": 1.92}        # mean 1.86: the reference speed
    large["full"]["reference_work"] = {"before_s": 2.60, "after_s": 2.98}        # mean 2.79 = 1.5 × 1.86
    sc = scale.scaling([small, large])
    star = sc["rows"]["star"]
    assert star["exponents"]["cpu_s"]["exponent"] == pytest.approx(1.0 + math.log(1.5) / math.log(4), abs=1e-3)
    assert star["exponents"]["cpu_ref_s"]["exponent"] == pytest.approx(1.0, abs=1e-3)
    assert star["values"]["400000"]["cpu_ref_s"] == pytest.approx(1.2e-4 * 400_000, rel=1e-9)
    assert ["star", "cpu_s"] in sc["superlinear"] and ["star", "cpu_ref_s"] not in sc["superlinear"]
    assert sc["rows"]["increment"]["values"]["400000"]["cpu_ref_s"] is None  # the increment recorded none
    text = scale.render(_res([small, large]) | {"scaling": sc})
    assert "growth exponent: wall / CPU / CPU at the reference speed / peak RSS" in text
    assert f"{scale._s(1.2e-4 * 400_000 * 1.5)} ({scale._s(1.2e-4 * 400_000)})" in text
    assert scale.host_scaled_cpu(10.0, {}) is None and scale.host_scaled_cpu(None, large["full"]) is None
