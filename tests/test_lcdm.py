"""plugins/lcdm: the training data, the diffusion closures' plugin contract, training and evaluation."""
import os

import numpy as np
import pytest
import torch
import xarray as xr
from interruptions import interrupt_advance

from hybridsolver import Simulation, fft
from hybridsolver.grid import Grid, coarsen
from hybridsolver.plugin import export
from hybridsolver_plugins.lcdm import evaluate, generate, registry, train
from hybridsolver_plugins.lcdm.data import load_pairs
from hybridsolver_plugins.lcdm.export import manifest as lcdm_manifest
from hybridsolver_plugins.lcdm.models import LatentCDM

ROOT = os.path.join(os.path.dirname(__file__), os.pardir)
DNS64 = os.path.join(ROOT, "cases", "kolmogorov_unit_torus64.toml")
REDUCED = os.path.join(ROOT, "cases", "kolmogorov64_lcdm.toml")


def relative(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


# ---- acceptance 1: the recorded pairs satisfy the vorticity equation --------------------------

def test_recorded_pairs_satisfy_the_vorticity_equation():
    """(omega(t + dt) - omega(t)) / dt = nu lap(omega_mid) + f + H on the coarse grid."""
    sim = Simulation.from_case(DNS64, {"ensemble.members": 2})
    sim.advance(300)
    coarse = (32, 32)
    omega0, closure = generate.record(sim, coarse)
    noise = fft.transforms(coarse).to_physical(coarsen(sim.equation.noise_increment(sim.step, sim.dt), coarse))
    sim.advance(1)
    omega1, _ = generate.record(sim, coarse)
    grid, tr = Grid(coarse, (1.0, 1.0)), fft.transforms(coarse)
    nu = sim.equation.viscosity

    def lap(w):
        return tr.to_physical(-grid.k2 * tr.to_spectral(w))

    forcing = tr.to_physical(coarsen(sim.equation.forcing_hat[None], coarse))
    dwdt = (omega1 - omega0) / sim.dt
    # the solver's step: Crank-Nicolson on (omega0, omega1 - beta dW), then + beta dW
    exact = relative(dwdt, closure + forcing + nu * lap(0.5 * (omega0 + omega1 - noise)))
    midpoint = relative(dwdt, closure + forcing + nu * lap(0.5 * (omega0 + omega1)))
    explicit = relative(dwdt, closure + forcing + nu * lap(omega0))
    without_noise = relative(dwdt, closure - noise / sim.dt + forcing + nu * lap(0.5 * (omega0 + omega1)))
    assert exact < 1e-10
    assert midpoint < 1e-4 and explicit < 1e-2  # discretisation errors: O(beta nu k^2 dW) and O(dt)
    assert without_noise > 10 * midpoint  # H carries the stochastic forcing of its step


@pytest.fixture
def short_records(monkeypatch):
    """Record from t = 0.2 to 0.5 (test trajectories to 0.6) instead of 20..40 (50)."""
    monkeypatch.setattr(generate, "RECORD_START", 0.2)
    monkeypatch.setattr(generate, "TRAIN_END", 0.5)
    monkeypatch.setattr(generate, "TEST_END", 0.6)


def read_batches(folder):
    return {name: xr.load_dataset(os.path.join(folder, name)) for name in sorted(os.listdir(folder))
            if name.endswith(".nc")}


def test_generation_writes_train_and_test_batches(tmp_path, short_records):
    paths = generate.generate(str(tmp_path), 5, 2, 2, DNS64, progress=False)
    assert [os.path.basename(p) for p in paths] == ["batch_000-001.nc", "batch_003-004.nc", "batch_002-002.nc"]
    batches = read_batches(tmp_path)
    assert batches["batch_000-001.nc"].vorticity.shape == (2, 4, 64, 64)  # t = 0.2 .. 0.5
    assert batches["batch_003-004.nc"].vorticity.shape == (2, 5, 64, 64)  # test: to 0.6
    omega, closure, trajectories = load_pairs(str(tmp_path), "train")
    assert trajectories == [0, 1, 2] and omega.shape == closure.shape == (9, 1, 64, 64)


def test_interrupted_generation_resumes_bit_identically(tmp_path, short_records, monkeypatch):
    generate.generate(str(tmp_path / "whole"), 3, 1, 2, DNS64, checkpoint_every=100, progress=False)
    restore = interrupt_advance(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        generate.generate(str(tmp_path / "resumed"), 3, 1, 2, DNS64, checkpoint_every=100, progress=False)
    assert os.path.exists(tmp_path / "resumed" / "batch_000-001.ckpt.npz")
    restore()
    generate.generate(str(tmp_path / "resumed"), 3, 1, 2, DNS64, checkpoint_every=100, progress=False)
    whole, resumed = read_batches(tmp_path / "whole"), read_batches(tmp_path / "resumed")
    assert list(whole) == list(resumed)
    for name in whole:
        for var in ("vorticity", "H"):
            assert np.array_equal(whole[name][var].values, resumed[name][var].values), (name, var)
    assert not any(name.endswith(".npz") for name in os.listdir(tmp_path / "resumed"))


def test_generation_refuses_a_folder_made_with_other_arguments(tmp_path, short_records, capsys):
    generate.generate(str(tmp_path), 3, 1, 2, DNS64, progress=False)
    code = generate.main(["--out", str(tmp_path), "--trajectories", "4", "--test", "1", "--case", DNS64, "--quiet"])
    assert code == 2
    assert "trajectories = 3, now 4" in capsys.readouterr().err


# ---- the closure as a plugin ------------------------------------------------------------------

def fake_record(model):
    """The ``model.pt`` fields :func:`plugins.lcdm.export.manifest` reads, for an untrained model."""
    return {"args": {"model": "joint", "config": "cpu", "epochs": 0, "batch": 1, "lr": 0.0, "seed": 0, "limit": None},
            "config": model.config, "torch": torch.__version__, "trajectories": [], "pairs": 0,
            "omega_scale": model.omega_scale, "h_scale": model.h_scale, "log": []}


@pytest.fixture(scope="module")
def untrained_artifact(tmp_path_factory):
    torch.manual_seed(0)
    model = LatentCDM(omega_scale=1.0, h_scale=0.2)
    meta = {"case": "test", "coarsening": "spectral truncation", "record_every_steps": 100}
    path = str(tmp_path_factory.mktemp("lcdm") / "lcdm.pt")
    export(model.sampler().eval(), lcdm_manifest("lcdm", "lcdm", 16, fake_record(model), meta, {}), path)
    return path


def reduced(artifact, **plugin):
    """The reduced closed-loop case with a random initial field and ``artifact``."""
    import tomllib

    with open(REDUCED, "rb") as f:
        case = tomllib.load(f)
    case["initial_condition"] = {"type": "gaussian_random_field", "alpha": 2.5, "tau": 7.0}
    case["plugins"] = [{"path": artifact, "every": 5} | plugin]
    return case


@pytest.fixture(params=["untrained", "lcdm", "lcdm_paper", "pcdm"])
def closure_artifact(request, untrained_artifact):
    """An untrained L-CDM export, and the shipped L-CDM (both configurations) and P-CDM artifacts."""
    return untrained_artifact if request.param == "untrained" else getattr(registry, request.param)


@pytest.mark.parametrize("workers", [1, 2])
def test_closure_member_is_bit_identical_across_batches_and_ensemble_sizes(closure_artifact, workers):
    """With ``workers = 2`` (the main job's setting: chunks of 4 here run two at a time,
    one torch thread each) as with one call per chunk."""
    member, runs = 5, {}
    for members, max_batch, repeat in [(8, 8, 0), (8, 1, 0), (8, 3, 0), (1, 1, 0), (8, 8, 1), (8, None, 0)]:
        overrides = {"ensemble.members": members, "plugins.0.workers": workers}
        if max_batch:
            overrides["plugins.0.max_batch"] = max_batch
        if members == 1:
            overrides["ensemble.first_member"] = member
        sim = Simulation.from_case(reduced(closure_artifact), overrides)
        sim.advance(10)
        runs[(members, max_batch, repeat)] = sim.state[member if members == 8 else 0].copy()
    for key, state in runs.items():
        assert np.array_equal(state, runs[(8, 8, 0)]), key


def test_ensemble_mean_strategy_averages_the_samples(untrained_artifact):
    """samples = S: one call returns the mean of S samples (the sampler key reaches the
    noise shapes and the module)."""
    fields = {}
    for samples in (1, 4):
        sim = Simulation.from_case(reduced(untrained_artifact, sampler={"samples": samples}), {"ensemble.members": 2})
        hook = sim.hooks[0]
        sim.start_hooks()
        fields[samples] = hook(sim, sim.state)
    spread = relative(fields[4], fields[1])
    assert 0 < spread < 1  # different samples, but the mean of four keeps the per-sample one's scale


# ---- training and evaluation ------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """Three 64^2 trajectories recorded from t = 0.2 (test trajectory: 2) and one trained
    joint model (one epoch of minibatches of 4)."""
    folder = tmp_path_factory.mktemp("data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(generate, "RECORD_START", 0.2)
        mp.setattr(generate, "TRAIN_END", 0.6)
        mp.setattr(generate, "TEST_END", 0.8)
        mp.setattr(generate, "RECORD_EVERY", 50)
        generate.generate(str(folder / "data"), 3, 1, 2, DNS64, progress=False)
    return str(folder / "data")


def test_training_resumes_bit_identically(tiny_dataset, tmp_path, monkeypatch):
    whole = train.train("joint", tiny_dataset, str(tmp_path / "whole"), epochs=2, batch=4, progress=False)
    original, calls = train.phase_loss, {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 5:  # in the second epoch (3 minibatches per epoch)
            raise KeyboardInterrupt
        return original(*args)

    monkeypatch.setattr(train, "phase_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train("joint", tiny_dataset, str(tmp_path / "resumed"), epochs=2, batch=4, progress=False)
    monkeypatch.setattr(train, "phase_loss", original)
    resumed = train.train("joint", tiny_dataset, str(tmp_path / "resumed"), epochs=2, batch=4, progress=False)
    a, b = torch.load(whole, weights_only=False), torch.load(resumed, weights_only=False)
    assert a["log"] == [{**line, "seconds": a["log"][i]["seconds"]} for i, line in enumerate(b["log"])]
    for key, value in a["state"].items():
        assert torch.equal(value, b["state"][key]), key


def test_offline_evaluation_is_reproducible_with_its_seed(tiny_dataset, tmp_path):
    path = train.train("two-phase", tiny_dataset, str(tmp_path / "run"), epochs=1, batch=4, progress=False)
    model, _ = train.load_model(path)
    first = evaluate.offline(model, tiny_dataset, pairs=4, seed=3)
    assert evaluate.offline(model, tiny_dataset, pairs=4, seed=3) == first
    assert evaluate.offline(model, tiny_dataset, pairs=4, seed=4)["latent"] != first["latent"]
    assert set(first) >= {"reconstruction", "latent", "physical"}


def test_train_without_data_exits_2(tmp_path, capsys):
    assert train.main(["--model", "joint", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "run")]) == 2
    assert "no dataset here" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_cuda_without_a_gpu_exits_2(tiny_dataset, tmp_path, capsys):
    args = ["--model", "joint", "--data", tiny_dataset, "--out", str(tmp_path / "run"), "--device", "cuda"]
    assert train.main(args) == 2
    assert "--device cuda" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_offline_metrics_and_paired_difference():
    """D_RE and D_MSE as the paper defines them, per row; the paired difference of two models."""
    rng = np.random.default_rng(0)
    truth = rng.standard_normal((5, 1, 8, 8))
    estimate = truth.copy()
    estimate[0] *= 1.1  # 10% off in row 0 only
    m = evaluate.metrics(truth, estimate)
    assert m["D_RE"] == pytest.approx(0.1 / 5)
    assert m["D_MSE"] == pytest.approx(0.01 * (truth[0] ** 2).sum() / truth.size)
    diff, error = evaluate.paired_difference([0.1, 0.2, 0.3], [0.2, 0.2, 0.2])
    assert diff == pytest.approx(-0.0) and error == pytest.approx(0.1 / np.sqrt(3))
