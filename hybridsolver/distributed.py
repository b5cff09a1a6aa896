"""Scale-out: an ensemble split into member chunks, run as tasks on a Dask cluster.

``[distributed] address`` (or ``hybridsolver run CASE --dask ADDRESS``) is ``"local"``,
which starts a ``LocalCluster`` of ``workers`` processes, each running one chunk at a
time with ``threads_per_worker`` threads (numba's kernels, FFTW plans and torch), and
closes it at the end, or the address of a running scheduler (``tcp://host:8786``).  The members
``first_member .. first_member+members-1`` are cut into contiguous chunks of
``chunk_members`` (default: split evenly over the workers); each chunk is one task that
runs the same case with its ``ensemble.first_member`` and ``ensemble.members`` into
``RUN_DIR/parts/chunk_NNN``.  Random streams are keyed by (seed, member, name) and the
step, so every member's trajectory is bit-identical to the in-process run's given the same
FFTW wisdom (``HYBRIDSOLVER_FFTW_WISDOM``, inherited by LocalCluster workers) and the
same thread count where results depend on it: the FFTW plans of grids of 256² points or
more, and plugins (torch's CPU real FFTs give other bits with other thread counts), so
``threads_per_worker`` must equal the in-process thread count (the CPUs) for a run with
plugins to match it bit for bit; the host alone on smaller grids matches with any.

The client then writes what an in-process run writes: ``case.toml`` (the whole
ensemble's resolved case, without ``distributed.address``), ``fields.nc`` and
``diagnostics.nc`` (the parts concatenated along ``member`` by
:func:`hybridsolver.output.rewrite_records`), ``checkpoint.npz``
(:func:`merge_checkpoints`) and ``summary.json`` (:func:`merge_summaries`), and removes
the parts.  Workers must see the run directory (a LocalCluster always does;
a remote cluster through a shared file system).
"""
import asyncio
import contextlib
import copy
import os
import shutil
import time

import netCDF4
import numpy as np
from dask.distributed import Client, LocalCluster, as_completed, get_worker
from distributed.comm import connect
from tqdm import tqdm

from .case import Case, CaseError
from .output import rewrite_records, save_npz_atomic, write_atomic, write_summary
from .rundir import CHECKPOINT, RunLock
from .simulation import Simulation

NETCDF_FILES = ("fields.nc", "diagnostics.nc")
TASK_KEYS = ("worker", "task_seconds")  # added by run_chunk
CHUNK_KEYS = ("status", "final_step", "wall_seconds", "ms_per_step", "ms_per_member_step", "fft_threads", "plugins")


class ChunkError(RuntimeError):
    """A chunk task raised; the message names the chunk, its members and the kept parts."""


def member_chunks(first, members, workers, chunk_members=None):
    """Contiguous chunks of members ``first .. first+members-1``: a list of (first member,
    count), ``chunk_members`` each (the last one smaller), or by default ``min(workers,
    members)`` chunks whose sizes differ by at most one."""
    if chunk_members is None:
        n = min(workers, members)
        sizes = [members // n + (i < members % n) for i in range(n)]
    else:
        sizes = [min(chunk_members, members - start) for start in range(0, members, chunk_members)]
    starts = [first + sum(sizes[:i]) for i in range(len(sizes))]
    return list(zip(starts, sizes))


def run_chunk(data, case_path, part_dir):
    """The task of one chunk: run the resolved case ``data`` (its ``ensemble`` set to the
    chunk's members) into ``part_dir`` without a progress bar; returns its summary (as
    :meth:`hybridsolver.Simulation.run`) plus ``worker`` (address) and ``task_seconds``
    (building the simulation included)."""
    start = time.perf_counter()
    summary = Simulation(Case(data, case_path)).run(out_dir=part_dir, progress=False)
    return summary | {"worker": get_worker().address, "task_seconds": time.perf_counter() - start}


def _absolute_paths(data):
    """``data`` with the relative file paths that exist from this working directory
    (``initial_condition.path``, ``plugins.N.path``) made absolute, for workers started in
    another folder; registered plugin names and paths relative to the case's folder (which
    the workers resolve through the absolute case path) stay as given."""
    def absolute(path):
        return os.path.abspath(path) if os.path.isfile(path) else path

    data = copy.deepcopy(data)
    if "path" in data["initial_condition"]:
        data["initial_condition"]["path"] = absolute(data["initial_condition"]["path"])
    for entry in data["plugins"]:
        entry["path"] = absolute(entry["path"])
    return data


def _chunk_data(data, first, count):
    """The resolved case of one chunk: ``data`` with members ``first .. first+count-1``."""
    data = copy.deepcopy(data)
    data["ensemble"] |= {"first_member": first, "members": count}
    return data


def _probe(address):
    """Raise :class:`CaseError` naming ``address`` unless a Dask scheduler answers there
    within dask's ``distributed.comm.timeouts.connect``."""
    async def handshake():
        comm = await connect(address)
        await comm.close()

    try:
        asyncio.run(handshake())
    except Exception as exc:  # refused, timed out, malformed address, not a Dask scheduler
        raise CaseError(f"distributed.address: cannot reach a Dask scheduler at {address} ({exc})") from None


@contextlib.contextmanager
def _spawn_environ(env):
    """This process's environment with ``env`` added while the block spawns worker processes
    (which inherit it), restored afterwards: dask's Nanny also writes its
    ``pre-spawn-environ`` (OMP_NUM_THREADS=1, ...) into it, and reads those keys from it."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        for key in set(os.environ) - set(saved):
            del os.environ[key]
        os.environ.update(saved)


def local_cluster(workers, threads):
    """A LocalCluster of ``workers`` processes that run one chunk at a time, each computing
    with ``threads`` threads: numba's kernels and FFTW plans (NUMBA_NUM_THREADS) and
    torch/MKL (OMP_NUM_THREADS, MKL_NUM_THREADS).  They are in the environment the
    processes start with, because a worker imports the client's main module (often numba
    with it) before dask's ``env`` option would reach it."""
    env = {name: str(threads) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with _spawn_environ(env):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")


@contextlib.contextmanager
def cluster_client(settings):
    """A dask ``Client`` for the ``[distributed]`` settings: ``address = "local"`` starts
    :func:`local_cluster` (``workers``, ``threads_per_worker``) and closes it on exit; any
    other address is a running scheduler's."""
    if settings["address"] != "local":
        _probe(settings["address"])
        with Client(settings["address"]) as client:
            yield client
        return
    with local_cluster(settings["workers"], settings["threads_per_worker"]) as cluster, Client(cluster) as client:
        yield client


def _run_chunks(client, data, case_path, chunks, parts_dir, progress):
    """Submit one :func:`run_chunk` task per chunk and wait for all; returns their summaries
    in chunk order.  A task that raised raises :class:`CaseError` (bad input) or
    :class:`ChunkError` naming the first failed chunk and its members."""
    futures = {client.submit(run_chunk, _chunk_data(data, first, count), case_path,
                             os.path.join(parts_dir, f"chunk_{i:03d}"), pure=False): i
               for i, (first, count) in enumerate(chunks)}
    summaries, errors = {}, {}
    with tqdm(total=len(chunks), unit="chunk", disable=not progress, dynamic_ncols=True) as bar:
        for future in as_completed(futures):
            i = futures[future]
            if future.status == "error":
                errors[i] = future.exception()
            else:
                summaries[i] = future.result()
            bar.update()
    if errors:
        i = min(errors)
        first, count = chunks[i]
        message = (f"chunk {i} (members {first}..{first + count - 1}) failed"
                   f"{f' (and {len(errors) - 1} more)' if len(errors) > 1 else ''}: {errors[i]}; "
                   f"the chunks' outputs are kept in {parts_dir}")
        if isinstance(errors[i], CaseError):
            raise CaseError(message) from None
        raise ChunkError(message) from errors[i]
    return [summaries[i] for i in range(len(chunks))]


def _common_last_step(paths):
    """The last ``step`` recorded in every one of the netCDF files ``paths``."""
    steps = []
    for path in paths:
        with netCDF4.Dataset(path) as ds:
            steps.append(set(ds["step"][:].tolist()))
    return max(set.intersection(*steps))


def merge_checkpoints(paths, dst):
    """Write to ``dst`` the whole ensemble's checkpoint from the chunks' checkpoints
    ``paths`` (member order; :meth:`hybridsolver.Simulation.save_checkpoint`), atomically:
    arrays whose trailing axes are one member's state (``state`` (M, ...), ``held/*``,
    ``stepper/history`` (3, M, ...)) are joined along the axis before those, plugin state
    (``plugin/NAME/state/*``, (M, ...)) and ``resident/chain`` along their first, per-member
    vectors (``quarantined``, ``member_status`` (M,)) along theirs, and scalars (``step``,
    ``stepper/history_length``) must agree (ValueError otherwise)."""
    checkpoints = []
    for path in paths:
        with np.load(path) as ck:
            checkpoints.append({name: ck[name] for name in ck.files})
    state_dims = checkpoints[0]["state"].ndim
    arrays = {}
    for name, first in checkpoints[0].items():
        values = [ck[name] for ck in checkpoints]
        if first.ndim == 0:
            if any(v != first for v in values):
                raise ValueError(f"{dst}: the chunks' checkpoints differ in {name}: {[v.item() for v in values]}")
            arrays[name] = first
        else:  # plugin state (plugin/NAME/state/*) and resident/chain are (members, *shape of their own)
            axis = 0 if name.startswith(("plugin/", "resident/")) else max(first.ndim - state_dims, 0)
            arrays[name] = np.concatenate(values, axis=axis)
    save_npz_atomic(dst, arrays)


def merge_parts(part_dirs, run_dir, case_toml, complete):
    """Write ``run_dir/fields.nc``, ``diagnostics.nc`` and ``checkpoint.npz`` from the
    chunks' run directories ``part_dirs`` (in member order), the netCDF files with the
    global ``case`` attribute ``case_toml`` (the whole ensemble's).  ``complete``: every
    chunk ended at the same step.  Otherwise (a chunk stopped early) the netCDF files keep
    the records up to the last step that all parts recorded, and no checkpoint is merged."""
    for name in NETCDF_FILES:
        paths = [os.path.join(part, name) for part in part_dirs]
        if not complete:
            last = _common_last_step(paths)
            for path in paths:
                rewrite_records([path], path, last_step=last)
        with netCDF4.Dataset(paths[0], "a") as ds:
            ds.case = case_toml
        rewrite_records(paths, os.path.join(run_dir, name))
    checkpoints = [os.path.join(part, CHECKPOINT) for part in part_dirs]
    if complete and all(os.path.isfile(path) for path in checkpoints):
        merge_checkpoints(checkpoints, os.path.join(run_dir, CHECKPOINT))


def _common(values):
    """``values[0]`` if all values are equal, else the list of them."""
    return values[0] if all(v == values[0] for v in values) else values


def _sum_plugins(summaries):
    """Per plugin: calls, ms and bytes summed over the chunks (each chunk calls the plugin
    for its own members), ``mean_ms`` per call, ``share`` of the chunks' summed wall time."""
    chunk_seconds = sum(s["wall_seconds"] for s in summaries)
    out = {}
    for name in summaries[0]["plugins"]:
        reports = [s["plugins"][name] for s in summaries]
        calls = sum(r["calls"] for r in reports)
        total_ms = sum(r["total_ms"] for r in reports)
        out[name] = {"calls": calls, "total_ms": total_ms, "mean_ms": total_ms / calls if calls else None,
                     "share": total_ms / (1e3 * chunk_seconds) if chunk_seconds else None,
                     "bytes_to_device": sum(r["bytes_to_device"] for r in reports),
                     "bytes_from_device": sum(r["bytes_from_device"] for r in reports),
                     "host_round_trips": sum(r["host_round_trips"] for r in reports)}
    return out


def _merged_status(summaries):
    """``failed`` if any chunk failed, else ``quarantined`` if any chunk has quarantined
    members, else ``ok``."""
    statuses = {s["status"] for s in summaries}
    return next((status for status in ("failed", "quarantined") if status in statuses), "ok")


def merge_summaries(summaries, chunks, case, run_dir, wall_seconds):
    """The summary of the whole run from the chunks' ``summaries`` (chunk order), with the
    keys of an in-process run: ``members``, ``member_status`` and ``quarantined`` joined in
    member order, ``status`` by :func:`_merged_status`, ``final_step``/``final_time`` of the
    chunk that stopped first, ``wall_seconds`` of the distributed run (tasks submitted to
    parts merged; the cluster's start-up left out), ``ms_per_step`` that wall time per step
    (``ms_per_member_step`` per member-step), ``plugins`` summed over chunks
    (:func:`_sum_plugins`), ``transfers`` summed over chunks (bytes, host round trips,
    resident segments and the steps each chunk took in them); other keys keep the chunks'
    common value, or the list of their
    values where they differ.  ``chunks`` holds each chunk's members (first, last), worker,
    task seconds and :data:`CHUNK_KEYS`."""
    merged = {key: _common([s[key] for s in summaries]) for key in summaries[0] if key not in TASK_KEYS}
    stopped = min(summaries, key=lambda s: s["final_step"])
    members = [m for s in summaries for m in s["members"]]
    steps = stopped["final_step"]
    ms = 1e3 * wall_seconds / steps if steps else None
    merged.update({
        "case": case.path, "run_dir": run_dir, "members": members, "status": _merged_status(summaries),
        "member_status": {m: status for s in summaries for m, status in s["member_status"].items()},
        "quarantined": [m for s in summaries for m in s["quarantined"]],
        "final_step": stopped["final_step"], "final_time": stopped["final_time"], "wall_seconds": wall_seconds,
        "ms_per_step": ms, "ms_per_member_step": ms / len(members) if steps else None,
        "plugins": _sum_plugins(summaries),
        "transfers": {key: sum(s["transfers"][key] for s in summaries) for key in summaries[0]["transfers"]},
        "chunks": [{"chunk": i, "members": [first, first + count - 1]} | {k: s[k] for k in TASK_KEYS + CHUNK_KEYS}
                   for i, ((first, count), s) in enumerate(zip(chunks, summaries))],
    })
    return merged


def run_distributed(case, out_dir=None, progress=True):
    """Run ``case`` (a :class:`hybridsolver.case.Case` whose ``distributed.address`` is set)
    as member chunks on a Dask cluster and write its run directory (``out_dir``, default
    ``output.dir`` or ``runs/CASE`` as in-process); returns the summary dict (written to
    ``summary.json``), which adds ``chunks`` and ``distributed`` (address, workers,
    cluster start-up and merge seconds, parts folder if kept) to an in-process run's keys.

    A chunk that stops before the end (``monitor.on_failure = "abort"``, or all its members
    quarantined) makes the status "failed": the merged files then hold the records that
    all chunks wrote, no checkpoint is merged and the parts folder is kept.  A chunk task
    that raised raises :class:`ChunkError` (:class:`CaseError` for bad input), the parts
    kept.  The run directory is locked meanwhile (:class:`hybridsolver.rundir.RunLock`)."""
    settings = case.data["distributed"]
    run_dir = case.run_dir(out_dir)
    parts_dir = os.path.join(os.path.abspath(run_dir), "parts")
    whole = copy.deepcopy(case.data)
    whole["distributed"].pop("address")
    whole_case = Case(whole, case.path)
    case_path = os.path.abspath(case.path) if case.path else None
    ens = whole["ensemble"]
    start = time.perf_counter()
    with cluster_client(settings) as client, RunLock(run_dir):
        workers = len(client.nthreads())
        chunks = member_chunks(ens["first_member"], ens["members"], max(1, workers), settings.get("chunk_members"))
        write_atomic(os.path.join(run_dir, "case.toml"), whole_case.to_toml())
        shutil.rmtree(parts_dir, ignore_errors=True)
        submitted = time.perf_counter()
        summaries = _run_chunks(client, _absolute_paths(whole), case_path, chunks, parts_dir, progress)
        merging = time.perf_counter()
        complete = len({s["final_step"] for s in summaries}) == 1
        merge_parts([s["run_dir"] for s in summaries], run_dir, whole_case.to_toml(), complete)
        if complete:
            shutil.rmtree(parts_dir)
        end = time.perf_counter()
        summary = merge_summaries(summaries, chunks, whole_case, run_dir, end - submitted)
        summary["distributed"] = {"address": settings["address"], "workers": workers,
                                  "startup_seconds": submitted - start, "merge_seconds": end - merging,
                                  "parts_dir": None if complete else parts_dir}
        write_summary(run_dir, summary)
    return summary
