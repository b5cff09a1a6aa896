"""Runs on a Dask cluster (hybridsolver.distributed): member chunks run as tasks give the
in-process run's run directory, member for member bit-identical (issue #7, acceptance 3)."""
import json
import os
from typing import Dict, List

import dask
import netCDF4
import numba
import numpy as np
import psutil
import pytest
import tomli_w
import torch

from hybridsolver import load_case
from hybridsolver.case import CaseError
from hybridsolver.cli import main
from hybridsolver.distributed import ChunkError, local_cluster, member_chunks, run_distributed
from hybridsolver.plugin import export
from hybridsolver_plugins.classic.export import manifest
from hybridsolver_plugins.classic.registry import backscatter

# threads per worker = this process's: torch's real FFTs (the plugin's) depend on the count
THREADS = numba.config.NUMBA_NUM_THREADS


@pytest.fixture(scope="module")
def scheduler():
    """The address of a LocalCluster of 2 worker processes for the module."""
    with local_cluster(2, THREADS) as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def backscatter32():
    """The stochastic backscatter closure (any grid), for the 32^2 2*pi box."""
    return backscatter


def write_case(tmp_path, case):
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(case))
    return str(path)


def run_both(tmp_path, path, dask_address, *args):
    """Exit codes of the in-process run (first, so that its FFTW wisdom is on disk for the
    workers) and of the distributed run of case file ``path``, into tmp_path/{process,dask}."""
    process = main(["run", path, "--quiet", "--out", str(tmp_path / "process"), *args])
    distributed = main(["run", path, "--quiet", "--out", str(tmp_path / "dask"), "--dask", dask_address, *args])
    return process, distributed


def read_netcdf(path):
    """({variable: array}, {variable or "": attributes}) of a netCDF file; array attributes
    as lists, the global ``history`` (the time and command that wrote the file) left out."""
    with netCDF4.Dataset(path) as ds:
        ds.set_auto_mask(False)
        values = {name: var[...] for name, var in ds.variables.items()}
        attrs = {name: var.__dict__ for name, var in ds.variables.items()} | {"": ds.__dict__}
    attrs = {name: {k: np.asarray(v).tolist() for k, v in a.items()} for name, a in attrs.items()}
    del attrs[""]["history"]
    return values, attrs


def assert_same_run_directory(a, b):
    """Run directories ``a`` (in process) and ``b`` (distributed) hold the same files and,
    in them, bit-identical data; returns both summaries."""
    assert sorted(os.listdir(a)) == sorted(os.listdir(b))
    assert (a / "case.toml").read_text() == (b / "case.toml").read_text()
    for name in ("fields.nc", "diagnostics.nc"):
        (va, aa), (vb, ab) = read_netcdf(a / name), read_netcdf(b / name)
        assert aa == ab and list(va) == list(vb)
        for var in va:
            assert va[var].dtype == vb[var].dtype and np.array_equal(va[var], vb[var], equal_nan=True), (name, var)
    with np.load(a / "checkpoint.npz") as ca, np.load(b / "checkpoint.npz") as cb:
        assert sorted(ca.files) == sorted(cb.files)
        for key in ca.files:
            assert np.array_equal(ca[key], cb[key]), key
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert set(sb) == set(sa) | {"chunks", "distributed"}
    assert sb["member_status"] == sa["member_status"] and sb["status"] == sa["status"]
    assert sb["members"] == sa["members"] and sb["final_step"] == sa["final_step"]
    return sa, sb


def test_member_chunks():
    assert member_chunks(0, 8, 2) == [(0, 4), (4, 4)]
    assert member_chunks(3, 5, 2) == [(3, 3), (6, 2)]
    assert member_chunks(0, 1, 4) == [(0, 1)]
    assert member_chunks(5, 3, 2, chunk_members=2) == [(5, 2), (7, 1)]


def test_members_are_bit_identical_to_the_in_process_run(tmp_path, case, scheduler, backscatter32):
    """Q-Wiener forcing, the stochastic backscatter closure held between calls, AB3 history."""
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5, "alpha": 0.01}
    case["ensemble"]["members"] = 4
    case["time"] |= {"scheme": "ab3", "steps": 12}
    case["plugins"] = [{"path": backscatter32, "every": 5}]
    assert run_both(tmp_path, write_case(tmp_path, case), scheduler) == (0, 0)
    sa, sb = assert_same_run_directory(tmp_path / "process", tmp_path / "dask")
    assert sb["status"] == "ok" and [c["members"] for c in sb["chunks"]] == [[0, 1], [2, 3]]
    assert len({c["worker"] for c in sb["chunks"]}) == 2
    # each chunk calls the closure for its members: twice the in-process calls
    assert sb["plugins"]["backscatter"]["calls"] == 2 * sa["plugins"]["backscatter"]["calls"] == 6
    with netCDF4.Dataset(tmp_path / "dask" / "fields.nc") as ds:
        w = ds["vorticity"][:, -1]
    assert not np.array_equal(w[0], w[1])  # the members do differ


def test_unequal_chunks_quarantine_and_a_relative_initial_condition_file(tmp_path, case, scheduler, monkeypatch):
    """Members 5..7 in chunks of 2 and 1 from rows of an .npy file named relative to the
    case's folder (the client works elsewhere); member 6 blows up and is quarantined."""
    rows = np.random.default_rng(3).standard_normal((8, 32, 32))
    rows[6] *= 1e7
    np.save(tmp_path / "w.npy", rows)
    case["initial_condition"] = {"type": "file", "path": "w.npy"}
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5}
    case["ensemble"] |= {"first_member": 5, "members": 3}
    case["distributed"] = {"chunk_members": 2}
    path = write_case(tmp_path, case)
    monkeypatch.chdir(tmp_path.parent)
    assert run_both(tmp_path, path, scheduler) == (0, 0)
    sa, sb = assert_same_run_directory(tmp_path / "process", tmp_path / "dask")
    assert sb["status"] == "quarantined" and sb["quarantined"] == [6]
    assert [c["members"] for c in sb["chunks"]] == [[5, 6], [7, 7]]


def test_a_chunk_that_aborts_keeps_the_records_all_chunks_wrote(tmp_path, case, scheduler):
    """Member 1 blows up with monitor.on_failure = "abort": in process both members stop at
    that step; on the cluster member 0's chunk runs on, and the merged files end where
    member 1's chunk stopped, equal to the in-process files."""
    rows = np.random.default_rng(4).standard_normal((2, 32, 32))
    rows[1] *= 1e7
    np.save(tmp_path / "w.npy", rows)
    case["initial_condition"] = {"type": "file", "path": str(tmp_path / "w.npy")}
    case["ensemble"]["members"] = 2
    case["monitor"] = {"on_failure": "abort"}
    case["distributed"] = {"chunk_members": 1}
    assert run_both(tmp_path, write_case(tmp_path, case), scheduler) == (1, 1)
    a, b = tmp_path / "process", tmp_path / "dask"
    assert sorted(os.listdir(b)) == sorted(os.listdir(a) + ["parts"])
    for name in ("fields.nc", "diagnostics.nc"):
        (va, _), (vb, _) = read_netcdf(a / name), read_netcdf(b / name)
        assert all(np.array_equal(va[var], vb[var], equal_nan=True) for var in va), name
    sa, sb = (json.loads((d / "summary.json").read_text()) for d in (a, b))
    assert sb["status"] == sa["status"] == "failed" and sb["member_status"]["1"] == sa["member_status"]["1"]
    assert sb["member_status"]["0"] == "ok" and sb["distributed"]["parts_dir"] == str(b / "parts")


def test_a_chunk_that_raises_is_named_and_its_parts_kept(tmp_path, case, scheduler, capsys):
    np.save(tmp_path / "w.npy", np.zeros((2, 32, 32)))  # no row for member 2
    case["initial_condition"] = {"type": "file", "path": str(tmp_path / "w.npy")}
    case["ensemble"]["members"] = 3
    case["distributed"] = {"chunk_members": 2}
    code = main(["run", write_case(tmp_path, case), "--quiet", "--out", str(tmp_path / "run"),
                 "--dask", scheduler])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "chunk 1 (members 2..2)" in err and "w.npy" in err and str(tmp_path / "run" / "parts") in err
    assert os.listdir(tmp_path / "run" / "parts") == ["chunk_000"]


def test_a_chunk_whose_folder_cannot_be_made_raises_case_error_naming_it(tmp_path, case, scheduler):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "parts").write_text("")  # a file where the chunks make their folders
    case["ensemble"]["members"] = 4
    with pytest.raises(CaseError, match=r"chunk 0 \(members 0\.\.1\) failed \(and 1 more\): .*parts/chunk_000: "
                                        r"cannot create or write the run directory"):
        run_distributed(load_case(case, {"distributed.address": scheduler}), out_dir=str(tmp_path / "run"),
                        progress=False)


class FailsAfterStart(torch.nn.Module):
    """A closure whose calls after the dry run raise (a plugin that crashes mid-run)."""

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        if options["time"] > 0.0:
            raise RuntimeError("the plugin crashed")
        return torch.zeros_like(x)


def test_a_chunk_that_crashes_raises_chunk_error(tmp_path, case, scheduler):
    path = str(tmp_path / "crash.pt")
    export(FailsAfterStart(), manifest("smagorinsky") | {"name": "crash"}, path)
    case["ensemble"]["members"] = 4
    case["plugins"] = [{"path": path, "every": 1}]
    with pytest.raises(ChunkError, match=r"(?s)chunk 0 \(members 0\.\.1\) failed \(and 1 more\): .*the plugin crashed"):
        run_distributed(load_case(case, {"distributed.address": scheduler}), out_dir=str(tmp_path / "run"),
                        progress=False)


def test_an_unreachable_scheduler_exits_2_naming_it(tmp_path, case, capsys):
    path = write_case(tmp_path, case)
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        code = main(["run", path, "--quiet", "--out", str(tmp_path / "run"), "--dask", "tcp://127.0.0.1:1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "tcp://127.0.0.1:1" in err and "distributed.address" in err
    assert not os.path.exists(tmp_path / "run")


def test_local_starts_a_cluster_and_closes_it(tmp_path, case):
    """distributed.workers = 2 of threads_per_worker = 1 (the host alone on 32^2 does not
    depend on the thread count); this process's environment is left as it was."""
    case["ensemble"]["members"] = 2
    case["equation"]["stochastic_forcing"] = {"amplitude": 0.5}
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    environ = dict(os.environ)
    assert run_both(tmp_path, write_case(tmp_path, case), "local") == (0, 0)
    _, sb = assert_same_run_directory(tmp_path / "process", tmp_path / "dask")
    assert sb["distributed"]["address"] == "local" and sb["distributed"]["workers"] == 2
    assert len({c["worker"] for c in sb["chunks"]}) == 2
    left = [p for p in psutil.Process().children(recursive=True)  # multiprocessing's tracker may stay
            if p.pid not in before and "resource_tracker" not in " ".join(p.cmdline())]
    assert left == [] and dict(os.environ) == environ
