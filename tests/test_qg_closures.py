"""pyqg's parameterizations as our plugins, and our artifacts inside pyqg (interop.pyqg)."""
import os
import tomllib
from typing import Dict, List

import numpy as np
import pyqg
import pytest
import torch

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.interop.pyqg import ArtifactParameterization, case_from_model, qg_model
from hybridsolver.plugin import PluginError, export
from hybridsolver_plugins.classic.registry import smagorinsky as ns_smagorinsky
from hybridsolver_plugins.qg_classic.export import CONFIGS, manifest
from hybridsolver_plugins.spectral import RowTransforms

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
EDDY = os.path.join(ROOT, "cases", "qg_eddy.toml")
JET = os.path.join(ROOT, "cases", "qg_jet.toml")
JET_KEYS = {"beta": 1e-11, "delta": 0.1, "rek": 7e-8}
PYQG = {"qg_smagorinsky": pyqg.parameterizations.Smagorinsky,
        "qg_zanna_bolton2020": pyqg.parameterizations.ZannaBolton2020,
        "qg_backscatter_eddy": pyqg.parameterizations.BackscatterBiharmonic,
        "qg_backscatter_jet": pyqg.parameterizations.BackscatterBiharmonic}
EDDY_PLUGINS = ["qg_smagorinsky", "qg_zanna_bolton2020", "qg_backscatter_eddy"]


def ours(case, plugins=(), members=1, **overrides):
    return Simulation.from_case(case, {"ensemble.members": members, "plugins": list(plugins)} | overrides)


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def turbulent_q(seed=3):
    """A large-amplitude white-noise PV (2, 64, 64), nonlinear from the first step (1/s)."""
    return 2e-6 * np.random.default_rng(seed).standard_normal((2, 64, 64))


def pyqg_tendency(parameterization, model):
    """pyqg's PV tendency spectrum of a parameterization (its kernel's arithmetic)."""
    if parameterization.parameterization_type == "q_parameterization":
        return model.fft(parameterization(model))
    du, dv = parameterization(model)
    return -model.il * model.fft(du) + model.ik * model.fft(dv)


@pytest.mark.parametrize("name", EDDY_PLUGINS)
def test_plugin_tendency_equals_pyqg_parameterization(name):
    """On a white-noise state (the Nyquist modes fully excited), the plugin's tendency is
    pyqg's to round-off."""
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0)
    model.q = turbulent_q()
    model._invert()
    sim = ours(EDDY, [{"path": name}])
    sim.set_initial({"q": model.q})
    sim.start_hooks()
    ours_hat = sim.hooks[0](sim, sim.state)[0]
    assert rel(ours_hat, pyqg_tendency(PYQG[name](), model)) < 1e-13


CONFIGURATIONS = [(EDDY, {}, p) for p in EDDY_PLUGINS] + [
    (JET, JET_KEYS, p) for p in ("qg_smagorinsky", "qg_zanna_bolton2020", "qg_backscatter_jet")]


@pytest.mark.parametrize("case, keys, name", CONFIGURATIONS,
                         ids=[f"{'jet' if k else 'eddy'}-{p}" for _, k, p in CONFIGURATIONS])
def test_agrees_with_pyqg_with_parameterization_after_500_steps(case, keys, name):
    """Acceptance 1 with a parameterization: our host with the plugin (every step) and
    pyqg with its own parameterization, from pyqg's initial q."""
    plain = pyqg.QGModel(nx=64, dt=3600.0, log_level=0, **keys)
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0, parameterization=PYQG[name](), **keys)
    model.q = plain.q
    sim = ours(case, [{"path": name, "every": 1}])
    sim.set_initial({"q": plain.q})
    for _ in range(500):
        model._step_forward()
        plain._step_forward()
    sim.advance(500)
    q = sim.fields()["q"][0]
    assert rel(q, model.q) < 1e-10
    assert rel(plain.q, model.q) > 1e-4  # the parameterization matters


@pytest.mark.parametrize("name", EDDY_PLUGINS)
def test_agrees_with_pyqg_with_parameterization_in_developed_turbulence(name):
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0, parameterization=PYQG[name]())
    model.q = turbulent_q()
    sim = ours(EDDY, [{"path": name}])
    sim.set_initial({"q": turbulent_q()})
    for _ in range(200):
        model._step_forward()
    sim.advance(200)
    assert rel(sim.fields()["q"][0], model.q) < 1e-10


@pytest.mark.parametrize("name", EDDY_PLUGINS)
def test_artifact_inside_pyqg_follows_our_host(name):
    """Acceptance 3: the artifact as a pyqg q_parameterization gives the trajectory it gives
    in our host, 100 steps from a nonlinear start."""
    sim = ours(EDDY, [{"path": name}])
    sim.set_initial({"q": turbulent_q()})
    model = qg_model(sim, q_parameterization=ArtifactParameterization(name))
    for _ in range(100):
        model._step_forward()
    sim.advance(100)
    assert rel(sim.fields()["q"][0], model.q) < 1e-10


class LayerNoise(RowTransforms):
    """Test module: a PV tendency ``amplitude * F(eta)`` of the host's noise (B, 2, ny, nx)."""

    def __init__(self, amplitude):
        super().__init__((64, 64))
        self.amplitude = float(amplitude)

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.amplitude * self.spectral(noise[0])


def _export_qg(tmp_path, module, **changes):
    path = str(tmp_path / "qg_test.pt")
    spectral = {"grid": {"shape": [64, 64], "length": [1e6, 1e6]},
                "inputs": [{"field": "psi", "space": "spectral"}], "outputs": [{"field": "q", "space": "spectral"}]}
    export(module, manifest("smagorinsky") | {"name": "qg_test"} | spectral | changes, path)
    return path


class Spectrum(RowTransforms):
    """Test module: the rfft2 of its physical input channels."""

    def __init__(self):
        super().__init__((64, 64))

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.spectral(x)


def test_plugins_read_derived_physical_velocities(tmp_path):
    """A plugin asking for the derived field ``v`` (physical) gets the equation's velocity."""
    path = _export_qg(tmp_path, Spectrum(), inputs=[{"field": "v", "space": "physical"}])
    sim = ours(EDDY, [{"path": path}], members=2)
    sim.set_initial({"q": np.stack([turbulent_q(s) for s in range(2)])})
    sim.start_hooks()
    _, v = sim.equation.velocity(sim.state)
    expected = sim.equation.from_fields({"q": v})
    assert rel(sim.hooks[0](sim, sim.state), expected) < 1e-14


def test_stochastic_artifact_inside_pyqg_follows_its_member(tmp_path):
    """Noise comes from the chosen member's stream at pyqg's step, held over ``every``:
    member 2 of a 3-member ensemble is reproduced alone inside pyqg."""
    noise = [{"name": "eta", "shape": [2, 64, 64]}]
    path = _export_qg(tmp_path, LayerNoise(1e-12), stochastic=True, noise=noise)
    sim = ours(EDDY, [{"path": path, "every": 3}], members=3, **{"ensemble.seed": 5})
    sim.set_initial({"q": np.stack([turbulent_q(s) for s in range(3)])})
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0,
                         q_parameterization=ArtifactParameterization(path, every=3, seed=5, member=2))
    model.q = turbulent_q(2)
    plain = pyqg.QGModel(nx=64, dt=3600.0, log_level=0)
    plain.q = turbulent_q(2)
    for _ in range(30):
        model._step_forward()
        plain._step_forward()
    sim.advance(30)
    assert rel(sim.fields()["q"][2], model.q) < 1e-10
    assert rel(plain.q, model.q) > 1e-3  # the noise matters


def test_refuses_artifact_made_for_other_layers(capsys):
    with pytest.raises(CaseError, match=r"artifact made for equation.delta = 0.25, case equation.delta = 0.1"):
        ours(JET, [{"path": "qg_backscatter_eddy"}])


def test_adapter_refuses_wrong_artifacts(tmp_path):
    model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0, q_parameterization=ArtifactParameterization(ns_smagorinsky))
    with pytest.raises(PluginError, match="artifact equation 'navier_stokes2d', case equation.name 'qg2layer'"):
        model._step_forward()
    path = _export_qg(tmp_path, LayerNoise(0.0), callsite="post_step")
    with pytest.raises(PluginError, match="needs an artifact of callsite 'tendency', this one is 'post_step'"):
        ArtifactParameterization(path)


def test_case_from_model_round_trips():
    """pyqg model -> case -> pyqg model keeps the physics (the adapter's contract check)."""
    model = pyqg.QGModel(nx=32, L=2e6, dt=1800.0, log_level=0, **JET_KEYS)
    sim = Simulation.from_case(case_from_model(model))
    again = qg_model(sim)
    for key in ("nx", "L", "W", "dt", "beta", "rd", "delta", "rek", "filterfac", "U1", "U2", "F1", "F2"):
        assert getattr(again, key) == pytest.approx(getattr(model, key), rel=1e-15), key
    assert again.Hi == pytest.approx(model.Hi)


@pytest.mark.parametrize("config, case", [("eddy", EDDY), ("jet", JET)])
def test_backscatter_configurations_follow_the_cases(config, case):
    with open(case, "rb") as f:
        equation = tomllib.load(f)["equation"]
    assert CONFIGS[config] == {k: equation[k] for k in CONFIGS[config]}


# ---- subgrid data (hybridsolver.subgrid) ---------------------------------------------------

def _pyqg_coarse_graining(fine_model, nx, kind):
    """Ross et al. (2023)'s operators 1 and 2 and their total PV forcing, computed with pyqg
    models (coarse Nyquist modes zeroed, as our truncation does): (bar q, S_q) physical."""
    m1 = fine_model
    config = {k: getattr(m1, k) for k in ("L", "W", "dt", "rek", "beta", "delta", "U1", "U2", "rd")}
    m2 = pyqg.QGModel(nx=nx, log_level=0, H1=m1.Hi[0], **config)
    nk = nx // 2
    filt = m2.filtr if kind == "sharp" else np.exp(-m2.wv**2 * (2 * m2.dx) ** 2 / 24)

    def bar(spectrum):
        out = np.concatenate((spectrum[:, :nk, :nk + 1], spectrum[:, -nk:, :nk + 1]), axis=1) * filt
        out *= (nx / m1.nx) ** 2
        out[:, nk, :] = 0.0
        out[:, :, nk] = 0.0
        return out

    m1._invert()
    m2.q = m2.ifft(bar(m1.qh))
    for m in (m1, m2):
        m._invert()
        m._do_advection()
        m._do_friction()
    return m2.q, m2.ifft(bar(m1.dqhdt) - m2.dqhdt)


@pytest.mark.parametrize("kind", ["sharp", "gaussian"])
def test_subgrid_forcing_matches_pyqg_coarse_graining(kind):
    """S_q = bar(N_fine(q)) - N_coarse(bar q) of a 128^2 turbulent state, against the
    same operator built from pyqg models (the pyqg parameterization benchmarks' recipe)."""
    from hybridsolver.subgrid import Coarsener

    model = pyqg.QGModel(nx=128, dt=3600.0, log_level=0)
    model.q = 1e-6 * np.random.default_rng(0).standard_normal((2, 128, 128))
    for _ in range(100):
        model._step_forward()
    fine = ours(EDDY, **{"grid.shape": [128, 128]})
    fine.set_initial({"q": model.q})
    record = Coarsener(fine, (64, 64), kind).record(fine.state)
    q_bar, s_q = _pyqg_coarse_graining(model, 64, kind)
    assert rel(record["q"][0], q_bar) < 1e-13
    assert rel(record["S_q"][0], s_q) < 1e-12
    assert np.abs(s_q).max() > 1e-3 * np.abs(model.ifft(model.dqhdt)).max()  # a real forcing


def test_sharp_subgrid_forcing_vanishes_for_resolved_flow():
    """A flow of wavenumbers |k| <= 5 (its advection reaches 10 < 0.65 * 32) is resolved on
    the 64^2 grid: the sharp operator's S_q is zero to round-off, the Gaussian's is not
    (it does not commute with the advection)."""
    from hybridsolver.subgrid import Coarsener

    fine = ours(EDDY, **{"grid.shape": [128, 128]})
    g = fine.grid
    rng = np.random.default_rng(1)
    q_hat = np.where(g.k2 <= (5 * 2 * np.pi / g.Lx) ** 2 + 1e-30, 1.0, 0.0) * (
        rng.standard_normal((1, 2) + g.spectral_shape) + 1j * rng.standard_normal((1, 2) + g.spectral_shape))
    q = fine.equation.to_fields(q_hat)["q"]
    fine.set_initial({"q": 1e-5 * q / np.abs(q).max()})  # nonlinear: |u| ~ 0.3 m/s
    sharp = Coarsener(fine, (64, 64), "sharp")
    s_q, q_bar = sharp.forcing(fine.state)
    tendency = np.empty_like(q_bar)
    sharp.coarse.equation.explicit(q_bar, tendency)
    assert np.linalg.norm(s_q) < 1e-12 * np.linalg.norm(tendency)
    s_gauss, _ = Coarsener(fine, (64, 64), "gaussian").forcing(fine.state)
    assert np.linalg.norm(s_gauss) > 1e-3 * np.linalg.norm(tendency)


def _generate(out, **kwargs):
    from hybridsolver.subgrid import generate

    overrides = {"ensemble.members": 2, "time.t_end": 40 * 3600.0}
    return generate(EDDY, str(out), coarse=32, every=10, start=5 * 3600.0, overrides=overrides, checkpoint_every=7,
                    progress=False, **kwargs)


def test_subgrid_dataset_resumes_to_the_same_records(tmp_path):
    import xarray as xr

    whole = _generate(tmp_path / "whole")
    _generate(tmp_path / "split", stop_at=18)
    with xr.open_dataset(tmp_path / "split" / "subgrid.nc") as ds:
        assert list(ds.step.values) == [5, 15]  # complete and readable after the first part
    split = _generate(tmp_path / "split")
    with xr.open_dataset(whole) as a, xr.open_dataset(split) as b:
        assert list(a.step.values) == [5, 15, 25, 35]
        assert a.S_q.dims == ("filter", "member", "time", "layer", "y", "x")
        assert a.S_q.shape == (2, 2, 4, 2, 32, 32) and list(a["filter"].values) == ["sharp", "gaussian"]
        for name in ("q", "u", "v", "S_q"):
            np.testing.assert_array_equal(a[name].values, b[name].values)
        assert np.abs(a.S_q.values).max() > 0


def test_subgrid_refuses_other_arguments_and_bad_grids(tmp_path, capsys):
    from hybridsolver import subgrid

    _generate(tmp_path / "d", stop_at=6)
    with pytest.raises(CaseError, match="generated with every = 10, now 5"):
        subgrid.generate(EDDY, str(tmp_path / "d"), coarse=32, every=5, start=5 * 3600.0,
                         overrides={"ensemble.members": 2, "time.t_end": 40 * 3600.0}, progress=False)
    code = subgrid.main([EDDY, "--out", str(tmp_path / "e"), "--coarse", "96", "--quiet"])
    assert code == 2 and "--coarse: the coarse grid [96, 96] must be even and coarser than grid.shape [64, 64]" in \
        capsys.readouterr().err


# ---- any grid (resolution-agnostic artifacts) ------------------------------------------

class DuckModel:
    """What pyqg's parameterizations read of a model, on our grid (pyqg 0.7.2's QGModel
    itself cannot be built on a non-square grid): its transforms, wavenumbers, dx, Hi and
    the state's ph, u, v."""

    def __init__(self, sim):
        g, eq = sim.grid, sim.equation
        self.ik, self.il = 1j * g.kx[None, :], 1j * g.ky[:, None]
        self.dx, self.Hi = g.dx, eq.Hi
        self.shape = g.shape
        self.ph = eq.streamfunction(sim.state)[0]
        self.u, self.v = (np.fft.irfft2(s, s=g.shape) for s in eq._velocity_spectra(self.ph))

    def fft(self, f):
        return np.fft.rfft2(f)

    def ifft(self, f_hat):
        return np.fft.irfft2(f_hat, s=self.shape)


@pytest.mark.parametrize("shape, length", [((32, 32), (1e6, 1e6)), ((48, 48), (1e6, 1e6)), ((128, 128), (2e6, 2e6)),
                                           ((256, 256), (1e6, 1e6)), ((64, 96), (1e6, 1.5e6))],
                         ids=["32", "48", "128", "256", "64x96"])
def test_registered_closures_match_pyqg_on_any_grid(shape, length):
    """The shipped artifacts (grid "any") on other grids and a non-square box: the tendency
    of one call equals pyqg's parameterization code (run on a real QGModel where pyqg can
    build one, a duck-typed model of our grid otherwise) to 1e-12."""
    q = 2e-6 * np.random.default_rng(5).standard_normal((2,) + shape)
    for name in EDDY_PLUGINS:
        sim = ours(EDDY, [{"path": name}], **{"grid.shape": list(shape), "grid.length": list(length)})
        sim.set_initial({"q": q})
        sim.start_hooks()
        if shape[0] == shape[1]:
            model = pyqg.QGModel(nx=shape[0], L=length[0], dt=3600.0, log_level=0)
            model.q = sim.fields()["q"][0]
            model._invert()
        else:
            model = DuckModel(sim)
        assert rel(sim.hooks[0](sim, sim.state)[0], pyqg_tendency(PYQG[name](), model)) < 1e-12, name


@pytest.mark.parametrize("name", EDDY_PLUGINS)
def test_qg_closure_member_is_bit_identical_across_batches_and_ensemble_sizes(name):
    """A member's trajectory with a QG closure (BackscatterBiharmonic's layer means
    included) does not depend on the ensemble size or max_batch."""
    q = np.stack([turbulent_q(s) for s in range(5)])
    runs = {}
    for members, max_batch in [(5, 5), (5, 2), (1, 1)]:
        sim = ours(EDDY, [{"path": name, "max_batch": max_batch}], members=members,
                   **({"ensemble.first_member": 3} if members == 1 else {}))
        sim.set_initial({"q": q[3:4] if members == 1 else q})
        sim.advance(10)
        runs[members, max_batch] = sim.state[0 if members == 1 else 3].copy()
    for key, state in runs.items():
        assert np.array_equal(state, runs[5, 5]), key
