"""TorchScript plugin artifacts: export, refusals, batching invariance, closures' physics."""
import json
import math
import os
import pickle
import shutil
import zipfile
from typing import Dict, List

import numpy as np
import pytest
import tomli_w
import torch

from hybridsolver import Simulation, cli
from hybridsolver.hooks import Hook
from hybridsolver.plugin import PluginError, export, read_artifact, resolve
from hybridsolver_plugins.classic import closures
from hybridsolver_plugins.classic.export import manifest as classic_manifest
from hybridsolver_plugins.classic.python_hooks import SmagorinskyHook
from hybridsolver_plugins.classic.registry import backscatter, leith, smagorinsky

TWO_PI = 2 * math.pi


@pytest.fixture
def case64(case):
    """The test case on the 64^2 2*pi grid of the shipped artifacts, with the Smagorinsky plugin."""
    case["grid"]["shape"] = [64, 64]
    case["time"]["dt"] = 2e-3
    case["plugins"] = [{"path": smagorinsky, "every": 1}]
    return case


def _run_cli(tmp_path, case, capsys, *extra):
    path = tmp_path / "case.toml"
    path.write_text(tomli_w.dumps(case))
    code = cli.main(["run", str(path), "--quiet", "--out", str(tmp_path / "run"), *extra])
    return code, capsys.readouterr().err


class Scaled(torch.nn.Module):
    """Test module: ``factor * x`` (factor nan gives a NaN dry run), optionally cropped."""

    def __init__(self, factor=1.0, crop=0):
        super().__init__()
        self.factor, self.crop = factor, crop

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.factor * x[..., self.crop:]


def _export(tmp_path, module=None, name="scaled", **changes):
    """Export a test module with a physical-space manifest (``changes`` override keys)."""
    physical = [{"field": "vorticity", "space": "physical"}]
    manifest = classic_manifest("smagorinsky") | {
        "name": name, "grid": {"shape": [64, 64], "length": [TWO_PI, TWO_PI]}, "inputs": physical,
        "outputs": physical} | changes
    path = str(tmp_path / f"{name}.pt")
    export(module or Scaled(1e-3), manifest, path)
    return path


# ---- acceptance: artifact == Python hook ----------------------------------------------

def test_smagorinsky_artifact_matches_python_hook_over_1000_steps(case64):
    case64["ensemble"]["members"] = 2
    artifact = Simulation.from_case(case64)
    case64["plugins"] = []
    python = Simulation.from_case(case64)
    python.add_hook(SmagorinskyHook(cs=0.17))
    plain = Simulation.from_case(case64)
    for sim in (artifact, python, plain):
        sim.advance(1000)
    wa, wp, w0 = (s.fields()["vorticity"] for s in (artifact, python, plain))
    rel = np.linalg.norm(wa - wp) / np.linalg.norm(wp)
    print(f"\nSmagorinsky artifact vs Python hook, 1000 steps: rel L2 {rel:.2e} "
          f"(closure effect {np.linalg.norm(w0 - wp) / np.linalg.norm(wp):.2f})")
    assert rel < 1e-12
    assert np.linalg.norm(w0 - wp) / np.linalg.norm(wp) > 0.1  # the closure matters


# ---- acceptance: refusals before step 0, exit code 2, both sides named -------------------

def test_refuses_artifact_grid_of_another_size(tmp_path, case64, capsys):
    case64["plugins"][0]["path"] = _export(tmp_path)
    case64["grid"]["shape"] = [128, 128]
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "artifact grid shape [64, 64], case grid.shape [128, 128]" in err
    assert not (tmp_path / "run").exists()


def test_refuses_wrong_equation(tmp_path, case64, capsys):
    case64["plugins"][0]["path"] = _export(tmp_path, equation="kdv")
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "artifact equation 'kdv', case equation.name 'navier_stokes2d'" in err


def test_refuses_unknown_field(tmp_path, case64, capsys):
    inputs = [{"field": "q", "space": "physical"}]
    case64["plugins"][0]["path"] = _export(tmp_path, inputs=inputs)
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "field 'q' is unknown to navier_stokes2d (possible inputs: vorticity, u, v, psi)" in err


def test_refuses_truncated_file(tmp_path, case64, capsys):
    data = open(smagorinsky, "rb").read()
    path = tmp_path / "truncated.pt"
    path.write_bytes(data[:len(data) // 2])
    case64["plugins"][0]["path"] = str(path)
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and f"plugins.0.path: {path}: not a TorchScript archive (truncated" in err


class Weighted(torch.nn.Module):
    """Test module with a tensor in its archive: ``weight * x``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("weight", torch.full((1,), 1e-3, dtype=torch.float64))

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.weight * x


def test_refuses_sha256_mismatch(tmp_path, case64, capsys):
    path = tmp_path / "tampered.pt"
    with zipfile.ZipFile(_export(tmp_path, Weighted())) as src, zipfile.ZipFile(path, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("data/0"):  # one of the module's tensors
                data = bytes([data[0] ^ 1]) + data[1:]
            dst.writestr(info, data)
    case64["plugins"][0]["path"] = str(path)
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "sha256 mismatch: manifest says" in err and "archive content is" in err


def test_refuses_pickle_renamed_pt(tmp_path, case64, capsys):
    path = tmp_path / "weights.pt"
    path.write_bytes(pickle.dumps({"weights": [1.0, 2.0]}))
    case64["plugins"][0]["path"] = str(path)
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "a pickle file, not a TorchScript archive (hybridsolver never unpickles)" in err
    torch.save({"weight": torch.ones(2)}, path)  # torch.save writes a zip of pickles
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "without TorchScript code" in err


def test_refuses_dry_run_of_wrong_shape(tmp_path, case64, capsys):
    case64["plugins"][0]["path"] = _export(tmp_path, Scaled(1.0, crop=32))
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "dry run returned shape (1, 1, 64, 32), manifest and case expect (1, 1, 64, 64)" in err


def test_refuses_dry_run_with_nan(tmp_path, case64, capsys):
    case64["plugins"][0]["path"] = _export(tmp_path, Scaled(float("nan")))
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "dry run returned non-finite values" in err


def test_refuses_bad_plugin_entries(tmp_path, case64, capsys):
    for key, value, message in [("sampler", {"steps": 3}, "plugins.0.sampler.steps: not a sampler setting"),
                                ("path", "no_such_plugin", "no such file or registered plugin"),
                                ("members", "9:12", "selects none of the members"),
                                ("offset", 0.5, "plugins.0.offset: with a step schedule")]:
        entry = {"path": smagorinsky, key: value}
        code, err = _run_cli(tmp_path, case64 | {"plugins": [entry]}, capsys)
        assert code == 2 and message in err, err
    if not torch.cuda.is_available():
        code, err = _run_cli(tmp_path, case64, capsys, "--device", "cuda")
        assert code == 2 and "plugins.0.device: case asks for 'cuda'" in err


def test_manifest_without_required_key_is_refused_at_export(tmp_path):
    manifest = classic_manifest("smagorinsky")
    del manifest["provenance"]
    with pytest.raises(PluginError, match="manifest has no 'provenance'"):
        export(Scaled(), manifest, str(tmp_path / "x.pt"))


# ---- acceptance: batching does not change a member's trajectory -----------------------------

def test_backscatter_member_is_bit_identical_across_batches_and_ensemble_sizes(case64):
    case64["plugins"] = [{"path": backscatter, "every": 2}]
    member = 5
    runs = {}
    for members, max_batch in [(8, 1), (8, 3), (8, 8), (1, 1)]:
        overrides = {"ensemble.members": members, "plugins.0.max_batch": max_batch}
        if members == 1:
            overrides["ensemble.first_member"] = member
        sim = Simulation.from_case(case64, overrides=overrides)
        sim.advance(20)
        runs[(members, max_batch)] = sim.state[member if members == 8 else 0].copy()
    reference = runs[(8, 8)]
    for key, state in runs.items():
        assert np.array_equal(state, reference), key
    case64["plugins"] = [{"path": smagorinsky, "every": 2}]
    deterministic = Simulation.from_case(case64, overrides={"ensemble.members": 8})
    deterministic.advance(20)
    assert not np.allclose(deterministic.state[member], reference)  # the noise acts


# ---- the classic closures' physics --------------------------------------------------------

def _random_vorticity(shape=(64, 64), seed=3):
    """A smooth random field without Nyquist modes, (ny, nx)."""
    rng = np.random.default_rng(seed)
    w_hat = np.fft.rfft2(rng.standard_normal(shape))
    ky = np.fft.fftfreq(shape[0], 1 / shape[0])[:, None]
    kx = np.arange(shape[1] // 2 + 1)[None, :]
    band = (np.abs(ky) < shape[0] / 3) & (kx < shape[1] / 3)
    return np.fft.irfft2(w_hat * np.exp(-(kx**2 + ky**2) / 50.0) * band, s=shape) * 20


def _host_tendency(path, w, length=(TWO_PI, TWO_PI)):
    """The physical vorticity tendency (ny, nx) the artifact ``path`` gives through the host
    for the physical vorticity ``w`` (ny, nx) on a periodic box ``length``."""
    case = {"equation": {"name": "navier_stokes2d", "viscosity": 1e-3},
            "grid": {"shape": list(w.shape), "length": list(length)},
            "initial_condition": {"type": "taylor_green"}, "time": {"scheme": "cn_rk4", "dt": 1e-3, "steps": 1},
            "plugins": [{"path": path}]}
    sim = Simulation.from_case(case)
    sim.set_initial({"vorticity": w[None]})
    sim.start_hooks()
    return sim.equation.to_fields(sim.hooks[0](sim, sim.state))["vorticity"][0]


def _derivative(f_hat, shape, length, x=0, y=0):
    """Physical d^(x+y) f / dx^x dy^y of a spectrum (rfft2), Nyquist wavenumbers zero."""
    ky = 2 * np.pi / length[0] * np.fft.fftfreq(shape[0], 1 / shape[0])[:, None]
    kx = 2 * np.pi / length[1] * np.arange(shape[1] // 2 + 1)[None, :]
    ky[shape[0] // 2], kx[:, -1] = 0.0, 0.0
    return np.fft.irfft2((1j * kx) ** x * (1j * ky) ** y * f_hat, s=shape)


def test_smagorinsky_dissipates_energy_at_the_rate_nu_t_s2():
    shape, length = (64, 48), (TWO_PI, 1.5 * TWO_PI)
    w = _random_vorticity(shape)
    t = _host_tendency(smagorinsky, w, length)
    k2 = ((2 * np.pi / length[0] * np.fft.fftfreq(shape[0], 1 / shape[0])[:, None]) ** 2
          + (2 * np.pi / length[1] * np.arange(shape[1] // 2 + 1)[None, :]) ** 2)
    psi_hat = np.fft.rfft2(w) / np.where(k2 > 0, k2, np.inf)
    s11 = _derivative(psi_hat, shape, length, 1, 1)
    s12 = 0.5 * (_derivative(psi_hat, shape, length, 0, 2) - _derivative(psi_hat, shape, length, 2, 0))
    s_norm = 2 * np.sqrt(s11**2 + s12**2)
    delta = np.sqrt(length[0] / shape[0] * length[1] / shape[1])
    nu = (0.17 * delta) ** 2 * s_norm
    energy_rate = np.mean(np.fft.irfft2(psi_hat, s=shape) * t)  # dE/dt = <psi d(omega)/dt>
    assert energy_rate < 0
    np.testing.assert_allclose(energy_rate, -np.mean(nu * s_norm**2), rtol=1e-10)


class TwiceStrain(torch.nn.Module):
    """Test module: the stress ``2 S`` of a unit eddy viscosity."""

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return 2.0 * x


def test_host_curl_divergence_of_a_unit_viscosity_stress_is_the_laplacian(tmp_path):
    """With Smagorinsky's inputs and outputs (strain in, stress out) and nu = 1, the host's
    derivatives give lap(omega), on a non-square box."""
    shape, length = (32, 48), (TWO_PI, 2 * TWO_PI)
    path = str(tmp_path / "twice.pt")
    export(TwiceStrain(), classic_manifest("smagorinsky") | {"name": "twice"}, path)
    w = _random_vorticity(shape)
    w_hat = np.fft.rfft2(w)
    expected = _derivative(w_hat, shape, length, 2, 0) + _derivative(w_hat, shape, length, 0, 2)
    np.testing.assert_allclose(_host_tendency(path, w, length), expected, atol=1e-10 * np.abs(expected).max())


def test_leith_dissipates_enstrophy_at_the_rate_nu_grad_omega2():
    shape, length = (48, 64), (0.75 * TWO_PI, TWO_PI)
    w = _random_vorticity(shape)
    t = _host_tendency(leith, w, length)
    w_hat = np.fft.rfft2(w)
    grad = np.hypot(_derivative(w_hat, shape, length, 1, 0), _derivative(w_hat, shape, length, 0, 1))
    nu = (length[0] / shape[0] * length[1] / shape[1]) ** 1.5 * grad
    np.testing.assert_allclose(np.mean(w * t), -np.mean(nu * grad**2), rtol=1e-10)


def test_backscatter_noise_is_smoothed_unit_variance_and_zero_without_strain():
    shape = (64, 64)
    module = closures.StochasticBackscatter(cs=0.17, c_back=0.5)
    eta = torch.randn((8,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    smoothed = torch.fft.irfft2(torch.fft.rfft2(eta) * module.smoothing_filter(64, 64, TWO_PI, TWO_PI), s=shape)
    assert abs(smoothed.std().item() - 1) < 0.1
    assert np.all(_host_tendency(backscatter, np.zeros(shape)) == 0.0)
    assert np.abs(_host_tendency(backscatter, _random_vorticity(shape))).max() > 0


# ---- swapping, inspection, summary ---------------------------------------------------------

def test_registered_names_resolve_and_inspect_prints_the_manifest(capsys):
    assert resolve("leith") == resolve(os.path.join(os.path.dirname(smagorinsky), "leith.pt"))
    assert cli.main(["plugins", "inspect", "backscatter"]) == 0
    out = capsys.readouterr().out
    assert "sha256 verified" in out and json.loads(out.split("\n", 1)[1])["noise"][0]["name"] == "eta"


def test_swap_plugin_from_the_command_line_and_summary_reports_it(tmp_path, case64, capsys):
    case64["time"]["steps"] = 6
    code, _ = _run_cli(tmp_path, case64, capsys, "--set", "plugins.0.path=leith", "--set", "plugins.0.every=2")
    assert code == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    leith = summary["plugins"]["leith"]
    assert leith["calls"] == 3 and 0 < leith["share"] < 1 and leith["mean_ms"] > 0
    assert leith["bytes_to_device"] == 0  # CPU inference moves nothing


def test_export_round_trip_and_manifest_contents(tmp_path):
    path = _export(tmp_path)
    manifest = read_artifact(path)
    assert len(manifest["sha256"]) == 64 and manifest["name"] == "scaled"
    copy = tmp_path / "renamed.pt"
    shutil.copy(path, copy)  # torch names the archive's top folder after the file
    assert read_artifact(str(copy))["sha256"] == manifest["sha256"]


# ---- plugins on 1D and finite-difference hosts ----------------------------------------

def u_manifest(equation, shape, length, space):
    """Manifest of a test closure of field ``u`` (every 3 steps) in ``space``."""
    fields = [{"field": "u", "space": space}]
    return {"name": "scaled", "version": "1.0", "kind": "closure", "callsite": "tendency", "equation": equation,
            "grid": {"shape": shape, "length": length}, "inputs": fields, "outputs": fields, "dtype": "float64",
            "devices": ["cpu"], "every": 3, "stochastic": False, "noise": [], "sampler": {},
            "provenance": {"trained": False}}


class ScaledTendency(Hook):
    """Python twin of ``Scaled``: tendency ``factor * u`` in physical space."""

    callsite = "tendency"

    def __init__(self, factor):
        super().__init__(every=3)
        self.factor = factor

    def __call__(self, sim, state, previous=None):
        return sim.equation.from_fields({"u": self.factor * sim.equation.to_fields(state)["u"]})


@pytest.mark.parametrize("name,discretization,scheme,shape,length", [
    ("kdv", "spectral", "etdrk4", [200], [10.0]),
    ("kdv", "finite_difference", "rk4", [200], [10.0]),
    ("burgers2d", None, "heun", [32, 32], [1.0, 1.0]),
])
def test_physical_artifact_matches_python_hook_on_kdv_and_burgers(tmp_path, name, discretization, scheme, shape,
                                                                  length):
    """A physical-space tendency artifact (``0.5 u``, every 3 steps) on 1D spectral and
    finite-difference states gives the trajectory of the same tendency as a Python hook."""
    path = str(tmp_path / "scaled.pt")
    export(Scaled(0.5), u_manifest(name, shape, length, "physical"), path)
    equation = {"name": name} | ({"discretization": discretization} if discretization else {})
    center = [7.5] if name == "kdv" else [0.3, 0.3]
    case = {"equation": equation, "grid": {"shape": shape, "length": length},
            "initial_condition": {"type": "random_packet", "amplitude": [1.0, 0.01], "width": [1.0, 0.01],
                                  "center": center},
            "time": {"scheme": scheme, "dt": 1e-5, "steps": 30}, "ensemble": {"members": 2}}
    with_artifact = Simulation.from_case(case, {"plugins": [{"path": path}]})
    with_hook = Simulation.from_case(case)
    with_hook.add_hook(ScaledTendency(0.5))
    plain = Simulation.from_case(case)
    for sim in (with_artifact, with_hook, plain):
        sim.advance(30)
    u = [sim.fields()["u"] for sim in (with_artifact, with_hook, plain)]
    assert np.abs(u[0] - u[1]).max() <= 1e-14 * np.abs(u[1]).max()
    assert np.abs(u[0] - u[2]).max() > 1e-6 * np.abs(u[2]).max()  # the tendency acted


def test_spectral_artifact_is_refused_by_a_finite_difference_host(tmp_path):
    path = str(tmp_path / "scaled.pt")
    export(Scaled(0.5), u_manifest("burgers2d", [32, 32], [1.0, 1.0], "spectral"), path)
    case = {"equation": {"name": "burgers2d"}, "grid": {"shape": [32, 32]},
            "initial_condition": {"type": "random_packet", "amplitude": [1.0, 0.01], "width": [0.2, 1e-4],
                                  "center": [0.3, 0.3]},
            "time": {"dt": 1e-4, "steps": 3}, "plugins": [{"path": path}]}
    with pytest.raises(PluginError, match="physical state"):
        Simulation.from_case(case)
    manifest = u_manifest("burgers2d", [32, 32], [1.0, 1.0], "physical")
    export(Scaled(0.5), manifest | {"inputs": [manifest["inputs"][0] | {"derivative": "x"}]}, path)
    with pytest.raises(PluginError, match="'derivative' or 'form' need a spectral host; burgers2d has a physical"):
        Simulation.from_case(case)


# ---- any grid; derivative inputs and operator outputs ---------------------------------------

@pytest.mark.parametrize("shape, length", [((32, 32), (TWO_PI, TWO_PI)), ((48, 48), (TWO_PI, TWO_PI)),
                                           ((128, 128), (TWO_PI, TWO_PI)), ((256, 256), (TWO_PI, TWO_PI)),
                                           ((32, 64), (TWO_PI, 2 * TWO_PI))], ids=["32", "48", "128", "256", "32x64"])
def test_registered_classic_closures_run_on_any_grid(case, shape, length):
    """The shipped artifacts (grid "any") on other grids and a non-square box: Smagorinsky
    equals the numpy Python hook to 1e-12 after 5 steps; Leith and the backscatter run."""
    case["grid"] = {"shape": list(shape), "length": list(length)}
    case["ensemble"]["members"] = 2
    runs = {}
    for name in ("smagorinsky", "leith", "backscatter", "python"):
        case["plugins"] = [] if name == "python" else [{"path": name}]
        sim = Simulation.from_case(case)
        if name == "python":
            sim.add_hook(SmagorinskyHook(cs=0.17))
        sim.advance(5)
        runs[name] = sim.state.copy()
        assert np.isfinite(runs[name]).all(), name
    assert np.linalg.norm(runs["smagorinsky"] - runs["python"]) < 1e-12 * np.linalg.norm(runs["python"])
    assert not np.allclose(runs["backscatter"], runs["smagorinsky"])  # the noise acts


@pytest.mark.parametrize("entry, message", [
    ({"derivative": "xz"}, "'derivative' should be a monomial of x and y"),
    ({"derivative": {"xx": "1"}}, "'derivative' should be a monomial of x and y"),
    ({"form": "stress"}, "'form' is for outputs"),
])
def test_manifest_refuses_bad_derivative_inputs(tmp_path, entry, message):
    with pytest.raises(PluginError, match=message):
        _export(tmp_path, inputs=[{"field": "psi", "space": "physical"} | entry])


def test_manifest_refuses_bad_operator_outputs(tmp_path, case64, capsys):
    physical = {"field": "vorticity", "space": "physical"}
    with pytest.raises(PluginError, match="manifest 'outputs.form' is 'flux'"):
        _export(tmp_path, outputs=[physical | {"form": "flux"}])
    with pytest.raises(PluginError, match="has both 'form' and 'derivative'"):
        _export(tmp_path, outputs=[physical | {"form": "stress", "derivative": "x"}])
    case64["plugins"][0]["path"] = _export(tmp_path, outputs=[physical | {"derivative": "x"}], callsite="post_step",
                                           kind="refiner")
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "outputs with 'derivative' or 'form' need callsite tendency" in err
    case64["plugins"][0]["path"] = _export(tmp_path, inputs=[{"field": "vorticity", "space": "spectral",
                                                               "derivative": "x"}])
    code, err = _run_cli(tmp_path, case64, capsys)
    assert code == 2 and "entries with 'derivative' or 'form' are physical, field 'vorticity' is spectral" in err
