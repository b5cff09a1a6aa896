"""CF-convention metadata of the files hybridsolver writes (hybridsolver.cf), checked with
the IOOS compliance checker (CF-1.10), xarray and cf-xarray."""
import json
import os

import numpy as np
import pytest

from hybridsolver import cf
from hybridsolver.datasets import generate
from hybridsolver.report import report
from hybridsolver.simulation import Simulation

CASES = os.path.join(os.path.dirname(__file__), os.pardir, "cases")
SHORT = {"time.steps": 20, "output.fields_every": 10, "output.diagnostics_every": 5}


def cf_errors(path, tmp_path):
    """The compliance checker's failed high-priority CF-1.10 checks of ``path``: [(section, message)]."""
    from compliance_checker.runner import CheckSuite, ComplianceChecker

    CheckSuite.load_all_available_checkers()
    report_path = tmp_path / f"{os.path.basename(path)}.json"
    ComplianceChecker.run_checker(str(path), ["cf:1.10"], 0, "normal", output_filename=str(report_path),
                                  output_format="json")
    with open(report_path) as f:
        checks = json.load(f)["cf:1.10"]["high_priorities"]
    return [(c["name"], m) for c in checks if c["value"][0] < c["value"][1] for m in c["msgs"]]


def run(case, out, overrides=SHORT):
    Simulation.from_case(os.path.join(CASES, case), overrides).run(str(out), progress=False)
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("cf")
    kolmogorov = run("kolmogorov64.toml", base / "kolmogorov")
    reference = run("kolmogorov64.toml", base / "reference", SHORT | {"ensemble.seed": 7})
    report(str(kolmogorov), reference=str(reference))
    qg = run("qg_eddy.toml", base / "qg")
    split = generate(os.path.join(CASES, "kdv.toml"), str(base / "kdv"), {"grid.shape": [200], "time.dt": 1e-3,
                     "time.t_end": 0.01, "output.fields_every": 5}, {"train": 2, "validation": 0, "test": 0},
                     progress=False)[0]
    return {"kolmogorov": kolmogorov, "qg": qg, "split": split}


@pytest.mark.parametrize("name, file", [("kolmogorov", "fields.nc"), ("kolmogorov", "diagnostics.nc"),
                                        ("kolmogorov", "scores.nc"), ("qg", "fields.nc"), ("qg", "diagnostics.nc"),
                                        ("split", "")])
def test_files_pass_the_cf_checker(runs, tmp_path, name, file):
    assert cf_errors(os.path.join(runs[name], file) if file else runs[name], tmp_path) == []


def test_subgrid_file_passes_the_cf_checker(tmp_path):
    from hybridsolver.subgrid import generate as subgrid

    path = subgrid(os.path.join(CASES, "qg_eddy.toml"), str(tmp_path / "subgrid"), coarse=32, every=10,
                   start=5 * 3600.0, overrides={"ensemble.members": 2, "time.t_end": 20 * 3600.0}, progress=False)
    assert cf_errors(path, tmp_path) == []


def test_xarray_shows_units_long_names_and_cf_axes(runs):
    import cf_xarray  # noqa: F401  (registers the .cf accessor)
    import xarray as xr

    with xr.open_dataset(os.path.join(runs["qg"], "fields.nc")) as ds:
        assert ds.cf.axes == {"X": ["x"], "Y": ["y"], "Z": ["layer"], "T": ["time"]}
        assert ds["q"].attrs["units"] == "s-1" and ds["x"].attrs["units"] == "m"
        assert ds.attrs["units_system"] == "SI" and ds.attrs["source"].startswith("hybridsolver ")
        assert ds.cf["realization"].name == "member"
    with xr.open_dataset(os.path.join(runs["kolmogorov"], "diagnostics.nc"), decode_times=False) as ds:
        assert ds.cf.axes["T"] == ["time"] and ds.attrs["units_system"] == "nondimensional"
        for name in ("energy", "enstrophy", "energy_spectrum"):
            assert ds[name].attrs["units"] == "1" and ds[name].attrs["long_name"]
        np.testing.assert_allclose(ds["time"], 0.002 * ds["step"])  # model time (dt = 0.002), one unit as 1 s
    with xr.open_dataset(os.path.join(runs["kolmogorov"], "scores.nc")) as ds:
        assert ds.cf.axes["T"] == ["time"] and ds["rmse"].attrs["units"] == "1"
        assert ds["correlation_lag"].attrs["units"] == ds["rate_of_change"].attrs["units"] == "1"
    with xr.open_dataset(runs["split"]) as ds:
        assert ds.cf.axes == {"X": ["x"], "T": ["time"]} and ds["u_noise"].attrs["units"] == "1"


def test_every_field_and_diagnostic_has_metadata():
    """variable_attributes knows each equation's fields, derived fields, diagnostics and
    spectra (a new diagnostic without CF metadata fails here)."""
    for case in ("kolmogorov64.toml", "qg_eddy.toml", "kdv.toml", "burgers2d.toml", "cylinder_re160.toml"):
        sim = Simulation.from_case(os.path.join(CASES, case), {"ensemble.members": 1})
        eq = sim.equation
        names = list(eq.fields) + list(eq.derived_fields) + list(sim.diagnostics())
        for name in names:
            attrs = cf.variable_attributes(eq.name, name)
            assert attrs["long_name"] and attrs["units"] == ("1" if eq.name != "qg2layer" else attrs["units"])
    assert cf.variable_attributes("qg2layer", "ke_spectrum_1")["units"] == "m2 s-2"
    with pytest.raises(KeyError):
        cf.variable_attributes("navier_stokes2d", "no_such_diagnostic")
