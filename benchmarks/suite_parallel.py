"""The whole suite (tests and notebooks) in one process against pytest-xdist workers, run in turn.

Issue 20 (``make test`` <= 5 min on 2 cores). Each run is ``pytest -q -n W
--dist loadfile`` in the repository, as ``make test`` runs it, the two
settings alternating ``--repeats`` times; each is timed by the wall clock,
with the children's CPU time, and the machine's memory in use (MemTotal -
MemAvailable) is sampled every half second for the peak above the level
before the run. Prints one row per run, with each worker's busy time
(its tests' setup, call and teardown) and when it finished, and the ratio
of the median wall times. This file is also the pytest plugin that records
the workers' reports (``-p suite_parallel``, in the controller).

    .venv/bin/python benchmarks/suite_parallel.py [--workers 0 auto] [--repeats 2]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
TIMELINE_ENV = "SUITE_PARALLEL_TIMELINE"


def pytest_runtest_logreport(report):
    """Plugin hook: one line per test phase, with the worker that ran it (``main`` without xdist)."""
    if os.environ.get(TIMELINE_ENV) and not os.environ.get("PYTEST_XDIST_WORKER"):  # the controller writes
        worker = getattr(getattr(getattr(report, "node", None), "gateway", None), "id", "main")
        with open(os.environ[TIMELINE_ENV], "a") as timeline:
            timeline.write(json.dumps([worker, report.start, report.stop]) + "\n")


def worker_times(path: Path, started: float) -> str:
    """Each worker's busy seconds and the second its last test ended, from the plugin's lines."""
    workers = {}
    for line in path.read_text().splitlines():
        worker, start, stop = json.loads(line)
        busy, last = workers.get(worker, (0.0, 0.0))
        workers[worker] = (busy + stop - start, max(last, stop - started))
    return ", ".join(f"{w} busy {busy:.0f} s, done at {last:.0f} s" for w, (busy, last) in sorted(workers.items()))


def memory_in_use_mb() -> float:
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    kilobytes = {name: int(fields[name].split()[0]) for name in ("MemTotal", "MemAvailable")}
    return (kilobytes["MemTotal"] - kilobytes["MemAvailable"]) / 1024


def run_suite(workers: str, extra) -> dict:
    """One run of the suite; its wall and CPU seconds, peak memory growth and pytest's summary line."""
    before, peak, done = memory_in_use_mb(), [0.0], threading.Event()

    def sample():
        while not done.wait(0.5):
            peak[0] = max(peak[0], memory_in_use_mb() - before)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    cpu_before = os.times()
    timeline = Path(tempfile.mkdtemp()) / "timeline.jsonl"
    environment = {**os.environ, TIMELINE_ENV: str(timeline),
                   "PYTHONPATH": os.pathsep.join([str(REPOSITORY / "benchmarks"), os.environ.get("PYTHONPATH", "")])}
    started, started_epoch = time.perf_counter(), time.time()
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "suite_parallel",
                             "-n", workers, "--dist", "loadfile", *extra], cwd=REPOSITORY, capture_output=True,
                            text=True, env=environment)
    wall = time.perf_counter() - started
    done.set()
    sampler.join()
    cpu_after = os.times()
    lines = [line for line in result.stdout.splitlines() if re.search(r"\d+ (passed|failed)", line)]
    return {"workers": workers, "wall": wall, "rc": result.returncode, "summary": lines[-1] if lines else "?",
            "cpu": (cpu_after.children_user - cpu_before.children_user)
            + (cpu_after.children_system - cpu_before.children_system), "peak_mb": peak[0],
            "workers_times": worker_times(timeline, started_epoch) if timeline.exists() else "?"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", nargs=2, default=["0", "auto"], help="the two -n settings compared")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting, alternating")
    parser.add_argument("pytest_args", nargs="*", help="more arguments for pytest (e.g. a folder)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; pytest -n {args.workers[0]} against -n {args.workers[1]}, "
          f"{args.repeats} runs each, alternating", flush=True)
    runs = []
    for _ in range(args.repeats):
        for workers in args.workers:
            run = run_suite(workers, args.pytest_args)
            runs.append(run)
            print(f"-n {workers:>4s}: {run['wall']:6.1f} s wall, {run['cpu']:6.1f} s CPU, memory +{run['peak_mb']:5.0f} MB"
                  f", rc {run['rc']}: {run['summary']}\n    {run['workers_times']}", flush=True)
    medians = [statistics.median(r["wall"] for r in runs if r["workers"] == w) for w in args.workers]
    print(f"median wall: -n {args.workers[0]} {medians[0]:.1f} s, -n {args.workers[1]} {medians[1]:.1f} s; "
          f"x{medians[0] / medians[1]:.2f}")


if __name__ == "__main__":
    main()
