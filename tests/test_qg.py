"""qg2layer: agreement with pyqg 0.7.2, linear instability, diagnostics, contracts."""
import os
import subprocess
import sys

import netCDF4
import numpy as np
import pyqg
import pytest

from hybridsolver import Simulation
from hybridsolver.case import CaseError

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
EDDY = os.path.join(ROOT, "cases", "qg_eddy.toml")
JET = os.path.join(ROOT, "cases", "qg_jet.toml")
JET_KEYS = {"beta": 1e-11, "delta": 0.1, "rek": 7e-8}


def ours(case, members=1, **equation):
    overrides = {"ensemble.members": members} | {f"equation.{k}": v for k, v in equation.items()}
    return Simulation.from_case(case, overrides)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("case, keys", [(EDDY, {}), (JET, JET_KEYS)], ids=["eddy", "jet"])
def test_agrees_with_pyqg_after_500_steps(case, keys):
    """From pyqg's own initial q, 500 steps (AB3 with its Euler and AB2 start, filter,
    drag, mean-flow advection) stay within round-off of pyqg 0.7.2."""
    model = pyqg.QGModel(nx=64, L=1e6, dt=3600.0, log_level=0, **keys)
    sim = ours(case)
    sim.set_initial({"q": model.q})
    for n in (1, 2, 3, 500):
        while model.tc < n:
            model._step_forward()
        sim.advance(n - sim.step)
        assert rel(sim.fields()["q"][0], model.q) < 1e-12, n
    assert rel(sim.fields()["q"][0], model.q) < 1e-10


def test_agrees_with_pyqg_in_developed_turbulence():
    """A large-amplitude start (nonlinear from the first step, |q| ~ 1e-5 1/s) also agrees."""
    rng = np.random.default_rng(3)
    q0 = 2e-6 * rng.standard_normal((2, 64, 64))
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0)
    model.q = q0
    sim = ours(EDDY)
    sim.set_initial({"q": q0})
    for _ in range(200):
        model._step_forward()
    sim.advance(200)
    assert np.abs(model.q).max() > 1e-6  # far from linear
    assert rel(sim.fields()["q"][0], model.q) < 1e-10


def dispersion_growth_rates(eq, k, l=0.0):
    """Growth rates Im(omega) of the two roots of det(A - omega B) = 0 for the mode
    exp(i(kx + ly - omega t)): B = S - kappa^2 I, A = k U B + k Qy I + i rek kappa^2 e2 e2^T."""
    kappa2 = k**2 + l**2
    B = np.array([[-eq.F1 - kappa2, eq.F1], [eq.F2, -eq.F2 - kappa2]])
    A = k * np.diag(eq.mean_flow) @ B + k * np.diag(eq.Qy) + np.diag([0.0, 1j * eq.rek * kappa2])
    a = np.linalg.det(B)
    b = -(A[0, 0] * B[1, 1] + A[1, 1] * B[0, 0] - A[0, 1] * B[1, 0] - A[1, 0] * B[0, 1])
    c = A[0, 0] * A[1, 1] - A[0, 1] * A[1, 0]
    root = np.sqrt(b * b - 4 * a * c + 0j)
    omegas = np.array([(-b + root) / (2 * a), (-b - root) / (2 * a)])
    vectors = [np.array([-(A[0, 1] - w * B[0, 1]), A[0, 0] - w * B[0, 0]]) for w in omegas]
    return omegas, vectors


@pytest.mark.parametrize("case, keys", [(EDDY, {}), (JET, JET_KEYS)], ids=["eddy", "jet"])
def test_growth_rate_of_most_unstable_mode(case, keys):
    """A small zonal normal mode (l = 0: its self-interaction vanishes) of the most
    unstable wavenumber grows at the analytic two-layer rate, drag included, within 1%."""
    sim = ours(case)
    eq, g = sim.equation, sim.grid
    rates = [dispersion_growth_rates(eq, k)[0].imag.max() for k in g.kx[1:g.nx // 4]]
    index = 1 + int(np.argmax(rates))
    omegas, vectors = dispersion_growth_rates(eq, g.kx[index])
    best = int(np.argmax(omegas.imag))
    psi = vectors[best] / np.abs(vectors[best]).max()
    q_hat = np.array([[-eq.F1 - g.kx[index] ** 2, eq.F1], [eq.F2, -eq.F2 - g.kx[index] ** 2]]) @ psi
    X, _ = g.mesh()
    q = 1e-12 * np.real(q_hat[:, None, None] * np.exp(1j * g.kx[index] * X)[None])
    sim.set_initial({"q": q})
    steps = 2000
    start = np.abs(sim.state[0, :, 0, index]).sum()
    sim.advance(steps)
    measured = np.log(np.abs(sim.state[0, :, 0, index]).sum() / start) / (steps * sim.dt)
    assert omegas[best].imag > 0
    assert abs(measured / omegas[best].imag - 1) < 0.01


def test_diagnostics_match_pyqg():
    """Layer KE (pyqg's EKE), height-weighted KE (pyqg's _calc_ke) and the KE spectra."""
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0)
    model.q = 1e-6 * np.random.default_rng(1).standard_normal((2, 64, 64))
    model._invert()
    sim = ours(EDDY)
    sim.set_initial({"q": model.q})
    d = sim.diagnostics()
    eke = 0.5 * (model.u**2 + model.v**2).mean(axis=(1, 2))
    assert abs(d["ke_1"][0] / eke[0] - 1) < 1e-12 and abs(d["ke_2"][0] / eke[1] - 1) < 1e-12
    assert abs(d["ke"][0] / model._calc_ke() - 1) < 1e-12
    model._calc_derived_fields()  # pyqg's physical streamfunction p
    ape = 0.5 * model.rd**-2 * model.del1 * model.del2 * ((model.p[0] - model.p[1]) ** 2).mean()
    assert abs(d["ape"][0] / ape - 1) < 1e-12
    # the spectra sum to the KE of the modes inside the inscribed circle
    index, _ = sim.grid.shells()
    inside = index >= 0
    psi = sim.equation.streamfunction(sim.state)
    for j in range(2):
        power = np.abs(psi[0, j]) ** 2 * sim.grid.k2 * sim.grid.weight
        assert np.isclose(d[f"ke_spectrum_{j + 1}"][0].sum(), 0.5 * power[inside].sum() / sim.grid.size**2,
                          rtol=1e-12)


@pytest.mark.parametrize("members", [3, 4])
def test_member_is_independent_of_ensemble_size(members):
    """Member 2 alone and in an ensemble: bit-identical after 50 steps (on 2 threads, 3
    members run as (member, layer) slabs and 4 as runs of whole members)."""
    alone = Simulation.from_case(EDDY, {"ensemble.members": 1, "ensemble.first_member": 2})
    ensemble = ours(EDDY, members=members)
    assert np.array_equal(alone.fields()["q"][0], ensemble.fields()["q"][2])
    assert not np.array_equal(ensemble.fields()["q"][0], ensemble.fields()["q"][1])
    alone.advance(50)
    ensemble.advance(50)
    assert np.array_equal(alone.state[0], ensemble.state[2])


def test_pyqg_random_start_has_pyqg_amplitudes():
    q = ours(EDDY, members=2).fields()["q"]
    assert np.abs(q[:, 1]).max() < 1e-20
    assert 0 < q[:, 0].min() and q[:, 0].max() < 1e-7 + 1e-6


@pytest.mark.parametrize("overrides, message", [
    ({"initial_condition.type": "taylor_green"}, "initial_condition.type"),
    ({"equation.rd": -1.0}, "equation.rd"),
    ({"equation.viscosity": 1e-3}, "equation.viscosity"),
])
def test_bad_qg_case_names_the_key(overrides, message):
    with pytest.raises(CaseError, match=message.replace(".", r"\.")):
        Simulation.from_case(EDDY, overrides)


def test_cli_run_writes_layered_fields(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "hybridsolver.cli", "run", EDDY, "--out", str(out), "--quiet",
           "--set", "time.t_end=86400.0", "--set", "output.fields_every=12", "--members", "2"]
    subprocess.run(cmd, check=True, cwd=ROOT)
    with netCDF4.Dataset(out / "fields.nc") as ds:
        assert ds.variables["q"].dimensions == ("member", "time", "layer", "y", "x")
        assert ds.variables["q"].shape == (2, 3, 2, 64, 64)
    with netCDF4.Dataset(out / "diagnostics.nc") as ds:
        assert {"ke_1", "ke_2", "ape", "ke_spectrum_1"} <= set(ds.variables)
