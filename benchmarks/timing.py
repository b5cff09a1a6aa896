"""Timing helpers shared by the benchmarks (run as scripts from this folder's parent)."""
import json
import time


def seconds(fn, calls):
    """Mean wall seconds of ``calls`` calls of ``fn()``."""
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def write_json(results, path):
    """Write a benchmark's results dict to ``path`` (no-op for None)."""
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
