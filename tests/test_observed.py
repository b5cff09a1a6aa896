"""The ``observed`` host: named fields on a window, no dynamics of its own, stepped by
emulators (the latent-SDE cylinder's (u, v) window); its persistence, files and errors;
and the model time's origin ``time.start`` (that data's test split starts at t = 14)."""
import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.cli import main
from hybridsolver.plugin import export

SHAPE = (6, 10)


def _start(tmp_path):
    """A netCDF file of distinct u and v on the window: u = 1 + i + 10 j / 7, v = -u / 3."""
    path = str(tmp_path / "start.nc")
    u = 1.0 + np.arange(SHAPE[0])[:, None] + np.arange(SHAPE[1])[None, :] * 10 / 7
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", SHAPE[0])
        ds.createDimension("x", SHAPE[1])
        for name, value in (("u", u), ("v", -u / 3)):
            ds.createVariable(name, "f8", ("y", "x"))[:] = value
    return path, u


def _case(tmp_path, plugins=(), members=2, **initial):
    path, _ = _start(tmp_path)
    return {"equation": {"name": "observed", "fields": ["u", "v"]},
            "grid": {"shape": list(SHAPE), "length": [0.6, 2.0], "origin": [-0.25, -0.5]},
            "initial_condition": {"type": "file", "path": path} | initial, "time": {"dt": 0.01, "steps": 4},
            "ensemble": {"members": members, "seed": 0}, "plugins": list(plugins),
            "output": {"dir": str(tmp_path / "run"), "fields_every": 1, "diagnostics_every": 1}}


class Rotate(torch.nn.Module):
    """A replace emulator of (u, v): each call turns the velocity by 90 degrees, (u, v) -> (-v, u)."""

    def forward(self, x: torch.Tensor, noise: list[torch.Tensor], options: dict[str, float]) -> torch.Tensor:
        return torch.stack([-x[:, 1], x[:, 0]], dim=1)


def _artifact(tmp_path, module, name):
    """``module`` exported as the (u, v) replace emulator ``name`` of the test window."""
    path = str(tmp_path / f"{name}.pt")
    io = [{"field": field, "space": "physical"} for field in ("u", "v")]
    export(module, {"name": name, "version": "1", "kind": "emulator", "callsite": "replace",
                    "equation": "observed", "grid": {"shape": list(SHAPE), "length": [0.6, 2.0]},
                    "inputs": io, "outputs": io, "dtype": "float64", "devices": ["cpu"], "every": 1,
                    "stochastic": False, "noise": [], "sampler": {}, "provenance": {"trained": False}}, path)
    return path


def test_a_member_no_plugin_covers_keeps_its_fields_and_the_files_carry_the_window(tmp_path):
    _, u = _start(tmp_path)
    sim = Simulation.from_case(_case(tmp_path))
    sim.run()
    assert sim.state.shape == (2, 2) + SHAPE
    assert np.array_equal(sim.state[1, 0], u) and np.array_equal(sim.state[0, 1], -u / 3)  # persistence, exactly
    with xr.open_dataset(tmp_path / "run" / "fields.nc", decode_times=False) as ds:
        assert ds["u"].dims == ("member", "time", "y", "x") and ds.sizes["time"] == 5
        assert np.allclose(ds["x"], -0.5 + 0.2 * np.arange(SHAPE[1]), atol=1e-14)  # cell centres from origin
        assert np.allclose(ds["y"], -0.25 + 0.1 * np.arange(SHAPE[0]), atol=1e-14)
        assert np.array_equal(ds["v"][1, -1], -u / 3)
    with xr.open_dataset(tmp_path / "run" / "diagnostics.nc", decode_times=False) as ds:
        assert np.allclose(ds["mean_u"][:, -1], u.mean()) and np.allclose(ds["mean_v"][:, -1], -u.mean() / 3)
        assert np.allclose(ds["energy"][:, 0], 0.5 * (u ** 2 * (1 + 1 / 9)).mean())


def test_an_emulator_steps_both_fields_of_the_window(tmp_path):
    _, u = _start(tmp_path)
    sim = Simulation.from_case(_case(tmp_path, [{"path": _artifact(tmp_path, Rotate(), "rotate"), "every": 1}]))
    sim.advance(3)  # three quarter turns: (u, v) -> (-v, u) -> (-u, -v) -> (v, -u)
    assert sim.hook_report()["rotate"]["calls"] == 3
    assert np.array_equal(sim.state[0, 0], -u / 3) and np.array_equal(sim.state[1, 1], -u)


@pytest.mark.parametrize("change, needle", [
    ({"equation.fields": ["u", "u"]}, "equation.fields[1]: 'u' is listed twice"),
    ({"equation.fields": ["u", "time"]}, "equation.fields[1]: 'time' is not a usable field name"),
    ({"equation.fields": []}, "equation.fields: expected a non-empty list"),
    ({"initial_condition.variable": "u"}, "initial_condition.variable: names one field; observed has fields u, v"),
    ({"initial_condition.path": "start.npy"}, "initial_condition.path: names one field"),
    ({"initial_condition.type": "random_packet"}, "initial_condition.type"),
    ({"time.scheme": "etdrk4"}, "time.scheme: observed is stepped with heun, rk4"),
])
def test_bad_observed_cases_exit_2_naming_the_key(tmp_path, capsys, change, needle):
    import tomli_w

    raw = _case(tmp_path)
    np.save(tmp_path / "start.npy", np.zeros(SHAPE))
    for key, value in change.items():
        section, name = key.split(".")
        raw[section][name] = str(tmp_path / value) if name == "path" else value
    case = tmp_path / "bad.toml"
    case.write_text(tomli_w.dumps(raw))
    assert main(["run", str(case), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1, err


def test_a_missing_field_variable_is_named(tmp_path):
    raw = _case(tmp_path)
    raw["equation"]["fields"] = ["u", "w"]
    with pytest.raises(CaseError, match="has no variable 'w'"):
        Simulation.from_case(raw)


class Clock(torch.nn.Module):
    """A replace emulator whose fields become the model time it was called at."""

    def forward(self, x: torch.Tensor, noise: list[torch.Tensor], options: dict[str, float]) -> torch.Tensor:
        return torch.full_like(x, options["time"])


def test_time_start_is_the_model_time_of_step_0_for_files_plugins_windows_and_t_end(tmp_path):
    raw = _case(tmp_path, [{"path": _artifact(tmp_path, Clock(), "clock"), "every": 1, "start": 14.02}])
    raw["time"] = {"dt": 0.01, "start": 14.0, "t_end": 14.05}
    sim = Simulation.from_case(raw)
    assert sim.total_steps == 5 and sim.time == 14.0
    sim.run()
    assert sim.hook_report()["clock"]["calls"] == 3  # at t = 14.02, 14.03, 14.04
    assert np.allclose(sim.state, 14.04, rtol=1e-15, atol=0)  # the last call's time
    with xr.open_dataset(tmp_path / "run" / "fields.nc", decode_times=False) as ds:
        assert np.allclose(ds["time"], 14.0 + 0.01 * np.arange(6), rtol=0, atol=1e-12)
        assert np.array_equal(ds["u"][0, 2], _start(tmp_path)[1])  # the window opens at t = 14.02
        assert np.allclose(ds["u"][0, 3], 14.02, rtol=1e-15, atol=0)
    raw["time"]["t_end"] = 14.0
    with pytest.raises(CaseError, match=r"time.t_end: expected a time after time.start = 14, got 14"):
        Simulation.from_case(raw)
