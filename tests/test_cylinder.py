"""Flow past a body in navier_stokes2d: Brinkman penalization, the sponge, side walls,
the body's force coefficients and the Strouhal number (hybridsolver/equations/obstacle.py)."""
from typing import Dict, List

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from hybridsolver import CaseError, Simulation
from hybridsolver.equations.obstacle import cylinder_mask, strouhal_number, wake_statistics


def channel(shape=(64, 128), length=(8.0, 16.0), obstacle=None, inflow=None, members=1, **equation):
    """A raw case: uniform inflow U = 1 through a periodic box with a sponge of width 4."""
    eq = {"name": "navier_stokes2d", "viscosity": 0.01,
          "inflow": inflow or {"type": "uniform", "velocity": 1.0, "sponge_width": 4.0, "sponge_rate": 10.0}} | equation
    if obstacle:
        eq["obstacle"] = obstacle
    return {"equation": eq, "grid": {"shape": list(shape), "length": list(length)},
            "initial_condition": {"type": "taylor_green", "amplitude": 0.0},
            "time": {"scheme": "cn_rk4", "dt": 0.02, "steps": 50}, "ensemble": {"members": members, "seed": 0},
            "output": {"fields_every": 0, "diagnostics_every": 10}}


CYLINDER = {"type": "cylinder", "center": [4.0, 4.0], "diameter": 1.0, "eta": 1e-3, "smoothing": 1.0}


@pytest.mark.parametrize("walls", ["none", "free_slip"])
def test_a_uniform_inflow_without_a_body_stays_uniform(walls):
    inflow = {"type": "uniform", "velocity": 1.0, "sponge_width": 4.0, "sponge_rate": 10.0, "walls": walls}
    sim = Simulation.from_case(channel(inflow=inflow))
    sim.advance(50)
    u, v = sim.equation.velocity(sim.state)
    assert np.abs(u - 1.0).max() < 1e-12 and np.abs(v).max() < 1e-12


def test_a_vortex_leaving_through_the_sponge_reflects_under_1_percent_of_its_energy():
    """A Gaussian vortex carried by U = 1 from x = 3 through the sponge (x in [12, 16]) and,
    periodically, back to x = 3 after t = 16: what is left of its energy."""
    sim = Simulation.from_case(channel(viscosity=1e-4) | {"time": {"scheme": "cn_rk4", "dt": 0.02, "steps": 800}})
    X, Y = sim.grid.mesh()
    vortex = 5.0 * np.exp(-((X - 3.0) ** 2 + (Y - 4.0) ** 2) / 0.5)
    sim.set_initial({"vorticity": vortex - vortex.mean()})
    energy0 = sim.diagnostics()["energy"][0]
    sim.advance(800)
    reflected = sim.diagnostics()["energy"][0] / energy0
    assert reflected < 0.01
    undamped = Simulation.from_case(channel(viscosity=1e-4, inflow={"type": "uniform", "velocity": 1.0,
                                                                    "sponge_width": 4.0, "sponge_rate": 1e-6}))
    undamped.set_initial({"vorticity": vortex - vortex.mean()})
    undamped.advance(800)
    assert undamped.diagnostics()["energy"][0] / energy0 > 0.8  # the sponge, not viscosity, took it


def test_the_body_stops_the_flow_inside_it_and_feels_a_drag():
    # 16 points per D: at 8 the asymmetry of the 2/3 mask gives the symmetric start a lift of 0.02
    sim = Simulation.from_case(channel(shape=(128, 256), obstacle=CYLINDER))
    sim.advance(50)
    u, v = sim.equation.velocity(sim.state)
    X, Y = sim.grid.mesh()
    inside = np.hypot(X - 4.0, Y - 4.0) < 0.3
    assert np.abs(u[0][inside]).max() < 0.05 and np.abs(v[0][inside]).max() < 0.05
    coefficients = sim.diagnostics()
    assert 1.0 < coefficients["drag_coefficient"][0] < 4.0  # the impulsive start's drag, t = 1
    # a symmetric flow has no lift but for the host's 2/3 mask, point- but not reflection-symmetric (as jax-cfd's)
    assert abs(coefficients["lift_coefficient"][0]) < 2e-3


def test_the_mask_is_centred_on_the_surface_and_has_the_area_of_the_disc():
    from hybridsolver.grid import Grid
    grid = Grid((160, 160), (10.0, 10.0))  # 16 points per D
    chi = cylinder_mask(grid, (5.0, 5.0), 1.0, 2.0)
    assert abs(chi.sum() * grid.dx * grid.dy / (np.pi / 4) - 1) < 0.01  # a ramp inside the surface: -25%
    X, Y = grid.mesh()
    r = np.hypot(X - 5.0, Y - 5.0)
    assert np.all(chi[r <= 0.5 - 1 / 16] == 1.0) and np.all(chi[r >= 0.5 + 1 / 16] == 0.0)
    assert np.allclose(chi[np.isclose(r, 0.5)], 0.5)


def test_every_stage_of_cn_rk4_sees_the_body():
    """The body relaxes after each of the five stages, so the flow each evaluation of the
    advection sees inside the body is under 2% of U (4% when it relaxes after the step)."""
    sim = Simulation.from_case(channel(shape=(128, 256), obstacle=CYLINDER))
    sim.advance(50)
    X, Y = sim.grid.mesh()
    inside = np.hypot(X - 4.0, Y - 4.0) < 0.4
    seen = []
    explicit = sim.equation.explicit

    def watched(w, out):
        u, v = sim.equation.velocity(w.copy())
        seen.append(np.hypot(u[0], v[0])[inside].max())
        explicit(w, out)

    sim.equation.explicit = watched
    sim.advance(1)
    assert len(seen) == 5 and max(seen) < 0.02


def test_wake_members_are_bit_identical_alone_and_in_an_ensemble():
    raw = channel(obstacle=CYLINDER, members=3) | {"initial_condition": {"type": "gaussian_random_field",
                                                                        "sigma": 0.01}}
    ensemble = Simulation.from_case(raw)
    ensemble.advance(20)
    raw["ensemble"] |= {"members": 1, "first_member": 2}
    alone = Simulation.from_case(raw)
    alone.advance(20)
    assert np.array_equal(ensemble.state[2], alone.state[0])
    assert not np.array_equal(ensemble.state[0], ensemble.state[2])
    assert np.array_equal(ensemble.diagnostics()["drag_coefficient"][2], alone.diagnostics()["drag_coefficient"][0])


def test_the_strouhal_number_of_a_known_signal():
    t = np.linspace(0.0, 100.0, 2001)
    lift = np.stack([0.3 * np.sin(2 * np.pi * 0.165 * t + 0.4), 0.1 * np.sin(2 * np.pi * 0.2 * t), 0 * t])
    st = strouhal_number(t, lift, diameter=2.0, velocity=1.0)
    assert st[0] == pytest.approx(2 * 0.165, rel=1e-6) and st[1] == pytest.approx(0.4, rel=1e-6)
    assert np.isnan(st[2])
    stats = wake_statistics(t, 1.3 + 0 * lift, lift, 1.0, 1.0)
    assert stats["mean_drag_coefficient"][0] == pytest.approx(1.3)
    assert stats["lift_amplitude"][0] == pytest.approx(0.3, rel=1e-3)


def test_obstacle_and_inflow_keys_are_checked():
    with pytest.raises(CaseError, match="equation.obstacle.diameter: missing"):
        Simulation.from_case(channel(obstacle={"type": "cylinder", "center": [4.0, 4.0]}))
    with pytest.raises(CaseError, match="equation.inflow.walls: unknown value 'slip'"):
        Simulation.from_case(channel(inflow={"type": "uniform", "sponge_width": 4.0, "walls": "slip"}))


class InflowAnomaly(torch.nn.Module):
    """A closure of inputs (u, v) (physical) returning the tendency (u - 1 + v) cos(2 pi y / Ly)
    on the 64 x 128 box (a tendency of zero mean: the relaxation keeps the mean vorticity 0)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("pattern", torch.cos(2 * torch.pi * torch.arange(64, dtype=torch.float64) / 64)[:, None])

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return (x[:, 0:1] - 1.0 + x[:, 1:2]) * self.pattern


def test_plugins_read_the_velocity_with_the_inflow(tmp_path):
    from hybridsolver.plugin import export
    from hybridsolver_plugins.classic.export import manifest

    physical = {"space": "physical"}
    path = str(tmp_path / "anomaly.pt")
    export(InflowAnomaly(), manifest("smagorinsky") | {
        "name": "anomaly", "grid": {"shape": [64, 128], "length": [8.0, 16.0]},
        "inputs": [physical | {"field": "u"}, physical | {"field": "v"}],
        "outputs": [physical | {"field": "vorticity"}]}, path)
    sim = Simulation.from_case(channel() | {"plugins": [{"path": path}]})
    sim.advance(10)
    assert np.abs(sim.state).max() < 1e-12  # u = U = 1 and v = 0 everywhere: no tendency
    raw = channel() | {"plugins": [{"path": path}]}
    raw["equation"]["inflow"]["velocity"] = 0.5
    slower = Simulation.from_case(raw)
    slower.advance(10)
    assert np.abs(slower.state).max() > 1.0  # u - 1 = -0.5: the closure saw the slower mean flow


def test_a_wake_continued_from_a_checkpoint_is_bit_identical(tmp_path):
    raw = channel(obstacle=CYLINDER, members=2) | {"initial_condition": {"type": "gaussian_random_field",
                                                                        "sigma": 0.01}}
    whole = Simulation.from_case(raw)
    whole.advance(30)
    first = Simulation.from_case(raw)
    first.advance(13)
    path = str(tmp_path / "checkpoint.npz")
    first.save_checkpoint(path)
    resumed = Simulation.from_case(raw)
    resumed.load_checkpoint(path)
    resumed.advance(17)
    assert np.array_equal(resumed.state, whole.state)
    assert np.array_equal(resumed.diagnostics()["drag_coefficient"], whole.diagnostics()["drag_coefficient"])


def test_output_fields_writes_the_velocity_with_the_inflow(tmp_path):
    raw = channel(obstacle=CYLINDER) | {"initial_condition": {"type": "gaussian_random_field", "sigma": 0.01}}
    raw["output"] = {"fields_every": 10, "diagnostics_every": 10, "fields": ["u", "v", "vorticity"]}
    sim = Simulation.from_case(raw)
    sim.run(str(tmp_path / "run"), progress=False)
    u, v = sim.equation.velocity(sim.state)
    with netCDF4.Dataset(tmp_path / "run" / "fields.nc") as ds:
        assert [n for n in ds.variables if ds[n].dimensions[:2] == ("member", "time")] == ["valid", "u", "v",
                                                                                          "vorticity"]
        assert np.array_equal(ds["u"][:, -1], u) and np.array_equal(ds["v"][:, -1], v)
        assert np.array_equal(ds["vorticity"][:, -1], sim.fields()["vorticity"])
    raw["output"]["fields"] = ["u", "speed"]
    with pytest.raises(CaseError, match="output.fields: unknown field 'speed' .*vorticity, u, v"):
        Simulation.from_case(raw)


def test_a_box_shifted_by_its_origin_carries_the_same_flow():
    """grid.origin moves the coordinates: a cylinder at the origin of a box whose first point
    is (-4, -4) is the same flow as one at (4, 4) in a box from 0 (to round-off)."""
    raw = channel(obstacle=CYLINDER)
    base = Simulation.from_case(raw)
    base.advance(20)
    raw["grid"]["origin"] = [-4.0, -4.0]
    raw["equation"]["obstacle"] = CYLINDER | {"center": [0.0, 0.0]}
    shifted = Simulation.from_case(raw)
    assert shifted.grid.x[0] == -4.0 and shifted.grid.y[-1] == pytest.approx(4.0 - 8.0 / 64)
    shifted.advance(20)
    assert np.abs(shifted.state - base.state).max() < 1e-9 * np.abs(base.state).max()
    assert shifted.diagnostics()["drag_coefficient"][0] == pytest.approx(base.diagnostics()["drag_coefficient"][0],
                                                                         rel=1e-9)


def test_a_report_on_a_wake_ensemble_scores_every_member_from_step_0(tmp_path):
    """The drag is 0 at step 0 (no step has acted yet), not NaN: the report counts every
    member valid throughout and draws each one's energy autocorrelation."""
    from hybridsolver.cli import main

    raw = channel(obstacle=CYLINDER, members=3) | {"initial_condition": {"type": "gaussian_random_field",
                                                                        "sigma": 0.01}}
    raw["output"] = {"fields_every": 10, "diagnostics_every": 5, "fields": ["u", "v"]}
    Simulation.from_case(raw).run(str(tmp_path / "wake"), progress=False)
    assert main(["report", str(tmp_path / "wake")]) == 0
    with netCDF4.Dataset(tmp_path / "wake" / "diagnostics.nc") as ds:
        assert np.all(ds["drag_coefficient"][:, 0] == 0.0) and np.all(ds["drag_coefficient"][:, 1:] > 0.5)
    scores = xr.open_dataset(tmp_path / "wake" / "scores.nc", decode_times=False)
    assert scores["energy_autocorrelation"].shape[0] == 3 and np.isfinite(scores["energy_autocorrelation"]).all()
    assert (tmp_path / "wake" / "report" / "snapshots.png").stat().st_size > 10_000
