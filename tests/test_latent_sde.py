"""The latent-SDE emulator's building blocks (plugins/latent_sde): the product-of-experts
likelihood against the brute-force Gaussian product, the drift residual against a known
linear SDE, the kernel interpolation's time derivative, the scale operators and networks,
training, and the exported emulator (Euler-Maruyama from the encoder; a member's bits in
any ensemble, batch and across a kill and resume)."""
import dataclasses
import json
import os
import signal

import numpy as np
import pytest
import torch

from hybridsolver_plugins.latent_sde.interpolation import KernelInterpolator
from hybridsolver_plugins.latent_sde.likelihood import combine, gaussian_log_density, log_likelihood
from hybridsolver_plugins.latent_sde.residual import drift_residual, residual_energy

F64 = {"dtype": torch.float64}


def test_the_product_of_experts_is_the_brute_force_gaussian_product():
    g = torch.Generator().manual_seed(0)
    n = 7
    m, d, y = (torch.randn(n, generator=g, **F64) for _ in range(3))
    var_zeta, var_eta = torch.rand(n, generator=g, **F64) + 0.1, torch.rand(n, generator=g, **F64) + 0.1
    mean, var = combine(m, var_zeta, d, var_eta)
    # brute force with full matrices: S_y = S1 + S2, mu_y = S_y^-1 (S1 m + S2 (m + d))
    s1, s2 = torch.diag(1 / var_zeta), torch.diag(1 / var_eta)
    cov = torch.linalg.inv(s1 + s2)
    brute_mean = cov @ (s1 @ m + s2 @ (m + d))
    assert torch.allclose(mean, brute_mean, rtol=0, atol=1e-12)
    assert torch.allclose(torch.diag(var), cov, rtol=0, atol=1e-12)
    # the normalised product p1(y) p2(y - m) / Z, Z = N(0 | d, Sigma1 + Sigma2)
    log_product = (gaussian_log_density(y, m, var_zeta) + gaussian_log_density(y - m, d, var_eta)
                   - gaussian_log_density(torch.zeros(n, **F64), d, var_zeta + var_eta))
    assert log_likelihood(y, m, var_zeta, d, var_eta).item() == pytest.approx(log_product.item(), abs=1e-12)
    brute = torch.distributions.MultivariateNormal(brute_mean, cov).log_prob(y)
    assert log_likelihood(y, m, var_zeta, d, var_eta).item() == pytest.approx(brute.item(), abs=1e-12)
    # n_eta = 0: the macroscale expert alone
    assert torch.equal(combine(m, var_zeta)[0], m)
    assert log_likelihood(y, m, var_zeta).item() == pytest.approx(gaussian_log_density(y, m, var_zeta).item())


def test_the_residual_vanishes_on_the_marginals_of_a_linear_sde():
    """dz = -a z dt + L dbeta: mean mu0 exp(-a t), variance Sigma0 exp(-2 a t) +
    L^2 (1 - exp(-2 a t)) / (2 a); their time derivatives by central differences."""
    a, diffusion_var = torch.tensor([0.7, 2.0, 0.1], **F64), torch.tensor([0.3, 1.5, 0.05], **F64)
    mu0, var0 = torch.tensor([1.0, -2.0, 0.5], **F64), torch.tensor([0.2, 0.01, 3.0], **F64)

    def mean(t):
        return mu0 * torch.exp(-a * t)

    def var(t):
        return var0 * torch.exp(-2 * a * t) + diffusion_var * (1 - torch.exp(-2 * a * t)) / (2 * a)

    t, h = 0.8, 1e-5
    mean_dot, var_dot = (mean(t + h) - mean(t - h)) / (2 * h), (var(t + h) - var(t - h)) / (2 * h)
    z = torch.randn(100, 3, generator=torch.Generator().manual_seed(1), **F64) * var(t).sqrt() + mean(t)
    r = drift_residual(z, mean(t), mean_dot, var(t), var_dot, -a * z, diffusion_var)
    assert r.abs().max() < 1e-8
    wrong = drift_residual(z, mean(t), mean_dot, var(t), var_dot, -1.1 * a * z, diffusion_var)
    assert torch.allclose(residual_energy(wrong, diffusion_var), ((0.1 * a * z) ** 2 / diffusion_var).sum(-1))


def test_the_kernel_interpolation_reproduces_its_data_and_differentiates_in_time():
    torch.manual_seed(2)
    interpolator = KernelInterpolator(length=0.15).double()
    with torch.no_grad():  # a warping that is not the identity
        interpolator.warp.outer.weight.normal_(0.0, 0.1)
    tau = torch.linspace(0.0, 1.0, 12, **F64)
    values = torch.stack([torch.sin(3 * tau), tau ** 2], dim=-1)  # (T, 2)
    at_knots, _ = interpolator(tau, values, tau)
    assert torch.allclose(at_knots, values, atol=1e-4)
    t = torch.tensor([0.13, 0.5, 0.91], requires_grad=True, **F64)
    v, v_dot = interpolator(tau, values, t)
    h = 1e-6
    up, _ = interpolator(tau, values, t.detach() + h)
    down, _ = interpolator(tau, values, t.detach() - h)
    assert torch.allclose(v_dot, (up - down) / (2 * h), rtol=1e-6, atol=1e-7)
    for channel in range(2):
        grad, = torch.autograd.grad(v[:, channel].sum(), t, retain_graph=True)
        assert torch.allclose(v_dot[:, channel], grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,stride,points", [((40,), 4, 9), ((16, 24), 4, 9)])
def test_the_scale_operators_are_torch_s_circular_convolutions_and_their_adjoint(shape, stride, points):
    """S and T_r are torch's (strided) circular cross-correlation with the kernel and bias;
    T_p / s^d is the adjoint of T_r without its bias; T_p T_r keeps a constant."""
    from hybridsolver_plugins.latent_sde.operators import ScaleOperators

    torch.manual_seed(3)
    ops = ScaleOperators(shape, channels=2, stride=stride, points=points)
    with torch.no_grad():
        ops.kernel.add_(0.05 * torch.randn_like(ops.kernel))  # not symmetric any more
        ops.bias.copy_(torch.tensor([0.3, -0.2], **F64))
    y = torch.randn((3, 2) + shape, **F64)
    half = (points - 1) // 2
    dims = len(shape)
    conv = torch.nn.functional.conv1d if dims == 1 else torch.nn.functional.conv2d
    padded = torch.nn.functional.pad(y, (half,) * 2 * dims, mode="circular")
    weight = ops.kernel.unsqueeze(1)  # (channels, 1, *kernel): depthwise
    assert torch.allclose(ops.smooth(y), conv(padded, weight, ops.bias, groups=2), atol=1e-12)
    assert torch.allclose(ops.restrict(y), conv(padded, weight, ops.bias, stride=stride, groups=2), atol=1e-12)
    zeta = torch.randn((3, 2) + ops.coarse_shape, **F64)
    lhs = ((ops.restrict(y) - ops._bias()) * zeta).sum()
    rhs = (y * ops.prolong(zeta)).sum() / stride ** dims
    assert lhs.item() == pytest.approx(rhs.item(), rel=1e-12)
    if dims == 1:  # the paper's 6 s + 1 points: the initial Gaussian nearly interpolates
        fresh = ScaleOperators(shape, channels=1, stride=stride, points=6 * stride + 1)
        constant = torch.full((1,) + shape, 2.5, **F64)
        assert torch.allclose(fresh.prolong(fresh.restrict(constant)), constant, rtol=0.02)
    with pytest.raises(ValueError, match="at most the grid"):
        ScaleOperators(shape, channels=1, stride=stride, points=2 * max(shape) + 1)


@pytest.mark.parametrize("dims,grid,kernel,stride", [(1, (40,), 25, 2), (2, (16, 32), 9, 4),
                                                     (2, (5, 20), 9, 4)])  # the cylinder's last layer: 5 -> 2
def test_the_transposed_layer_is_the_adjoint_of_the_strided_circular_convolution(dims, grid, kernel, stride):
    from hybridsolver_plugins.latent_sde.networks import CircularConv, CircularTransposedConv

    torch.manual_seed(4)
    conv = CircularConv(dims, 3, 5, kernel, stride).double()
    deconv = CircularTransposedConv(dims, 5, 3, kernel, stride).double()
    with torch.no_grad():
        deconv.weight.copy_(conv.weight)
    x = torch.randn((2, 3) + grid, **F64)
    out = conv(x) - conv.bias.reshape((1, -1) + (1,) * dims)
    assert out.shape == (2, 5) + tuple(-(-n // stride) for n in grid)
    other = torch.randn_like(out)
    back = deconv(other, grid, bias=False)
    assert back.shape == x.shape
    assert (out * other).sum().item() == pytest.approx((x * back).sum().item(), rel=1e-12)


@pytest.mark.parametrize("grid,channels,widths,kernel,stride,flat", [
    ((1000,), 1, (4, 16, 64), 25, 2, 8000),  # KdV: the paper's 8000 features
    ((128, 128), 1, (16, 32, 64), 9, 4, 256),  # Burgers 2D: 256
    ((80, 320), 2, (16, 32, 64), 9, 4, 640),  # cylinder: 80 x 320 -> 20 x 80 -> 5 x 20 -> 2 x 5, 640
])
def test_the_micro_encoder_and_decoder_have_the_paper_s_shapes(grid, channels, widths, kernel, stride, flat):
    from hybridsolver_plugins.latent_sde.networks import MicroDecoder, MicroEncoder

    encoder = MicroEncoder(grid, channels, widths, kernel, stride, n_eta=5)
    decoder = MicroDecoder(grid, channels, widths, kernel, stride, n_eta=5)
    assert encoder.linear.in_features == flat and decoder.linear.out_features == flat
    y = torch.randn((3, channels) + grid)
    eta = encoder(y)
    assert eta.shape == (3, 5) and decoder(eta).shape == y.shape


@pytest.mark.parametrize("n_eta", [0, 2])
def test_the_elbo_of_a_small_model_rises_under_adam(n_eta):
    """A travelling wave on 200 points: the ELBO per value improves over 30 Adam steps and
    every parameter that the ELBO reaches gets a gradient."""
    from hybridsolver_plugins.latent_sde.model import Config, LatentSDE

    torch.manual_seed(5)
    config = Config(grid=(200,), channels=1, stride=10, kernel=61, n_eta=n_eta, micro_widths=(4, 16), micro_kernel=9)
    model = LatentSDE(config)
    x = torch.linspace(0, 2 * torch.pi, 201, **F64)[:-1]
    t = torch.linspace(0, 1, 32, **F64)
    y = (torch.sin(x[None, :] - 2 * t[:, None]) + 0.05 * torch.cos(9 * x[None, :] + t[:, None]))[:, None]
    g = torch.Generator().manual_seed(0)
    first = model.elbo(y, t, generator=torch.Generator().manual_seed(1))[0].item()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(30):
        opt.zero_grad()
        loss = -model.elbo(y, t, generator=g)[0]
        loss.backward()
        opt.step()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    last = model.elbo(y, t, generator=torch.Generator().manual_seed(1))[0].item()
    assert last > first + 0.5


def test_training_steps_the_smoothing_kernel_at_the_paper_s_relative_rate():
    """Adam's first step moves every parameter by its group's learning rate: the kernel by
    s^(-d/2) of the others' (2D, s = 4: a quarter), decayed with them; every parameter is in
    exactly one group."""
    from hybridsolver_plugins.latent_sde.model import Config, LatentSDE
    from hybridsolver_plugins.latent_sde.train import DECAY, DECAY_EVERY, parameter_groups, set_learning_rate

    torch.manual_seed(0)
    model = LatentSDE(Config(grid=(16, 16), channels=1, stride=4, kernel=9, n_eta=1, micro_widths=(4, 8),
                             micro_kernel=5, micro_stride=2))
    groups = parameter_groups(model)
    members = [id(p) for g in groups for p in g["params"]]
    assert sorted(members) == sorted(id(p) for p in model.parameters())
    optimizer = torch.optim.Adam(groups, lr=1.0)
    set_learning_rate(optimizer, 1e-3, 2 * DECAY_EVERY)
    before = {id(p): p.detach().clone() for p in model.parameters()}
    y = torch.randn(8, 1, 16, 16, **F64)
    optimizer.zero_grad()
    (-model.elbo(y, torch.linspace(0, 1, 8, **F64), generator=torch.Generator().manual_seed(0))[0]).backward()
    optimizer.step()
    moved = {id(p): (p.detach() - before[id(p)]).abs().max().item() for p in model.parameters()}
    rate = 1e-3 * DECAY ** 2
    assert moved[id(model.ops.kernel)] == pytest.approx(rate / 4, rel=1e-3)
    assert max(moved[id(p)] for p in groups[1]["params"]) == pytest.approx(rate, rel=1e-3)


def test_training_segments_cover_a_trajectory_s_ends_about_as_often_as_its_middle():
    """Segments of 128 of 1000 snapshots: every snapshot is in a drawn segment between 1/2 and
    3/2 times as often as the middle ones (a start uniform over the possible ones covers
    snapshot 0 once for every 128 times it covers snapshot 500), and every start is possible."""
    from hybridsolver_plugins.latent_sde.train import segment_start

    generator = torch.Generator().manual_seed(0)
    snapshots, segment = 1000, 128
    counts = np.zeros(snapshots)
    starts = set()
    for _ in range(40000):
        lo = segment_start(snapshots, segment, generator)
        assert 0 <= lo <= snapshots - segment
        starts.add(lo)
        counts[lo:lo + segment] += 1
    relative = counts / counts[300:700].mean()
    assert relative.min() > 0.45 and relative.max() < 1.55
    assert relative[0] == pytest.approx(0.5, abs=0.05) and relative[-1] == pytest.approx(0.5, abs=0.05)
    assert len(starts) == snapshots - segment + 1


def _kdv_like_file(folder, trajectories=2, times=24):
    """train.nc and validation.nc in generate's layout: u and u_noise (member, time, x) on
    KdV's 1000 points (the validation split 1 time unit later)."""
    import netCDF4
    import numpy as np

    folder.mkdir()
    x = np.linspace(0.0, 10.0, 1000, endpoint=False)
    for split, start in (("train", 0.0), ("validation", 1.0)):
        t = start + np.arange(times) * 1e-3
        with netCDF4.Dataset(folder / f"{split}.nc", "w") as ds:
            ds.createDimension("member", trajectories)
            ds.createDimension("time", times)
            ds.createDimension("x", 1000)
            ds.createVariable("time", "f8", ("time",))[:] = t
            u = np.cos(np.pi * (x[None, None] - t[None, :, None] * (1 + np.arange(trajectories))[:, None, None]))
            ds.createVariable("u", "f4", ("member", "time", "x"))[:] = u
            ds.createVariable("u_noise", "f4", ("member", "time", "x"))[:] = 0.01 * np.sin(7 * x)[None, None]
            ds.complete = trajectories


def test_training_is_reproducible_resumes_a_finished_run_and_refuses_other_arguments(tmp_path, capsys):
    from hybridsolver_plugins.latent_sde.train import load_stage, main

    _kdv_like_file(tmp_path / "data")
    args = ["--problem", "kdv", "--data", str(tmp_path / "data"), "--max-eta", "1", "--segment", "16", "--quiet",
            "--steps", "3"]
    assert main(args + ["--out", str(tmp_path / "a")]) == 0
    assert main(args + ["--out", str(tmp_path / "b")]) == 0
    a, b = load_stage(tmp_path / "a" / "eta1.pt")[0], load_stage(tmp_path / "b" / "eta1.pt")[0]
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.n_eta == 1
    log = (tmp_path / "a" / "log.jsonl").read_text()
    assert main(args + ["--out", str(tmp_path / "a")]) == 0  # finished: nothing more is trained
    assert (tmp_path / "a" / "log.jsonl").read_text() == log
    capsys.readouterr()
    assert main(args[:-1] + ["4", "--out", str(tmp_path / "a")]) == 2
    assert "checkpoint.pt: made with other arguments" in capsys.readouterr().err


def test_a_stage_keeps_the_weights_of_its_best_validation_elbo(tmp_path, monkeypatch):
    """The validation ELBO (fixed segments and draws: a function of the weights) measured
    at the stage's start and every LOG_EVERY steps; the stage's eta<N>.pt holds the
    weights at the highest, with that ELBO and its step, and the log records every figure."""
    from hybridsolver_plugins.latent_sde import train as training

    _kdv_like_file(tmp_path / "data")
    folder = str(tmp_path / "data")
    monkeypatch.setattr(training, "LOG_EVERY", 1)
    args = dict(problem="kdv", data=folder, max_eta=0, segment=16, progress=False)
    real = training.validation_elbo
    figures = iter([-1.0, 0.5] + [-1.0, 0.5, 0.3, 0.1])  # the one-step run's, then the three-step run's
    monkeypatch.setattr(training, "validation_elbo", lambda model, segments: next(figures))
    training.train(out=str(tmp_path / "one"), steps=1, **args)
    training.train(out=str(tmp_path / "three"), steps=3, **args)
    kept, record = training.load_stage(tmp_path / "three" / "eta0.pt")
    first = training.load_stage(tmp_path / "one" / "eta0.pt")[0].state_dict()
    assert all(torch.equal(first[k], v) for k, v in kept.state_dict().items())
    assert (record["validation_elbo"], record["best_step"]) == (0.5, 1)
    log = [json.loads(line) for line in (tmp_path / "three" / "log.jsonl").read_text().splitlines()]
    assert [row["validation_elbo"] for row in log] == [0.5, 0.3, 0.1]
    assert all(0 < row["validation_error"] < 2 for row in log)
    segments, snapshots = training.validation_set(folder, 16)
    assert [tuple(y.shape) for y, _ in segments] == [(16, 1, 1000)] * 2
    assert tuple(snapshots.shape) == (48, 1, 1000)  # all 2 x 24 of the split: fewer than 64
    assert real(kept, segments) == real(kept, segments)  # fixed draws: a function of the weights


def test_training_starts_from_the_stage_of_a_shipped_artifact(tmp_path, capsys, monkeypatch):
    """--init: the artifact's stage at the end of its budget is that stage's model, bit for
    bit, and the next stage grows from it as in a run from scratch; its manifest names the
    artifact; an artifact of another problem's model is refused; a run's eta<N>.pt does the
    same as its artifact."""
    from hybridsolver.plugin import export
    from hybridsolver.plugin.artifact import read_artifact
    from hybridsolver_plugins.latent_sde.emulator import LatentSDEEmulator
    from hybridsolver_plugins.latent_sde.export import manifest
    from hybridsolver_plugins.latent_sde.train import load_stage, main

    _kdv_like_file(tmp_path / "data")
    args = ["--problem", "kdv", "--data", str(tmp_path / "data"), "--segment", "16", "--quiet", "--steps", "3"]
    assert main(args + ["--max-eta", "0", "--out", str(tmp_path / "a")]) == 0
    model, record = load_stage(tmp_path / "a" / "eta0.pt")
    case = {"equation": {"name": "kdv"}, "grid": {"shape": [1000], "length": [10.0]}}
    artifact = str(tmp_path / "kdv_eta0.pt")
    export(LatentSDEEmulator(model), manifest("kdv", record, case, {}, {}, ["u"]), artifact)
    init = ["--init", artifact, "--init-step", "3"]
    assert main(args + ["--max-eta", "1", "--out", str(tmp_path / "b")] + init) == 0
    assert main(args + ["--max-eta", "1", "--out", str(tmp_path / "c")]) == 0
    for stage, (x, y) in {"eta0.pt": ("a", "b"), "eta1.pt": ("c", "b")}.items():
        p, q = (load_stage(tmp_path / run / stage)[0].state_dict() for run in (x, y))
        assert all(torch.equal(p[k], q[k]) for k in p), stage
    grown, record = load_stage(tmp_path / "b" / "eta1.pt")
    assert record["init"]["sha256"] == read_artifact(artifact)["sha256"]
    text = manifest("kdv", record, case, {}, {}, ["u"])["provenance"]
    assert "--init " in text["command"] and "--init-step 3" in text["command"]
    assert text["init"]["command"].startswith("python -m plugins.latent_sde.train --problem kdv")
    # continued mid-stage: the steps after step 1 of n_eta = 0
    from hybridsolver_plugins.latent_sde import train as training

    monkeypatch.setattr(training, "LOG_EVERY", 1)
    assert main(args + ["--max-eta", "0", "--out", str(tmp_path / "d"), "--init", artifact, "--init-step", "1"]) == 0
    log = [json.loads(line) for line in (tmp_path / "d" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log] == [2, 3]
    capsys.readouterr()
    other = ["--problem", "burgers2d"] + args[2:] + ["--out", str(tmp_path / "e")] + init
    assert main(other) == 2
    assert "not burgers2d's" in capsys.readouterr().err
    # a run's own eta<N>.pt starts the next stage as its exported artifact does
    stage = ["--init", str(tmp_path / "a" / "eta0.pt"), "--init-step", "3"]
    assert main(args + ["--max-eta", "1", "--out", str(tmp_path / "f")] + stage) == 0
    p, q = (load_stage(tmp_path / run / "eta1.pt") for run in ("b", "f"))
    assert all(torch.equal(p[0].state_dict()[k], q[0].state_dict()[k]) for k in p[0].state_dict())
    assert q[1]["init"]["best_step"] == 3 and q[1]["init"]["command"].startswith("python -m plugins.latent_sde.train")
    assert main(["--problem", "burgers2d"] + args[2:] + ["--out", str(tmp_path / "g")] + stage) == 2
    assert "not burgers2d's" in capsys.readouterr().err


# ---- the emulator: the exported stateful replace plugin ------------------------------------

def _tiny_model(seed=3):
    """A small trained-shape model (64 points, stride 8, n_eta = 2) in float32 eval mode."""
    from hybridsolver_plugins.latent_sde.model import Config, LatentSDE

    torch.manual_seed(seed)
    config = Config(grid=(64,), channels=1, stride=8, kernel=17, n_eta=2, micro_widths=(2, 4), micro_kernel=5,
                    macro_hidden=(8,), micro_hidden=(8,))
    model = LatentSDE(config, dtype=torch.float32)
    with torch.no_grad():
        model.raw_diffusion.fill_(0.5)
    return model.eval()


def test_the_emulator_steps_euler_maruyama_from_the_encoder_and_returns_mu_y():
    """Two calls of the scripted emulator against the model's own encode, drift and decode:
    z0 = mu_z(x) + sqrt(Sigma_z) xi_0, then per substep z += gamma(z, t) h + L sqrt(h) xi_s,
    the field mu_y(z); the second call continues from the returned state."""
    from hybridsolver_plugins.latent_sde.emulator import LatentSDEEmulator

    model = _tiny_model()
    emulator = torch.jit.script(LatentSDEEmulator(model))
    n_z = model.config.n_zeta + model.config.n_eta
    x = torch.sin(torch.linspace(0, 2 * torch.pi, 65, **F64)[:-1]).reshape(1, 1, 64).expand(3, 1, 64)
    g = torch.Generator().manual_seed(0)
    noises = [[torch.randn(3, n_z, generator=g, **F64), torch.randn(3, 2, n_z, generator=g, **F64)] for _ in range(2)]
    options = {"substeps": 2.0, "every": 1.0, "dt": 0.01, "time": 0.3}
    out, state = emulator(x, noises[0], options | {"first": 1.0}, [torch.zeros(3, n_z)])
    out, state = emulator(out, noises[1], options | {"first": 0.0, "time": 0.31}, state)
    with torch.no_grad():
        z = model.encode(x.float()) + torch.exp(0.5 * model.log_var_z) * noises[0][0].float()
        L = torch.nn.functional.softplus(model.raw_diffusion)
        for call, t0 in ((0, 0.3), (1, 0.31)):
            for s in range(2):
                t = torch.full((3,), t0 + s * 0.005)
                z = z + model.drift(z, t) * 0.005 + L * 0.005 ** 0.5 * noises[call][1][:, s].float()
        expected = model.decode(z)[0].double()
    assert torch.allclose(state[0], z, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert out.dtype == torch.float64 and not torch.equal(out[0], out[1])  # members get their own noise


def _kdv_emulator_case(tmp_path, members, max_batch=None, first_member=0, steps=6):
    """A 64-point KdV case whose members the tiny model's exported emulator steps."""
    from hybridsolver.plugin import export
    from hybridsolver_plugins.latent_sde.emulator import LatentSDEEmulator
    from hybridsolver_plugins.latent_sde.export import manifest

    path = str(tmp_path / "emulator.pt")
    if not os.path.exists(path):
        model = _tiny_model()
        record = {"config": dataclasses.asdict(model.config), "args": ["kdv", "data", 2, 3, 16, 0]}
        case = {"equation": {"name": "kdv"}, "grid": {"shape": [64], "length": [10.0]}}
        export(LatentSDEEmulator(model), manifest("kdv", record, case, {}, {}, ["u"]), path)
    entry = {"path": path, "every": 1} | ({"max_batch": max_batch} if max_batch else {})
    return {"equation": {"name": "kdv", "viscosity": 0.02, "discretization": "finite_difference"},
            "grid": {"shape": [64], "length": [10.0]},
            "initial_condition": {"type": "random_packet", "amplitude": [2.0, 0.01], "width": [1.0, 0.01],
                                  "center": [7.5], "wavenumber": 3.141592653589793},
            "time": {"scheme": "rk4", "dt": 1e-3, "steps": steps},
            "ensemble": {"members": members, "seed": 0, "first_member": first_member}, "plugins": [entry],
            "output": {"fields_every": 2, "diagnostics_every": 2, "checkpoint_every": 2}}


def test_an_emulator_member_has_the_same_bits_in_any_ensemble_batch_and_across_a_resume(tmp_path):
    from hybridsolver import Simulation

    runs = {}
    for members, max_batch, first in [(5, 1, 0), (5, 2, 0), (5, None, 0), (1, None, 3)]:
        sim = Simulation.from_case(_kdv_emulator_case(tmp_path, members, max_batch, first))
        sim.advance(6)
        runs[(members, max_batch)] = (sim.state[3 - first].copy(), sim.hooks[0].member_state[0][3 - first].clone())
        if members == 5:
            assert not np.array_equal(sim.state[0], sim.state[1])
    (state, z), *others = runs.values()
    assert all(np.array_equal(s, state) and torch.equal(y, z) for s, y in others)
    # killed at step 5 (checkpoint at 4) and resumed: the same files as a run in one go
    import tomli_w
    from run_files import assert_same_run_files
    from test_emulators import _run_until_signal

    from hybridsolver.cli import main

    case = tmp_path / "case.toml"
    case.write_text(tomli_w.dumps(_kdv_emulator_case(tmp_path, 3, steps=8)))
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    assert main(["run", str(case), "--out", whole, "--quiet"]) == 0
    code, err = _run_until_signal(str(case), killed, 5, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    assert main(["run", str(case), "--resume", "--out", killed, "--quiet"]) == 0
    assert_same_run_files(killed, whole)


def test_the_coarse_baseline_s_resampling_is_exact_for_band_limited_fields():
    """Fourier truncation to the coarse grid and zero padding back reproduce a field whose
    modes the coarse grid holds (1D and 2D), and keep its mean."""
    from hybridsolver_plugins.latent_sde.evaluate import resample

    x = np.arange(1000) / 1000
    line = 0.3 + np.cos(2 * np.pi * 3 * x) - 0.5 * np.sin(2 * np.pi * 9 * x)
    assert np.abs(resample(resample(line, (20,)), (1000,)) - line).max() < 1e-12
    assert np.abs(resample(line, (20,)) - (0.3 + np.cos(2 * np.pi * 3 * x[::50]) - 0.5 * np.sin(
        2 * np.pi * 9 * x[::50]))).max() < 1e-12
    y = np.arange(128)[:, None] / 128
    plane = np.cos(2 * np.pi * (2 * x[None, :128] * 1000 / 128 + 3 * y))
    assert np.abs(resample(resample(plane, (8, 8)), (128, 128)) - plane).max() < 1e-12
    high = np.cos(2 * np.pi * 40 * x)  # above the coarse grid's modes: removed
    assert np.abs(resample(high, (20,))).max() < 1e-12


def test_training_killed_mid_stage_resumes_to_the_same_weights(tmp_path, monkeypatch):
    """Checkpoints every 2 steps of 4; the run is interrupted at its 3rd optimizer step (in
    stage n_eta = 0, after the checkpoint of step 2) and rerun: its weights equal those of
    a run in one go, bit for bit, and the rerun took only the steps after the checkpoint."""
    from hybridsolver_plugins.latent_sde import train as training

    _kdv_like_file(tmp_path / "data")
    monkeypatch.setattr(training, "LOG_EVERY", 2)
    args = dict(problem="kdv", data=str(tmp_path / "data"), max_eta=1, steps=4, segment=16, progress=False)
    training.train(out=str(tmp_path / "whole"), **args)
    calls = {"n": 0}
    original = torch.optim.Adam.step

    def step_then_die(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", step_then_die)
    with pytest.raises(KeyboardInterrupt):
        training.train(out=str(tmp_path / "killed"), **args)
    rerun = {"n": 0}

    def counted(self, *a, **k):
        rerun["n"] += 1
        return original(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", counted)
    training.train(out=str(tmp_path / "killed"), **args)
    assert rerun["n"] == 2 + 4  # from the checkpoint of step 2: the rest of stage 0, then stage 1
    a = training.load_stage(tmp_path / "whole" / "eta1.pt")[0].state_dict()
    b = training.load_stage(tmp_path / "killed" / "eta1.pt")[0].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_cylinder_model_has_the_paper_s_sizes_and_its_coupling_sees_time_and_place():
    """The cylinder's configuration: n_zeta = 2 x 32 x 8 = 512, the macro drift's first layer
    50 + n_eta inputs, phi_j = eta + MLP(eta, cos t, sin t, x_j, y_j) (4 + n_eta inputs):
    with the stencil held fixed, the macro drift changes with t and from node to node."""
    import dataclasses as dc

    from hybridsolver_plugins.latent_sde.model import CYLINDER, LatentSDE, node_coordinates

    torch.manual_seed(0)
    model = LatentSDE(dc.replace(CYLINDER, n_eta=3), dtype=torch.float32)
    assert model.config.n_zeta == 512 and model.macro_drift[0].in_features == 53
    assert model.coupling[0].in_features == 7 and model.encoder.linear.in_features == 640
    y = torch.randn(2, 2, 80, 320)
    z = model.encode(y)
    assert z.shape == (2, 515) and model.decode(z)[0].shape == y.shape
    flat = torch.zeros(2, 515)  # zeta = 0: every node's stencil is the same
    f0 = model.drift(flat, torch.zeros(2))[:, :512]
    f1 = model.drift(flat, torch.ones(2))[:, :512]
    assert not torch.allclose(f0, f1) and f0[0].reshape(2, 256).std(dim=1).min() > 0
    assert torch.equal(node_coordinates((8, 32))[33], torch.tensor([1 / 32, 1 / 8], dtype=torch.float64))


def test_a_window_emulator_runs_on_the_observed_host_from_its_start_file(tmp_path):
    """A cylinder-shaped model (two channels u, v on a 2D window, coupling with time and
    place) exports for the ``observed`` host on the dataset's window; the host starts it
    from export's netCDF start file at the test split's time and steps every member,
    member 2 with the same bits alone as in an ensemble of 3."""
    from hybridsolver import Simulation
    from hybridsolver.plugin import export
    from hybridsolver_plugins.latent_sde.emulator import LatentSDEEmulator
    from hybridsolver_plugins.latent_sde.export import manifest, write_start
    from hybridsolver_plugins.latent_sde.model import Config, LatentSDE

    torch.manual_seed(5)
    config = Config(grid=(16, 32), channels=2, stride=4, kernel=9, n_eta=2, micro_widths=(2, 4), micro_kernel=3,
                    micro_stride=2, macro_hidden=(8,), micro_hidden=(8,), psi_linear=True, coupling=True,
                    coupling_hidden=(8,))
    model = LatentSDE(config, dtype=torch.float32).eval()
    record = {"config": dataclasses.asdict(config), "args": ["cylinder", "data", 2, 3, 16, 0]}
    case = {"equation": {"name": "navier_stokes2d"}, "grid": {"shape": [128, 1152], "length": [1.0, 9.0]},
            "dataset": {"window_shape": [16, 32], "window_spacing": [0.0125, 0.0125]}}
    written = manifest("cylinder", record, case, {}, {}, ["u", "v"])
    assert written["equation"] == "observed" and written["grid"] == {"shape": [16, 32], "length": [0.2, 0.4]}
    path = str(tmp_path / "cylinder.pt")
    export(LatentSDEEmulator(model), written, path)
    y0 = np.stack([np.cos(np.arange(32) / 5)[None, :] * np.ones((16, 1)), np.full((16, 32), 0.1)])
    start = write_start(str(tmp_path / "cylinder_test0"), ["u", "v"], y0)
    assert start.endswith(".nc")

    def run(members, first=0):
        sim = Simulation.from_case({
            "equation": {"name": "observed", "fields": ["u", "v"]},
            "grid": {"shape": [16, 32], "length": [0.2, 0.4], "origin": [-0.49375, -0.49375]},
            "initial_condition": {"type": "file", "path": start}, "time": {"dt": 0.01, "start": 14.0, "steps": 3},
            "ensemble": {"members": members, "seed": 0, "first_member": first},
            "plugins": [{"path": path, "every": 1}], "output": {"fields_every": 0, "diagnostics_every": 0}})
        sim.advance(3)
        return sim.state

    ensemble = run(3)
    assert np.array_equal(ensemble[2], run(1, first=2)[0])
    assert not np.allclose(ensemble[0], y0) and not np.array_equal(ensemble[0], ensemble[1])


def test_the_gaussian_coverage_of_draws_from_the_predictive_law_is_95_percent():
    """Points drawn from N(mean, var) fall inside its 95% interval 95% of the time (to 4
    binomial standard errors over 1e5 points), and a law with a quarter of the variance
    (half the spread) covers far less."""
    from hybridsolver_plugins.latent_sde.evaluate import gaussian_coverage

    g = torch.Generator().manual_seed(7)
    mean = torch.linspace(-1.0, 2.0, 1000, **F64)
    var = torch.linspace(0.1, 3.0, 1000, **F64)
    y = mean + var.sqrt() * torch.randn((100, 1000), generator=g, **F64)
    assert abs(gaussian_coverage(y, mean, var) - 0.95) < 4 * (0.95 * 0.05 / 1e5) ** 0.5
    assert abs(gaussian_coverage(y, mean, var / 4) - 0.673) < 0.01  # P(|Z| <= 0.98)


def test_the_windowed_coarse_baseline_is_the_data_s_own_run_at_coarsening_1(tmp_path, monkeypatch):
    """The cylinder's coarse baseline reruns the data's case on a coarser grid and samples
    its window: without coarsening (and the data's dt, half the snapshot interval) it is
    the data's own trajectory, to round-off; coarsened 2x it differs."""
    from hybridsolver.datasets import generate
    from hybridsolver_plugins.latent_sde import evaluate
    from hybridsolver_plugins.latent_sde.train import data_case, load_observations

    case = os.path.join(os.path.dirname(__file__), os.pardir, "cases", "cylinder_re160.toml")
    wake = {"grid.shape": [32, 288], "time.dt": 0.003, "time.t_end": 0.06, "output.fields_every": 2,
            "dataset.split_times": [0.02, 0.04], "dataset.window_shape": [8, 32],
            "dataset.window_spacing": [0.125, 0.125], "dataset.window_start": [-0.4375, -0.4375]}
    generate(case, str(tmp_path / "data"), wake, progress=False, dtype="float64")
    y, t = load_observations(str(tmp_path / "data"), "test")
    monkeypatch.setattr(evaluate, "WINDOW_COARSENING", 1)
    same = evaluate.coarse_window_baseline(data_case(str(tmp_path / "data")), y, t)
    assert same.shape == (len(t) - 1,) and same.max() < 1e-12
    monkeypatch.setattr(evaluate, "WINDOW_COARSENING", 2)
    assert evaluate.coarse_window_baseline(data_case(str(tmp_path / "data")), y, t).min() > 1e-6


@pytest.mark.parametrize("name", ["kdv_latent_sde.toml", "burgers2d_latent_sde.toml", "cylinder_latent_sde.toml"])
def test_a_shipped_emulator_member_has_the_same_bits_in_any_ensemble_and_batch(name):
    """The shipped cases' trained artifacts (not a tiny model): member 3 of 5 after two
    calls has the same bits with max_batch 1, 2 or none and run alone, and the members
    differ (each is its own sample path)."""
    from hybridsolver import Simulation

    case = os.path.join(os.path.dirname(__file__), os.pardir, "cases", name)
    states = []
    for members, max_batch, first in [(5, 1, 0), (5, 2, 0), (5, None, 0), (1, None, 3)]:
        overrides = {"ensemble.members": members, "ensemble.first_member": first, "time.steps": 2}
        if max_batch:
            overrides["plugins.0.max_batch"] = max_batch
        sim = Simulation.from_case(case, overrides)
        sim.advance(2)
        states.append(sim.state[3 - first].copy())
        if members == 5:
            assert not np.array_equal(sim.state[0], sim.state[1])
    assert all(np.array_equal(s, states[0]) for s in states[1:])
