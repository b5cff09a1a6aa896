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
    small = [f"--set={k}={v}" for k, v in SMALL.items()
             if k != "output.fields_every" or "fields_every" not in str(args)]
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


CYLINDER_CASE = os.path.join(os.path.dirname(__file__), os.pardir, "cases", "cylinder_re160.toml")
# the Re 160 channel on a coarse grid for 30 steps, snapshots every 3 steps (11), split at t = 0.02 and 0.04
WAKE = {"grid.shape": [32, 288], "time.dt": 0.002, "time.t_end": 0.06, "output.fields_every": 3,
        "dataset.split_times": [0.02, 0.04], "dataset.window_shape": [8, 32], "dataset.window_spacing": [0.125, 0.125],
        "dataset.window_start": [-0.4375, -0.4375]}


def read_wake(path):
    with netCDF4.Dataset(path) as ds:
        return {name: np.asarray(ds[name][:]) for name in ("member", "time", "x", "y", "u", "v", "u_noise")}


def test_a_time_split_holds_consecutive_times_of_the_same_trajectories_on_the_window(tmp_path):
    paths = generate(CYLINDER_CASE, str(tmp_path / "a"), WAKE | {"dataset.trajectories": 2}, progress=False)
    train, validation, test = (read_wake(p) for p in paths)
    assert np.allclose(train["time"], [0.0, 0.006, 0.012, 0.018])  # t <= 0.02
    assert np.allclose(validation["time"], [0.024, 0.03, 0.036])  # (0.02, 0.04]
    assert np.allclose(test["time"], [0.042, 0.048, 0.054, 0.06])  # the rest
    for split in (train, validation, test):
        assert list(split["member"]) == [0, 1] and split["u"].shape[2:] == (8, 32)
        assert np.allclose(split["x"], -0.4375 + 0.125 * np.arange(32)) and np.allclose(split["y"][[0, -1]],
                                                                                         [-0.4375, 0.4375])
    assert np.allclose(train["u"][:, 0], 1.0, atol=1e-3)  # U everywhere at t = 0 (the Gerris example's start)
    assert not np.array_equal(test["u"][0], test["u"][1])  # perturbed starts: two trajectories
    # bit-identical for the same seed; trajectory 0 does not depend on how many there are
    again = [read_wake(p) for p in generate(CYLINDER_CASE, str(tmp_path / "b"), WAKE, progress=False)]
    for one, two in zip(again, (train, validation, test)):
        assert np.array_equal(one["u"][0], two["u"][0]) and np.array_equal(one["u_noise"][0], two["u_noise"][0])


def test_the_window_samples_the_grid_s_own_velocity_exactly(tmp_path):
    """A window on every other grid point reads the velocity of the same run's fields.nc."""
    from hybridsolver import Simulation

    case = {k: v for k, v in WAKE.items() if not k.startswith("dataset.")} | {"time.t_end": 0.006}
    sim = Simulation.from_case(CYLINDER_CASE, case)
    sim.advance(3)
    g = sim.grid
    window = {"dataset.window_shape": [16, 144], "dataset.window_start": [g.y[1], g.x[1]],
              "dataset.window_spacing": [2 * g.dy, 2 * g.dx], "dataset.split_times": [0.002, 0.004]}
    test = read_wake(generate(CYLINDER_CASE, str(tmp_path / "w"), case | window, progress=False)[2])
    u, v = sim.equation.velocity(sim.state)
    assert np.abs(test["u"][0, -1] - u[0, 1::2, 1::2]).max() < 1e-6  # float32 files
    assert np.abs(test["v"][0, -1] - v[0, 1::2, 1::2]).max() < 1e-6


@pytest.mark.parametrize("sets,key", [
    ({"dataset.split_times": [0.05, 0.01]}, "dataset.split_times"),
    ({"dataset.split_times": [0.02, 0.2]}, "dataset.split_times"),
    ({"output.fields": ["u", "pressure"]}, "output.fields"),
])
def test_bad_time_splits_and_windows_exit_2_naming_the_key(tmp_path, capsys, sets, key):
    code = main(["generate", CYLINDER_CASE, "--out", str(tmp_path / "x"), "--quiet",
                 *[f"--set={k}={v}" for k, v in (WAKE | sets).items()]])
    assert code == 2
    assert key in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "train.nc")


@pytest.mark.parametrize("window,key", [
    ({"dataset.window_shape": [1, 10]}, "dataset.window_start"),  # a window needs all three keys
    ({"dataset.window_shape": [1, 10], "dataset.window_start": [0.0, 0.0], "dataset.window_spacing": [1.0, 1.0]},
     "dataset.window_shape"),  # and a doubly periodic spectral grid, not kdv's
])
def test_a_window_needs_its_three_keys_and_a_doubly_periodic_spectral_grid(tmp_path, capsys, window, key):
    code = main(["generate", CASE, "--out", str(tmp_path / "x"), "--quiet",
                 *[f"--set={k}={v}" for k, v in (SMALL | window).items()]])
    assert code == 2 and key in capsys.readouterr().err
