"""Wall time of an ensemble run in process against the same run on a Dask LocalCluster.

    python benchmarks/bench_distributed.py [--steps 16000] [--members 8] [--workers 2]
                                           [--threads 1] [--repeats 2] [--json results.json]

Case: cases/kolmogorov64.toml (64^2 Kolmogorov flow, cn_rk4, dt 2e-3) with ``--members``
members and ``--steps`` steps, outputs as the case sets them.  In turns, ``--repeats``
times: the in-process run (``Simulation(case).run()``, numba's threads: all CPUs) and the
distributed run (``hybridsolver.distributed.run_distributed`` with ``address = "local"``:
a LocalCluster of ``--workers`` processes of ``--threads`` threads each, started and
closed by the run, the members split evenly).  Both are timed end to end (building the
simulation, or starting the cluster, included); the summaries give the stepping times
(``wall_seconds``: in process from the first step, distributed from the tasks' submission
to the merged files), the cluster's start-up and the merge of the parts, and the ratio is
also given without the merge.  The first pair is preceded by a short in-process warm-up
run (numba's cache loaded in this process).  Every distributed run's fields are checked
bit-identical to the in-process run's.
"""
import argparse
import os
import tempfile
import time

import netCDF4
import numba
import numpy as np

from hybridsolver import Simulation, load_case
from hybridsolver.case import read_toml
from hybridsolver.distributed import run_distributed
from timing import write_json

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases", "kolmogorov64.toml")


def case(members, steps, **distributed):
    """The benchmark case with ``steps`` instead of its t_end; ``distributed`` keys fill its
    [distributed] table."""
    raw = read_toml(CASE)
    del raw["time"]["t_end"]
    overrides = {"ensemble.members": members, "time.steps": steps}
    return load_case(raw, overrides | {f"distributed.{key}": value for key, value in distributed.items()})


def in_process(members, steps, out):
    """(end-to-end seconds, summary) of the in-process run into ``out``."""
    start = time.perf_counter()
    summary = Simulation(case(members, steps)).run(out_dir=out, progress=False)
    return time.perf_counter() - start, summary


def distributed(members, steps, workers, threads, out):
    """(end-to-end seconds, summary) of the LocalCluster run into ``out``."""
    start = time.perf_counter()
    summary = run_distributed(case(members, steps, address="local", workers=workers, threads_per_worker=threads),
                              out_dir=out, progress=False)
    return time.perf_counter() - start, summary


def fields(run_dir):
    with netCDF4.Dataset(os.path.join(run_dir, "fields.nc")) as ds:
        return ds["vorticity"][...]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16000)
    parser.add_argument("--members", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="threads per worker")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench_distributed_")
    in_process(args.members, 2, os.path.join(tmp, "warmup"))
    print(f"{args.members} members, {args.steps} steps of 64^2 cn_rk4; in process: {numba.config.NUMBA_NUM_THREADS} "
          f"numba threads; distributed: {args.workers} workers x {args.threads} threads")
    results = []
    for repeat in range(args.repeats):
        a_dir, b_dir = os.path.join(tmp, f"process{repeat}"), os.path.join(tmp, f"dask{repeat}")
        a_total, a = in_process(args.members, args.steps, a_dir)
        b_total, b = distributed(args.members, args.steps, args.workers, args.threads, b_dir)
        identical = bool(np.array_equal(fields(a_dir), fields(b_dir)))
        results.append({"in_process_s": a_total, "in_process_stepping_s": a["wall_seconds"],
                        "in_process_fft_threads": a["fft_threads"], "distributed_s": b_total,
                        "distributed_tasks_s": b["wall_seconds"], "startup_s": b["distributed"]["startup_seconds"],
                        "merge_s": b["distributed"]["merge_seconds"],
                        "chunk_stepping_s": [c["wall_seconds"] for c in b["chunks"]],
                        "chunk_fft_threads": [c["fft_threads"] for c in b["chunks"]],
                        "ratio": b_total / a_total, "ratio_without_merge": (b_total - b["distributed"]["merge_seconds"])
                        / a_total, "bit_identical": identical})
        r = results[-1]
        print(f"run {repeat + 1}: in process {a_total:.1f} s (stepping {a['wall_seconds']:.1f} s, FFT threads "
              f"{a['fft_threads']}); LocalCluster {b_total:.1f} s (start-up {r['startup_s']:.1f} s, tasks + merge "
              f"{b['wall_seconds']:.1f} s, merge {r['merge_s']:.2f} s, chunks stepping "
              f"{', '.join(f'{s:.1f}' for s in r['chunk_stepping_s'])} s, FFT threads {r['chunk_fft_threads']}); "
              f"distributed / in process {r['ratio']:.2f} ({r['ratio_without_merge']:.2f} without the merge); "
              f"fields bit-identical: {identical}")
    for key in ("ratio", "ratio_without_merge"):
        ratios = [r[key] for r in results]
        print(f"wall-time {key.replace('_', ' ')}, distributed / in process: {min(ratios):.2f}-{max(ratios):.2f}")
    write_json({"args": vars(args), "numba_threads": numba.config.NUMBA_NUM_THREADS, "runs": results}, args.json)


if __name__ == "__main__":
    main()
