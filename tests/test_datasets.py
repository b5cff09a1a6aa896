"""hybridsolver generate: split files, bit-identical reproduction, member independence,
observation noise, resuming, and errors for bad input."""
import os

import netCDF4
import numpy as np
import pytest

from hybridsolver.cli import main
from hybridsolver.datasets import SPLIT_OFFSETS, generate

CASE = os.path.join(os.path.dirname(__file__), os.pardir, "cases", "kdv.toml")
SMALL = {"grid.shape": [200], "time.dt": 1e-3, "time.t_end": 0.02, "output.fields_every": 2}  # 11 snapshots


def read(path):
    with netCDF4.Dataset(path) as ds:
        return {name: np.asarray(ds[name][:]) for name in ("member", "time", "u", "u_noise")} | {
            "complete": int(ds.complete)}


def make(out, train=3, validation=1, test=1, batch=64, **kwargs):
    counts = {"train": train, "validation": validation, "test": test}
    return generate(CASE, str(out), dict(SMALL), counts, batch, progress=False, **kwargs)


def test_splits_hold_the_snapshots_clean_fields_and_noise(tmp_path):
    paths = make(tmp_path / "a")
    assert [os.path.basename(p) for p in paths] == ["train.nc", "validation.nc", "test.nc"]
    train, test = read(paths[0]), read(paths[2])
    assert train["u"].shape == (3, 11, 200) and train["u_noise"].shape == (3, 11, 200)
    assert np.allclose(train["time"], np.arange(11) * 2e-3)
    assert list(train["member"]) == [0, 1, 2] and list(test["member"]) == [SPLIT_OFFSETS["test"]]
    assert abs(train["u_noise"].std() - 0.01) < 0.0005  # the case's observation_noise
    assert not np.array_equal(train["u"][:, 0], train["u"][:, -1])  # the field moved
    assert abs(train["u"][:, 0].max() - 2.0) < 0.5  # the paper's start, a ~ N(2, 0.01)


def test_same_seed_is_bit_identical_and_members_do_not_depend_on_the_split_size(tmp_path):
    a = read(make(tmp_path / "a")[0])
    b = read(make(tmp_path / "b")[0])
    assert all(np.array_equal(a[k], b[k]) for k in ("u", "u_noise"))
    c = read(make(tmp_path / "c", train=5, batch=2)[0])  # more trajectories, other batches
    assert np.array_equal(c["u"][:3], a["u"]) and np.array_equal(c["u_noise"][:3], a["u_noise"])
    d = read(make(tmp_path / "d", train=1)[1])  # validation does not move with the train size
    assert np.array_equal(d["u"], read(os.path.join(tmp_path / "a", "validation.nc"))["u"])
    other = read(generate(CASE, str(tmp_path / "e"), dict(SMALL, **{"ensemble.seed": 1}),
                          {"train": 3, "validation": 0, "test": 0}, progress=False)[0])
    assert not np.array_equal(other["u"], a["u"])


def test_an_interrupted_run_resumes_to_the_same_files(tmp_path):
    whole = read(make(tmp_path / "whole", batch=1)[0])
    out = tmp_path / "cut"
    path = make(out, batch=1)[0]
    with netCDF4.Dataset(path, "a") as ds:  # as if killed during the second trajectory
        ds.complete = 1
        ds["u"][1:] = np.nan
    make(out, batch=1)
    assert all(np.array_equal(read(path)[k], whole[k]) for k in ("u", "u_noise", "member"))
    assert read(path)["complete"] == 3


def test_other_arguments_for_an_existing_folder_are_refused(tmp_path, capsys):
    make(tmp_path / "a")
    code = main(["generate", CASE, "--out", str(tmp_path / "a"), "--quiet", "--train", "4",
                 *[f"--set={k}={v}" for k, v in SMALL.items()]])
    assert code == 2
    err = capsys.readouterr().err
    assert "meta.json" in err and "case" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("args,key", [
    (["--set", "output.fields_every=0"], "output.fields_every"),
    (["--set", "output.fields_every=3"], "output.fields_every"),
    (["--set", "dataset.observation_noise=-1"], "dataset.observation_noise"),
    (["--set", "time.scheme=etdrk4"], "time.scheme"),
    (["--batch", "0"], "--batch"),
])
def test_bad_input_exits_2_naming_the_key(tmp_path, capsys, args, key):
    small = [f"--set={k}={v}" for k, v in SMALL.items() if k != "output.fields_every" or "fields_every" not in str(args)]
    code = main(["generate", CASE, "--out", str(tmp_path / "x"), "--quiet", *small, *args])
    assert code == 2
    assert key in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "train.nc")


def test_the_command_line_writes_the_splits(tmp_path, capsys):
    code = main(["generate", CASE, "--out", str(tmp_path / "cli"), "--quiet", "--train", "2", "--validation", "0",
                 "--test", "0", "--dtype", "float64", *[f"--set={k}={v}" for k, v in SMALL.items()]])
    assert code == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "cli" / f"{s}.nc") for s in ("train", "validation",
                                                                                            "test")]
    with netCDF4.Dataset(tmp_path / "cli" / "train.nc") as ds:
        assert ds["u"].dtype == np.float64 and ds["u"].shape == (2, 11, 200)
