"""The command line: bad input gets exit code 2 and one line; runs reproduce bit for bit."""
import os
import subprocess
import sys
import tomllib

import netCDF4
import numpy as np
import pytest

from hybridsolver.case import CaseError, read_toml
from hybridsolver.cli import main

GOOD = """
[equation]
name = "navier_stokes2d"
viscosity = 1e-3
drag = 0.1
forcing = { type = "kolmogorov", wavenumber = 4, amplitude = 1.0 }
stochastic_forcing = { amplitude = 0.05, alpha = 0.005 }
[grid]
shape = [32, 32]
[initial_condition]
type = "random_velocity"
[time]
scheme = "cn_rk4"
dt = 1e-3
steps = 20
[ensemble]
members = 8
seed = 7
[output]
fields_every = 10
diagnostics_every = 5
"""


def write(tmp_path, text, name="case.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def edit(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


# (case text or None for GOOD, extra CLI args, substring the message must contain)
BAD = [
    (edit("viscosity = 1e-3", "viscosty = 1e-3"), [], "equation.viscosty"),
    (GOOD + "\n[extras]\na = 1\n", [], "extras"),
    (edit("shape = [32, 32]", 'shape = "32"'), [], "grid.shape"),
    (edit("dt = 1e-3", 'dt = "fast"'), [], "time.dt"),
    (edit("dt = 1e-3", "dt = -1e-3"), [], "time.dt"),
    (edit("dt = 1e-3", "dt = 0.0"), [], "time.dt"),
    (edit('name = "navier_stokes2d"', 'name = "euler3d"'), [], "equation.name"),
    (edit('scheme = "cn_rk4"', 'scheme = "rk45"'), [], "time.scheme"),
    (edit('type = "kolmogorov"', 'type = "tidal"'), [], "equation.forcing.type"),
    (edit("[grid]\nshape = [32, 32]\n", ""), [], "grid"),
    (edit("[time]\n", "[timing]\n"), [], "timing"),
    ("[equation\nname = 1", [], "case.toml"),
    (edit("steps = 20", "steps = 20\nt_end = 1.0"), [], "time.t_end"),
    (edit("steps = 20", ""), [], "time.t_end"),
    (edit("members = 8", "members = 0"), [], "ensemble.members"),
    (edit("shape = [32, 32]", "shape = [32, 32, 32]"), [], "grid.shape"),
    (edit("shape = [32, 32]", "shape = [32, 32]\nlength = [1.0, -1.0]"), [], "grid.length"),
    (edit("shape = [32, 32]", 'shape = [32, 32]\ndealias = "3/2"'), [], "grid.dealias"),
    (edit('type = "random_velocity"', 'type = "vortex_street"'), [], "initial_condition.type"),
    (edit("wavenumber = 4,", "wavenumber = 1.5,"), [], "equation.forcing.wavenumber"),
    (edit("viscosity = 1e-3", "viscosity = -1e-3"), [], "equation.viscosity"),
    (edit("seed = 7", "seed = true"), [], "ensemble.seed"),
    (edit("alpha = 0.005 }", "alpha = 0.005, colour = 2 }"), [], "equation.stochastic_forcing.colour"),
    (edit("shape = [32, 32]", "shape = [2, 32]"), [], "grid.shape[0]"),
    (None, ["--set", "time.dt"], "--set time.dt"),
    (None, ["--set", "time.dt=abc"], "time.dt"),
    (None, ["--members", "-1"], "ensemble.members"),
    (None, ["--bogus"], "--bogus"),
    (None, ["--device", "tpu"], "--device"),
]


@pytest.mark.parametrize("text,args,needle", BAD, ids=[b[2] + f"#{i}" for i, b in enumerate(BAD)])
def test_bad_case_exits_2_with_one_line(tmp_path, capsys, text, args, needle):
    path = write(tmp_path, GOOD if text is None else text)
    code = main(["run", path, "--quiet", "--out", str(tmp_path / "run")] + args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err and "Traceback" not in err
    assert needle in err, err


def ic_file_case(tmp_path, data, name, variable=None):
    if name.endswith(".npy"):
        np.save(tmp_path / name, data)
    elif data is not None:
        with netCDF4.Dataset(tmp_path / name, "w") as ds:
            ds.createDimension("y", data.shape[0])
            ds.createDimension("x", data.shape[1])
            ds.createVariable("vort", "f8", ("y", "x"))[:] = data
    ic = f'type = "file"\npath = "{tmp_path / name}"' + (f'\nvariable = "{variable}"' if variable else "")
    return edit('type = "random_velocity"', ic)


@pytest.mark.parametrize("data,name,variable", [
    (np.zeros((16, 32)), "w.npy", None),              # grid mismatch
    (np.zeros((4, 32, 32)), "w.npy", None),           # no row for member 7
    (np.full((32, 32), np.nan), "w.npy", None),        # NaN
    (None, "missing.npy", None),                       # no file
    (np.zeros((32, 32)), "w.nc", "vorticity"),         # no such variable
])
def test_bad_initial_condition_file_exits_2_naming_the_file(tmp_path, capsys, data, name, variable):
    text = ic_file_case(tmp_path, data, name, variable)
    if data is None:
        os.remove(tmp_path / name) if (tmp_path / name).exists() else None
    code = main(["validate", write(tmp_path, text)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert "initial_condition.path" in err and name in err, err


def test_initial_condition_file_rows_are_members(tmp_path):
    from hybridsolver import Simulation

    fields = np.random.default_rng(0).standard_normal((8, 32, 32))
    path = write(tmp_path, ic_file_case(tmp_path, fields, "w.npy"))
    sim = Simulation.from_case(path, {"ensemble.first_member": 5, "ensemble.members": 3})
    assert np.allclose(sim.fields()["vorticity"], fields[5:8], rtol=0, atol=1e-14)


def test_relative_initial_condition_path_is_read_next_to_the_case(tmp_path, monkeypatch):
    from hybridsolver import Simulation

    field = np.random.default_rng(1).standard_normal((32, 32))
    np.save(tmp_path / "w.npy", field)
    path = write(tmp_path, edit('type = "random_velocity"', 'type = "file"\npath = "w.npy"'))
    monkeypatch.chdir(tmp_path.parent)  # not the case's folder
    sim = Simulation.from_case(path, {"ensemble.members": 1})
    assert np.allclose(sim.fields()["vorticity"][0], field, rtol=0, atol=1e-14)


def test_console_script_reports_bad_toml_without_traceback(tmp_path):
    path = write(tmp_path, "this is not toml")
    proc = subprocess.run([sys.executable, "-m", "hybridsolver.cli", "run", path],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not valid TOML" in lines[0] and path in lines[0]


def read_fields(run_dir):
    with netCDF4.Dataset(os.path.join(run_dir, "fields.nc")) as ds:
        return np.asarray(ds["vorticity"][:]), np.asarray(ds["member"][:])


def test_same_case_and_seed_give_bit_identical_fields(tmp_path):
    path = write(tmp_path, GOOD)
    runs = []
    for name in ("a", "b"):
        proc = subprocess.run([sys.executable, "-m", "hybridsolver.cli", "run", path, "--quiet",
                               "--out", str(tmp_path / name)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        runs.append(read_fields(tmp_path / name)[0])
    assert runs[0].shape == (8, 3, 32, 32)
    assert np.array_equal(runs[0], runs[1])


@pytest.mark.parametrize("scheme", ["cn_rk4", "ab3"])
def test_member_alone_is_bit_identical_to_member_in_ensemble(tmp_path, scheme):
    """With stochastic forcing and random initial conditions on."""
    path = write(tmp_path, GOOD)
    assert main(["run", path, "--quiet", "--set", f"time.scheme={scheme}", "--out", str(tmp_path / "all")]) == 0
    ensemble, members = read_fields(tmp_path / "all")
    assert list(members) == list(range(8))
    for m in (0, 3, 7):
        out = str(tmp_path / f"m{m}")
        assert main(["run", path, "--quiet", "--members", "1", "--set", f"ensemble.first_member={m}",
                     "--set", f"time.scheme={scheme}", "--out", out]) == 0
        alone, ids = read_fields(out)
        assert list(ids) == [m]
        assert np.array_equal(alone[0], ensemble[m])
    assert not np.array_equal(ensemble[0], ensemble[1])


def test_blow_up_exits_1_and_keeps_earlier_outputs(tmp_path, capsys):
    path = write(tmp_path, edit("dt = 1e-3", "dt = 5.0").replace("amplitude = 0.05", "amplitude = 0.0"))
    code = main(["run", path, "--quiet", "--out", str(tmp_path / "run")])
    assert code == 1
    assert "non-finite" in capsys.readouterr().err
    fields, _ = read_fields(tmp_path / "run")
    assert np.all(np.isfinite(fields[:, 0]))


def test_validate_accepts_the_shipped_cases(capsys):
    root = os.path.join(os.path.dirname(__file__), os.pardir, "cases")
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        case = read_toml(path)
        small = "[64]" if case["equation"]["name"] == "kdv" else "[32, 32]"
        small = [] if "plugins" in case else ["--set", f"grid.shape={small}"]  # artifacts fix the grid
        assert main(["validate", path, *small]) == 0, name
    assert capsys.readouterr().out.count(": ok") == len(os.listdir(root))


@pytest.mark.parametrize("override, kept, dropped, table", [
    ({"time.t_end": 0.05}, "t_end", "steps", ("time",)),
    ({"plugins.0.interval": 0.01}, "interval", "every", ("plugins", 0)),
    ({"reference.path": "ref.nc"}, "path", "dir", ("reference",)),
])
def test_an_override_of_one_alternative_replaces_the_other(tmp_path, override, kept, dropped, table):
    from hybridsolver import load_case

    raw = tomllib.loads(GOOD) | {"plugins": [{"path": "smagorinsky", "every": 2}], "reference": {"dir": "../r"}}
    case = load_case(raw, override)
    node = case.data[table[0]] if len(table) == 1 else case.data[table[0]][table[1]]
    assert kept in node and dropped not in node
    with pytest.raises(CaseError, match="time.t_end: give exactly one of time.t_end and time.steps"):
        load_case(raw, {"time.t_end": 0.05, "time.steps": 40})  # both given by the overrides: refused


def test_validate_warns_about_settings_that_cannot_work(tmp_path, capsys):
    path = write(tmp_path, GOOD)
    assert main(["validate", path]) == 0 and "warning" not in capsys.readouterr().err
    assert main(["validate", path, "--set", "time.dt=0.5", "--set", "time.steps=2000000000",
                 "--set", "output.fields_every=1"]) == 0
    err = capsys.readouterr().err
    assert "warning: time.dt: the initial condition's CFL number is" in err
    assert "warning: time.steps: 2e+09 steps (more than 1e+09)" in err
    assert "warning: output.fields_every: the run writes about" in err


def test_set_overrides_reach_the_resolved_case(tmp_path):
    from hybridsolver import load_case

    case = load_case(write(tmp_path, GOOD), {"equation.forcing.amplitude": 2.5, "grid.shape": [16, 16]})
    assert case["equation"]["forcing"]["amplitude"] == 2.5 and case["grid"]["shape"] == [16, 16]
    assert load_case(tomllib.loads(case.to_toml())).data == case.data  # resolved case round-trips
