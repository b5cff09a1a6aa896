"""Run directory, diagnostics and the Python API."""
import json
import os

import numpy as np
import pytest
import xarray as xr

from hybridsolver import CaseError, Simulation, load_case


def test_run_directory_contents(case, tmp_path):
    case["ensemble"]["members"] = 3
    case["time"]["steps"] = 20
    sim = Simulation.from_case(case)
    summary = sim.run(out_dir=str(tmp_path), progress=False)
    assert sorted(os.listdir(tmp_path)) == ["case.toml", "checkpoint.npz", "diagnostics.nc", "fields.nc",
                                            "summary.json"]
    fields = xr.open_dataset(tmp_path / "fields.nc", decode_times=False)
    assert fields["vorticity"].dims == ("member", "time", "y", "x")
    assert fields["vorticity"].shape == (3, 5, 32, 32)
    assert list(fields["step"].values) == [0, 5, 10, 15, 20]
    assert fields["valid"].dims == ("member", "time") and fields["valid"].values.all()
    assert np.array_equal(fields["vorticity"].values[:, -1], sim.fields()["vorticity"])
    diag = xr.open_dataset(tmp_path / "diagnostics.nc", decode_times=False)
    for name in ("energy", "enstrophy", "palinstrophy", "max_vorticity", "cfl"):
        assert diag[name].dims == ("member", "time") and diag[name].shape == (3, 5)
    assert diag["energy_spectrum"].dims == ("member", "time", "k")
    # the 2/3-truncated state lies inside the inscribed circle: spectra sum to the totals
    assert np.allclose(diag["energy_spectrum"].sum("k"), diag["energy"], rtol=1e-12)
    assert np.allclose(diag["enstrophy_spectrum"].sum("k"), diag["enstrophy"], rtol=1e-12)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["member_status"] == {"0": "ok", "1": "ok", "2": "ok"}
    assert on_disk["final_step"] == 20 and on_disk["ms_per_step"] > 0
    assert summary == on_disk
    assert load_case(str(tmp_path / "case.toml")).data == sim.case.data


def test_diagnostics_match_physical_space_definitions(case):
    sim = Simulation.from_case(case)
    d = sim.diagnostics()
    w = sim.fields()["vorticity"]
    u, v = sim.equation.velocity(sim.state)
    g = sim.grid
    kx, ky = np.meshgrid(g.kx, g.ky)
    w_hat = np.fft.rfft2(w)
    wx, wy = (np.fft.irfft2(1j * k * w_hat, s=g.shape) for k in (kx, ky))
    assert np.allclose(d["energy"], 0.5 * (u**2 + v**2).mean(axis=(1, 2)), rtol=1e-12)
    assert np.allclose(d["enstrophy"], 0.5 * (w**2).mean(axis=(1, 2)), rtol=1e-12)
    assert np.allclose(d["palinstrophy"], 0.5 * (wx**2 + wy**2).mean(axis=(1, 2)), rtol=1e-12)
    assert np.allclose(d["max_vorticity"], np.abs(w).max(axis=(1, 2)))
    speed = (np.abs(u) / g.dx + np.abs(v) / g.dy).max(axis=(1, 2))
    assert np.allclose(d["cfl"], speed * sim.dt)


def test_random_velocity_has_requested_max_speed_and_band(case):
    case["ensemble"]["members"] = 4
    sim = Simulation.from_case(case)
    u, v = sim.equation.velocity(sim.state)
    assert np.allclose(np.sqrt(u**2 + v**2).max(axis=(1, 2)), 7.0)
    outside = sim.grid.alias_free_band() == 0
    assert np.abs(sim.state[:, outside]).max() < 1e-10 * np.abs(sim.state).max()


def test_gaussian_random_field_spectrum(case):
    """Shell variance follows 2 sigma^2 (|k|^2 + tau^2)^(-alpha) on the unit torus."""
    case["grid"].update(shape=[64, 64], length=[1.0, 1.0], dealias="none")
    case["initial_condition"] = {"type": "gaussian_random_field"}
    case["ensemble"]["members"] = 32
    sim = Simulation.from_case(case)
    g = sim.grid
    power = (np.abs(sim.state) ** 2).mean(axis=0) / g.size  # E|F(w)_k|^2 / N
    expected = 2 * 7.0**3 * (g.k2 + 49.0) ** -2.5 * g.size
    low = (g.k2 > 0) & (g.k2 < (2 * np.pi * 6) ** 2)
    ratio = (power[low] / expected[low]).mean()  # ~3000 unit-mean samples
    assert abs(ratio - 1) < 0.1, ratio


def test_set_initial_validates_names_and_shapes(case):
    sim = Simulation.from_case(case)
    with pytest.raises(CaseError, match="expected fields"):
        sim.set_initial({"q": np.zeros((32, 32))})
    with pytest.raises(CaseError, match="shape"):
        sim.set_initial({"vorticity": np.zeros((16, 32))})
    sim.set_initial({"vorticity": np.ones((32, 32))})
    assert np.allclose(sim.fields()["vorticity"], 1.0)


def test_advance_moves_the_clock(case):
    sim = Simulation.from_case(case)
    sim.advance(7)
    assert sim.step == 7 and sim.time == pytest.approx(7e-3)
