"""The SNS family's DDPM noise schedules (plugins/sns/schedule.py): the cosine and linear
tables, the forward marginal and the ancestral reverse step against the closed-form
Gaussian posterior."""
import json
import math
import os
import signal
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch

from hybridsolver_plugins.sns.schedule import NoiseSchedule


def test_the_cosine_schedule_is_f_of_s_over_f_of_0_with_only_the_last_beta_clipped():
    schedule = NoiseSchedule.cosine(1000)
    s = torch.arange(1001, dtype=torch.float64)
    f = torch.cos((s / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2
    clipped = torch.nonzero(schedule.beta >= 0.999).flatten().tolist()
    assert clipped == [1000]  # f(S) = 0 gives beta = 1 there only
    assert torch.allclose(schedule.alpha_bar[:1000], f[:1000] / f[0], rtol=1e-12, atol=0)
    assert math.isclose(schedule.alpha_bar[1000] / schedule.alpha_bar[999], 0.001, rel_tol=1e-9)
    assert torch.all(schedule.alpha_bar[1:] < schedule.alpha_bar[:-1]) and schedule.alpha_bar[0] == 1.0


def test_the_linear_schedule_scales_ho_s_range_to_its_levels():
    for levels in (200, 1000):
        schedule = NoiseSchedule.linear(levels)
        scale = 1000 / levels
        assert math.isclose(schedule.beta[1], 1e-4 * scale) and math.isclose(schedule.beta[-1], 0.02 * scale)
        step = torch.full((levels - 1,), 0.0199 * scale / (levels - 1), dtype=torch.float64)
        assert torch.allclose(schedule.beta[2:] - schedule.beta[1:-1], step)
    # the scaling keeps the end of the forward process as noisy: alpha_bar_S ~ exp(-sum beta)
    ends = [float(NoiseSchedule.linear(n).alpha_bar[-1]) for n in (200, 1000)]
    assert ends[1] < 1e-4 and ends[0] < 1e-4


def test_the_posterior_std_is_the_gaussian_posterior_s_and_zero_at_the_last_step():
    schedule = NoiseSchedule.cosine(50)
    a, b = schedule.alpha_bar, schedule.beta
    assert schedule.sigma[1] == 0.0
    for s in (2, 10, 50):
        # Var[x^{s-1} | x^s, x] of the joint Gaussian: x^{s-1} = sqrt(a_{s-1}) x + sqrt(1 - a_{s-1}) e1,
        # x^s = sqrt(alpha_s) x^{s-1} + sqrt(beta_s) e2
        var_prev, cov = 1 - a[s - 1], math.sqrt(1 - b[s]) * (1 - a[s - 1])
        posterior = var_prev - cov ** 2 / (1 - a[s])
        assert math.isclose(schedule.sigma[s] ** 2, posterior, rel_tol=1e-10)


@pytest.mark.parametrize("schedule", [NoiseSchedule.cosine(100), NoiseSchedule.linear(40)], ids=["cosine", "linear"])
def test_the_reverse_step_with_the_exact_noise_is_the_posterior_mean_and_ends_at_the_clean_field(schedule):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 8, 8, generator=generator, dtype=torch.float64)
    S = schedule.levels
    level = torch.full((3,), S)
    xs = schedule.noise(x, level, torch.randn(x.shape, generator=generator, dtype=torch.float64))
    a, alpha, b = schedule.alpha_bar, schedule.alpha, schedule.beta
    for s in range(S, 0, -1):
        level = torch.full((3,), s)
        eps = (xs - a[s].sqrt() * x) / (1 - a[s]).sqrt()  # the exact noise of x^s
        mean = schedule.reverse_step(xs, level, eps, torch.zeros_like(x))
        posterior_mean = (a[s - 1].sqrt() * b[s] * x + alpha[s].sqrt() * (1 - a[s - 1]) * xs) / (1 - a[s])
        assert torch.allclose(mean, posterior_mean, rtol=0, atol=1e-10)
        xs = schedule.reverse_step(xs, level, eps, torch.randn(x.shape, generator=generator, dtype=torch.float64))
    assert torch.allclose(xs, x, rtol=0, atol=1e-10)


def test_the_forward_marginal_per_row_level_and_float32_fields():
    schedule = NoiseSchedule.cosine(1000)
    x, eps = torch.ones(2, 4, dtype=torch.float32), torch.full((2, 4), 2.0, dtype=torch.float32)
    out = schedule.noise(x, torch.tensor([0, 500]), eps)
    a = float(schedule.alpha_bar[500])
    assert out.dtype == torch.float32 and torch.equal(out[0], x[0])
    assert torch.allclose(out[1], torch.full((4,), math.sqrt(a) + 2 * math.sqrt(1 - a)), rtol=1e-6)


def test_the_schedule_scripts_and_refuses_bad_tables():
    scripted = torch.jit.script(NoiseSchedule.cosine(10))
    x = torch.zeros(1, 3)
    assert torch.equal(scripted.noise(x, torch.tensor([10]), torch.ones(1, 3)),
                       NoiseSchedule.cosine(10).noise(x, torch.tensor([10]), torch.ones(1, 3)))
    with pytest.raises(ValueError, match=r"beta\[0\] = 0"):
        NoiseSchedule(torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        NoiseSchedule(torch.tensor([0.0, 1.0]))


def _unet(cond_dim=0):
    from hybridsolver_plugins.sns.unet import UNet

    torch.manual_seed(0)
    return UNet(3, 2, widths=(8, 16, 16), blocks=1, cond_dim=cond_dim).double().eval()


def test_the_unet_keeps_the_resolution_and_commutes_with_periodic_shifts():
    net = _unet()
    x = torch.randn(2, 3, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
        skips, bottleneck = net.encode(x)
        assert out.shape == (2, 2, 16, 16) and bottleneck.shape == (2, 16, 4, 4)
        assert [s.shape[-1] for s in skips] == [16, 8]
        for shift in [(4, 0), (0, 8), (-4, 12)]:  # multiples of 2^(levels - 1) = 4
            shifted = net(torch.roll(x, shift, dims=(-2, -1)))
            assert torch.allclose(shifted, torch.roll(out, shift, dims=(-2, -1)), atol=1e-12)
        # a one-point shift is not a symmetry of the stride-2 levels
        assert not torch.allclose(net(torch.roll(x, 1, dims=-1)), torch.roll(out, 1, dims=-1), atol=1e-6)


def test_the_unet_s_decoder_conditioning_changes_each_sample_by_its_own_vector_and_scripts():
    net = _unet(cond_dim=5)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cond = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = net(x, cond)
        other = cond.clone()
        other[1] += 1.0
        changed = net(x, other)
        assert torch.equal(changed[0], base[0]) and not torch.allclose(changed[1], base[1])
        assert torch.allclose(torch.jit.script(net)(x, cond), base, atol=1e-12)


# ---- the data ---------------------------------------------------------------------------------

KOLMOGOROV = os.path.join(os.path.dirname(__file__), os.pardir, "cases", "kolmogorov_2pi.toml")
SMALL = {"dns": 64, "trajectories": 3, "test": 1, "snapshots": 4, "batch": 2, "case": KOLMOGOROV,
         "checkpoint_every": 6, "progress": False, "spin_up": 10, "coarse": (32, 32)}


def _read(folder):
    import xarray as xr

    return {name: xr.load_dataset(os.path.join(folder, name))["vorticity"].values
            for name in sorted(os.listdir(folder)) if name.endswith(".nc")}


def test_the_records_are_the_truncated_dns_of_each_member_alone(tmp_path):
    from hybridsolver import Simulation
    from hybridsolver.grid import coarsen
    from hybridsolver_plugins.sns import generate

    paths = generate.generate(str(tmp_path), **SMALL)
    assert [os.path.basename(p) for p in paths] == ["batch_000-001.nc", "batch_002-002.nc"]
    records = _read(tmp_path)
    assert records["batch_000-001.nc"].shape == (2, 4, 32, 32)
    sim = Simulation.from_case(KOLMOGOROV, generate.dns_overrides(64) | {"ensemble.members": 1,
                                                                        "ensemble.first_member": 1})
    sim.advance(10)
    for j in range(4):
        expected = generate.fft.transforms((32, 32)).to_physical(coarsen(sim.state, (32, 32)))[0]
        assert np.array_equal(records["batch_000-001.nc"][1, j], expected.astype(np.float32)), j
        sim.advance(2)
    assert sim.equation.viscosity == 1e-4
    from hybridsolver_plugins.sns.data import load_vorticity

    train, times, length = load_vorticity(str(tmp_path), "train")
    test, _, _ = load_vorticity(str(tmp_path), "test")
    assert train.shape == (2, 4, 32, 32) and test.shape == (1, 4, 32, 32)
    assert np.allclose(times, [0.01, 0.012, 0.014, 0.016]) and np.allclose(length, 2 * np.pi)
    assert np.array_equal(train, records["batch_000-001.nc"])


def test_an_interrupted_generation_resumes_bit_identically_and_other_arguments_are_refused(tmp_path, monkeypatch,
                                                                                          capsys):
    from interruptions import interrupt_advance

    from hybridsolver_plugins.sns import generate

    generate.generate(str(tmp_path / "whole"), **SMALL)
    restore = interrupt_advance(monkeypatch, 4)
    with pytest.raises(KeyboardInterrupt):
        generate.generate(str(tmp_path / "resumed"), **SMALL)
    assert os.path.exists(tmp_path / "resumed" / "batch_000-001.ckpt.npz")
    restore()
    generate.generate(str(tmp_path / "resumed"), **SMALL)
    whole, resumed = _read(tmp_path / "whole"), _read(tmp_path / "resumed")
    assert list(whole) == list(resumed) and all(np.array_equal(whole[k], resumed[k]) for k in whole)
    assert not any(name.endswith(".npz") for name in os.listdir(tmp_path / "resumed"))
    code = generate.main(["--out", str(tmp_path / "whole"), "--dns", "64", "--trajectories", "4", "--quiet"])
    assert code == 2 and "trajectories = 3, now 4" in capsys.readouterr().err


def test_the_energy_spectrum_of_one_mode_is_its_kinetic_energy_in_its_shell():
    from hybridsolver_plugins.flow_statistics import energy_spectrum, log_spectral_rmse

    n, L = 32, 2 * np.pi
    x = np.arange(n) * L / n
    X, Y = np.meshgrid(x, x)
    # psi = sin(3x + 4y): |k| = 5, omega = -lap psi = 25 psi, u = (-dpsi/dy, dpsi/dx), <|u|^2>/2 = 25/4
    omega = 25 * np.sin(3 * X + 4 * Y)
    k, E = energy_spectrum(np.stack([omega, 2 * omega])[None], (L, L))
    assert k[5] == 5.0 and math.isclose(E[5], (25 / 4 + 4 * 25 / 4) / 2, rel_tol=1e-12)
    assert np.allclose(np.delete(E, 5), 0.0, atol=1e-20)
    assert log_spectral_rmse(E + 1, E + 1) == 0.0 and math.isclose(log_spectral_rmse(10 * (E + 1), E + 1), 1.0)


# ---- the pointwise UNet surrogate and its training --------------------------------------------

TINY = {"widths": [4, 8, 8], "blocks": 1, "batch": {"unet": 2, "thermalizer": 2, "sns": 2, "acdm": 2},
        "steps": {"unet": 8, "thermalizer": 8, "sns": 8, "acdm": 8}, "acdm_levels": 25}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A 3-trajectory dataset of 8 snapshots of 32^2 (64^2 DNS)."""
    from hybridsolver_plugins.sns import generate

    folder = str(tmp_path_factory.mktemp("sns_data"))
    generate.generate(folder, **(SMALL | {"snapshots": 8}))
    return folder


def test_the_curriculum_unrolls_one_to_four_steps_in_quarters():
    from hybridsolver_plugins.sns.surrogate import curriculum

    assert [curriculum(step, 8) for step in range(8)] == [1, 1, 2, 2, 3, 3, 4, 4]
    assert curriculum(0, 3) == 1 and curriculum(2, 3) == 3


def test_the_unrolled_loss_follows_the_model_s_own_predictions():
    from hybridsolver_plugins.sns.surrogate import Surrogate, unrolled_loss

    model = Surrogate(4.0, 0.5, [4, 8, 8], 1).double()
    with torch.no_grad():  # Psi = 0: every step returns its input
        model.net.head[-1].weight.zero_()
        model.net.head[-1].bias.zero_()
    frames = torch.randn(3, 5, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        loss = unrolled_loss(model, frames, 3, sigma=0.0)
    own = sum(((frames[:, 0] - frames[:, t]) ** 2).mean() for t in (1, 2, 3)) / 3 / 0.25
    assert math.isclose(float(loss), float(own), rel_tol=1e-12)  # teacher forcing would compare x_{t-1}, x_t


def test_training_lowers_the_one_step_loss_and_an_interrupted_run_resumes_to_the_same_weights(
        small_data, tmp_path, monkeypatch, capsys):
    from hybridsolver_plugins.sns import train
    from hybridsolver_plugins.sns.data import load_vorticity
    from hybridsolver_plugins.sns.surrogate import unrolled_loss

    monkeypatch.setitem(train.CONFIGS, "tiny", TINY)
    whole = train.train("unet", small_data, str(tmp_path / "whole"), "tiny", lr=1e-2, checkpoint_every=3,
                        progress=False)
    model, record = train.load_model(whole)
    omega, _, _ = load_vorticity(small_data, "test")
    assert record["statistics"]["scale"] > 0 and record["steps"] == 8
    frames = torch.from_numpy(omega / np.float32(record["statistics"]["scale"]))
    fresh = train.build({**record, "state": train.MODELS["unet"]["build"](TINY, record["statistics"]).state_dict()})
    with torch.no_grad():
        before, after = (float(unrolled_loss(m, frames, 1, sigma=0.0)) for m in (fresh, model))
    assert after < 0.95 * before  # 8 steps of a 4/8/8 network: 0.80 -> 0.75

    loss, calls = train.MODELS["unet"]["loss"], {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return loss(*args)

    monkeypatch.setitem(train.MODELS["unet"], "loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train("unet", small_data, str(tmp_path / "resumed"), "tiny", lr=1e-2, checkpoint_every=3,
                    progress=False)
    monkeypatch.setitem(train.MODELS["unet"], "loss", loss)
    resumed = train.train("unet", small_data, str(tmp_path / "resumed"), "tiny", lr=1e-2, checkpoint_every=3,
                          progress=False)
    a, b = (torch.load(p, weights_only=False)["state"] for p in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    code = train.main(["--model", "unet", "--data", small_data, "--out", str(tmp_path / "whole"),
                       "--config", "tiny", "--lr", "0.001", "--quiet"])
    assert code == 2 and "lr = 0.01, now 0.001" in capsys.readouterr().err


def test_the_exported_surrogate_steps_the_host_s_members_as_the_model_does(small_data, tmp_path, monkeypatch):
    from hybridsolver import Simulation
    from hybridsolver.plugin import PluginError
    from hybridsolver_plugins.sns import export, train

    monkeypatch.setitem(train.CONFIGS, "tiny", TINY)
    run = str(tmp_path / "run")
    train.train("unet", small_data, run, "tiny", progress=False)
    path = export.export_model("unet", run, small_data, str(tmp_path))
    starts = export.export_starts(small_data, str(tmp_path), 3, 4)[0]
    rows = np.load(starts)
    assert rows.shape == (3, 32, 32)  # one test trajectory of 8 snapshots: starts 0, 2 and 3
    model, _ = train.load_model(os.path.join(run, "model.pt"))

    def host(dt, every, members=3, first=0):
        sim = Simulation.from_case(KOLMOGOROV, {
            "grid.shape": [32, 32], "initial_condition": {"type": "file", "path": starts}, "time.dt": dt,
            "time.steps": 4 * every, "ensemble.members": members, "ensemble.first_member": first,
            "plugins": [{"path": path, "every": every}], "output.fields_every": 0})
        sim.advance(4 * every)
        return sim.fields()["vorticity"]

    x = torch.from_numpy(rows[:, None] / model.scale.item()).float()
    with torch.no_grad():
        for _ in range(4):
            x = model.step(x)
    expected = x[:, 0].double().numpy() * model.scale.item()
    out = host(0.002, 1)
    assert np.allclose(out, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert np.array_equal(host(0.001, 2), out)  # calls of every * dt = 0.002
    assert np.array_equal(host(0.002, 1, members=1, first=2)[0], out[2])
    with pytest.raises(PluginError, match="not a whole number of the emulator's steps of 0.002"):
        host(0.003, 1)


# ---- the evaluation ---------------------------------------------------------------------------

def test_the_rollout_energy_is_the_host_s_energy_diagnostic():
    from hybridsolver import Simulation
    from hybridsolver_plugins.flow_statistics import kinetic_energy

    n, L = 32, 2 * np.pi
    x = np.arange(n) * L / n
    X, Y = np.meshgrid(x, x)
    assert math.isclose(kinetic_energy(25 * np.sin(3 * X + 4 * Y), (L, L)), 25 / 4, rel_tol=1e-12)
    sim = Simulation.from_case(KOLMOGOROV, {"grid.shape": [32, 32], "ensemble.members": 2})
    assert np.allclose(kinetic_energy(sim.fields()["vorticity"], (L, L)), sim.diagnostics()["energy"], rtol=1e-12)


def test_the_truth_scored_as_a_rollout_has_no_error_and_the_evaluation_runs_each_model(
        small_data, tmp_path, monkeypatch):
    from hybridsolver_plugins.flow_statistics import energy_spectrum
    from hybridsolver_plugins.sns import evaluate, export, train
    from hybridsolver_plugins.sns.data import load_vorticity

    monkeypatch.setattr(evaluate, "WINDOW", 4)
    monkeypatch.setattr(evaluate, "RECORD_EVERY", 1)
    omega, _, length = load_vorticity(small_data, "test")
    truth = evaluate.truth_rollout(omega, [(0, 0), (0, 2)], 4, length, 0.002)
    stationary = {"spectrum": energy_spectrum(truth["records"][:, -1:], length)[1],
                  "rate": float(truth["rate"][:, -4:].mean()),
                  "correlation": evaluate.correlation(truth["records"][:, -5:], np.arange(5))}
    band = (0.9 * truth["energy"].min(), 1.1 * truth["energy"].max())
    row = evaluate.scores(truth | {"seconds": 1.0, "length": length}, truth, stationary, band, 4)
    assert row["exit_steps"] == [-1, -1] and row["inside"] == 1.0 and row["finite"] == 2
    assert row["spectrum_error"] == 0.0 and row["correlation_error_early"] == 0.0 and row["rate_error_early"] == 0.0
    assert row["correlation_error_late"] < 1e-12 and row["rate_error_late"] < 1e-12
    # both models of a 3-start evaluation of the tiny surrogate, 4 steps each
    monkeypatch.setitem(train.CONFIGS, "tiny", TINY)
    train.train("unet", small_data, str(tmp_path / "run"), "tiny", progress=False)
    path = export.export_model("unet", str(tmp_path / "run"), small_data, str(tmp_path))
    starts = export.export_starts(small_data, str(tmp_path), 2, 4)[0]
    case = tmp_path / "case.toml"
    text = open(os.path.join(os.path.dirname(KOLMOGOROV), "kolmogorov64_sns.toml")).read()
    case.write_text(text.replace("shape = [64, 64]", "shape = [32, 32]").replace("members = 8", "members = 2"))
    table = evaluate.evaluate([path, "solver"], small_data, str(case), 4, str(tmp_path / "eval"), starts,
                              progress=False)
    assert set(table) == {"truth", "unet.pt", "solver"} and os.path.isfile(tmp_path / "eval" / "rollouts.png")
    assert all(len(table[m]["exit_steps"]) == 2 and table[m]["ms_per_step"] > 0 for m in ("unet.pt", "solver"))
    assert json.load(open(tmp_path / "eval" / "evaluation.json")) == json.loads(json.dumps(table))


# ---- Thermalizer and the self-refiner --------------------------------------------------------

def _force_levels(head, level):
    """Make a LevelHead predict ``level`` for any input."""
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.bias.fill_(-10.0)
        head.linear.bias[level - 1] = 10.0


def test_thermalize_denoises_only_frames_classified_above_s_init_down_to_s_stop_with_their_own_noise():
    from hybridsolver_plugins.sns.thermalizer import Thermalizer

    torch.manual_seed(0)
    model = Thermalizer([4, 8, 8], 1).double().eval()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    noise = torch.randn(2, 40, 16, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        _force_levels(model.head, 10)  # s_hat = s_init: kept
        kept, steps = model.thermalize(x, noise)
        assert torch.equal(kept, x) and steps.tolist() == [0, 0]
        _force_levels(model.head, 30)  # 26 reverse steps, 30 -> 4
        out, steps = model.thermalize(x, noise)
        assert steps.tolist() == [26, 26] and not torch.allclose(out, x)
        later = noise.clone()
        later[:, 26:] += 1.0  # fields after the 26th are not used
        assert torch.equal(model.thermalize(x, later)[0], out)
        first = noise.clone()
        first[1, 0] += 1.0  # member 1's first reverse step: member 0 unchanged
        changed = model.thermalize(x, first)[0]
        assert torch.equal(changed[0], out[0]) and not torch.allclose(changed[1], out[1])
        _force_levels(model.head, 900)  # capped at s_stop + 40 fields of noise
        assert model.thermalize(x, noise)[1].tolist() == [40, 40]


def test_refine_denoises_the_previous_frame_then_the_new_one_from_the_predicted_levels():
    from hybridsolver_plugins.sns.refiner import SelfRefiner

    torch.manual_seed(0)
    model = SelfRefiner([4, 8, 8], 1).double().eval()
    g = torch.Generator().manual_seed(7)
    x0, prev, cur = (torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=g) for _ in range(3))
    cap = 8
    noise = torch.randn(2, 2 + 2 * cap, 16, 16, dtype=torch.float64, generator=g)
    with torch.no_grad():
        _force_levels(model.head_t, 3)
        _force_levels(model.head_prev, 2)
        out, steps = model.refine(x0, prev, cur, noise)
        assert steps.tolist() == [5, 5] and out.shape == cur.shape and torch.isfinite(out).all()
        for slot, used in [(0, True), (1, True), (2, True), (2 + 2, False), (2 + cap, True), (2 + cap + 3, False)]:
            other = noise.clone()
            other[:, slot] += 1.0
            assert torch.equal(model.refine(x0, prev, cur, other)[0], out) != used, slot
        # the last reverse step of each frame (level 1) adds no noise
        other = noise.clone()
        other[:, 2 + 1] += 1.0  # prev's second step, at level 1
        assert torch.equal(model.refine(x0, prev, cur, other)[0], out)


def _forced_run(small_data, tmp_path, model_name, heads, monkeypatch):
    """Train a tiny ``model_name`` for 2 steps, force its level heads ({head: level}) and
    export it with a tiny surrogate; returns the artifact and the starts file."""
    from hybridsolver_plugins.sns import export, train

    monkeypatch.setitem(train.CONFIGS, "tiny", TINY | {"steps": {name: 2 for name in TINY["steps"]}})
    for name in export.PARTS[model_name]:
        if not os.path.isfile(tmp_path / name / "model.pt"):
            train.train(name, small_data, str(tmp_path / name), "tiny", progress=False)
    trained = export.PARTS[model_name][-1]
    path = tmp_path / trained / "model.pt"
    record = torch.load(path, weights_only=False)
    for head, level in heads.items():
        record["state"][f"{head}.linear.weight"].zero_()
        record["state"][f"{head}.linear.bias"].fill_(-10.0)
        record["state"][f"{head}.linear.bias"][level - 1] = 10.0
    torch.save(record, path)
    artifact = export.export_model(model_name, str(tmp_path / trained), small_data, str(tmp_path),
                                   str(tmp_path / "unet"))
    return artifact, export.export_starts(small_data, str(tmp_path), 3, 4)[0]


@pytest.mark.parametrize("model_name, heads, steps", [("thermalizer", {"head": 12}, 8),
                                                     ("sns", {"head_t": 3, "head_prev": 2}, 5),
                                                     ("corrector", {"head_t": 2, "head_prev": 1}, 3),
                                                     ("acdm", {}, None)])
def test_the_refining_plugins_keep_a_member_s_bits_in_any_ensemble_batch_and_across_a_resume(
        small_data, tmp_path, monkeypatch, request, model_name, heads, steps):
    import tomli_w
    from run_files import assert_same_run_files
    from test_emulators import _run_until_signal

    from hybridsolver import Simulation
    from hybridsolver.cli import main
    from hybridsolver_plugins.sns.evaluate import reverse_step_counter

    artifact, starts = _forced_run(small_data, tmp_path, model_name, heads, monkeypatch)
    with open(os.path.join(os.path.dirname(KOLMOGOROV), "kolmogorov64_sns.toml"), "rb") as f:
        raw = tomllib.load(f)
    raw["grid"]["shape"] = [32, 32]
    raw["initial_condition"]["path"] = starts
    raw["time"]["steps"] = 6
    raw["plugins"] = [{"path": artifact, "every": 1}]
    raw["output"] = {"fields_every": 2, "diagnostics_every": 1, "checkpoint_every": 2}
    runs = {}
    if model_name == "corrector":  # refining the solver's steps
        solver = Simulation.from_case(raw | {"plugins": []}, {"ensemble.members": 3})
        solver.advance(3)
    for members, max_batch, first in [(3, 1, 0), (3, 2, 0), (3, None, 0), (1, None, 2)]:
        entry = raw["plugins"][0] | ({"max_batch": max_batch} if max_batch else {})
        sim = Simulation.from_case(raw | {"plugins": [entry]},
                                   {"ensemble.members": members, "ensemble.first_member": first})
        sim.advance(3)
        runs[(members, max_batch)] = sim.state[2 - first].copy()
        if steps is not None:
            assert reverse_step_counter(sim)().tolist() == [steps] * members  # what the evaluation histograms
    state, *others = runs.values()
    assert all(np.array_equal(s, state) for s in others)
    if model_name == "corrector":
        assert sim.hooks[0].manifest["callsite"] == "post_step" and not np.allclose(solver.state[2], state)
    if model_name != "sns":
        return  # the kill and resume is SNS's, whose first frame is state
    # the killed run is a fresh process with torch's default threads, whose convolutions give
    # other last bits than one thread does (an earlier test may have set 1): match them
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True).stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(int(default))
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    raw["ensemble"]["members"] = 3
    case = tmp_path / "case.toml"
    case.write_text(tomli_w.dumps(raw))
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    assert main(["run", str(case), "--out", whole, "--quiet"]) == 0
    code, err = _run_until_signal(str(case), killed, 5, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    assert main(["run", str(case), "--resume", "--out", killed, "--quiet"]) == 0
    assert_same_run_files(killed, whole)


def test_acdm_samples_from_pure_noise_with_a_fresh_noisy_conditioning_copy_at_every_level():
    from hybridsolver_plugins.sns.acdm import ACDM

    torch.manual_seed(0)
    model = ACDM([4, 8, 8], 1, levels=50).double().eval()
    g = torch.Generator().manual_seed(8)
    prev = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=g)
    initial = torch.randn(2, 1, 16, 16, dtype=torch.float64, generator=g)
    cond, reverse = (torch.randn(2, 50, 16, 16, dtype=torch.float64, generator=g) for _ in range(2))
    seen = []
    forward = model.forward
    model.forward = lambda x, s: seen.append((x.clone(), s.clone())) or forward(x, s)
    with torch.no_grad():
        out = model.sample(prev, initial, cond, reverse)
        assert [int(s[0]) for _, s in seen] == list(range(50, 0, -1))
        a = model.schedule.alpha_bar
        for k, (x, _) in enumerate(seen):  # channel 0: the noisy copy of the clean previous frame at its level
            assert torch.allclose(x[:, :1], a[50 - k].sqrt() * prev + (1 - a[50 - k]).sqrt() * cond[:, k:k + 1])
        assert torch.equal(seen[0][0][:, 1:], initial)
        last = reverse.clone()
        last[:, 49] += 1.0  # the level-1 step adds no noise
        assert torch.equal(model.sample(prev, initial, cond, last), out)
        other = prev.clone()
        other[1] += 1.0  # a member's sample depends on its own previous frame only
        changed = model.sample(other, initial, cond, reverse)
        assert torch.equal(changed[0], out[0]) and not torch.allclose(changed[1], out[1])
