"""The HINE family (plugins/hine): its data, the backbone's Fourier layers and
symmetries, the start-up cases of the loss, resumable training, and the exported
emulators run by the host (the start-up rollout, member/batch/restart invariance)."""
import os
import signal
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import torch

CASES = os.path.join(os.path.dirname(__file__), os.pardir, "cases")
SMALL = {"dns": 128, "trajectories": 3, "test": 1, "snapshots": 8, "batch": 2, "spin_up": 0.05,
         "checkpoint_every": 120, "progress": False, "coarse": (32, 32)}
TINY = {"widths": (4, 8, 8, 8), "modes": 4, "embedding": 4, "batch": 2, "steps": 6}


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    """A 3-trajectory dataset of 8 snapshots of 32^2 (128^2 DNS, spin-up 0.05)."""
    from hybridsolver_plugins.hine import generate

    folder = str(tmp_path_factory.mktemp("hine_data"))
    generate.generate(folder, **SMALL)
    return folder


def test_the_records_are_the_truncated_dns_every_0_05_after_the_spin_up(small_data, capsys):
    from hybridsolver import Simulation, fft
    from hybridsolver.grid import coarsen
    from hybridsolver_plugins.hine import generate
    from hybridsolver_plugins.hine.data import load_vorticity

    train, times, length = load_vorticity(small_data, "train")
    test, _, _ = load_vorticity(small_data, "test")
    assert train.shape == (2, 8, 32, 32) and test.shape == (1, 8, 32, 32)
    assert np.allclose(times, 0.05 + 0.05 * np.arange(8)) and np.allclose(length, 2 * np.pi)
    sim = Simulation.from_case(generate.DNS_CASE, generate.dns_overrides(128) | {"ensemble.members": 1,
                                                                                "ensemble.first_member": 2})
    assert sim.equation.beta == 20.0 and sim.dt == 1e-3
    sim.advance(50)
    for j in range(8):
        expected = fft.transforms((32, 32)).to_physical(coarsen(sim.state, (32, 32)))[0]
        assert np.array_equal(test[0, j], expected.astype(np.float32)), j
        sim.advance(50)
    assert generate.main(["--out", small_data, "--dns", "96", "--quiet"]) == 2
    assert "--dns: expected one of [128, 256, 512], got 96" in capsys.readouterr().err


def test_the_zonal_velocity_of_a_zonal_jet_and_the_data_summary(small_data):
    from hybridsolver_plugins.hine.data import summary, zonal_velocity

    L = 2 * np.pi
    y = np.arange(32) * L / 32
    omega = -3 * np.cos(3 * y)[:, None] * np.ones((1, 32))  # u = sin 3y: omega = -du/dy
    assert np.allclose(zonal_velocity(omega, (L, L)), np.sin(3 * y), atol=1e-12)
    row = summary(small_data)
    assert row["trajectories"] == 3 and row["energy"][0] > 0 and row["jets"] > 0


def test_the_fourier_layer_keeps_the_low_modes_and_the_backbone_commutes_with_shifts_by_8():
    from hybridsolver_plugins.hine.network import FourierLayer, HierarchicalUNet

    layer = FourierLayer(1, 16, 4)
    with torch.no_grad():
        layer.weight.zero_()
        layer.weight[..., 0] = 1.0  # every kept mode times 1
        x = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        kept = np.zeros((2, 1, 16, 9), dtype=complex)
        x_hat = np.fft.rfft2(x.numpy())
        kept[..., :4, :4], kept[..., 13:, :4] = x_hat[..., :4, :4], x_hat[..., 13:, :4]
        assert np.allclose(layer(x).numpy(), np.fft.irfft2(kept, s=(16, 16)), atol=1e-5)
    torch.manual_seed(0)
    net = HierarchicalUNet(1, 1, 3, 32, (4, 8, 8, 8), 4, 4).double().eval()
    g = torch.Generator().manual_seed(1)
    x, z1, z2 = (torch.randn(2, 1, n, n, generator=g, dtype=torch.float64) for n in (32, 16, 4))
    case = torch.tensor([0, 2])
    with torch.no_grad():
        out = net(x, z1, z2, case)
        assert [o.shape[-1] for o in out] == [32, 16, 4]
        shifted = net(torch.roll(x, (8, -16), (-2, -1)), torch.roll(z1, (4, -8), (-2, -1)),
                      torch.roll(z2, (1, -2), (-2, -1)), case)
        for a, b, r in zip(shifted, out, (1, 2, 8)):
            assert torch.allclose(a, torch.roll(b, (8 // r, -16 // r), (-2, -1)), atol=1e-10)
        other = net(x, z1, z2, torch.tensor([1, 2]))
        assert torch.equal(other[0][1], out[0][1]) and not torch.allclose(other[0][0], out[0][0])


@pytest.mark.parametrize("variant", ["L3", "L2", "history"])
def test_each_start_up_case_supervises_its_outputs_only(variant, monkeypatch):
    from hybridsolver_plugins.hine import hierarchy
    from hybridsolver_plugins.hine.hierarchy import A, B, C, Emulator, hine_loss, pixel_loss, pool

    torch.manual_seed(0)
    model = Emulator(variant, 32, (4, 8, 8, 8), 4, 4).double()
    frames = torch.randn(3, 4, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cases = torch.tensor([A, B if variant == "L3" else C, C])
    monkeypatch.setattr(hierarchy, "draw_cases", lambda m, n, g: cases)
    f = frames[:, :, None]
    zero = [torch.zeros(3, 1, n, n, dtype=torch.float64) for n in (16, 4)]
    with torch.no_grad():
        loss = float(hine_loss(model, frames, None))
        if variant == "history":
            prev = f[:, 0] * (cases == C).double()[:, None, None, None]
            expected = 2 * pixel_loss(model.step(f[:, 1], prev, *zero, cases)[0], f[:, 2])
        else:
            z1 = pool(f[:, 1], 2) * (cases != A).double()[:, None, None, None]
            z2 = pool(f[:, 2], 8) * (cases == C).double()[:, None, None, None] if variant == "L3" else zero[1]
            u, h1, h2 = model.step(f[:, 0], torch.zeros_like(f[:, 0]), z1, z2, cases)
            terms = [pixel_loss(h1, pool(f[:, 1], 2)),  # case A: z1 of the next frame
                     pixel_loss(h2, pool(f[:, 2], 8)),  # case B: z2 of the frame after
                     2 * pixel_loss(u, f[:, 1]) + pixel_loss(h1, pool(f[:, 2], 2))
                     + (pixel_loss(h2, pool(f[:, 3], 8)) if variant == "L3" else 0)]
            expected = torch.stack([terms[int(c)][k] for k, c in enumerate(cases)])
        assert np.isclose(loss, float(expected.mean()), rtol=1e-12)


def test_the_start_up_cases_are_drawn_at_their_fractions():
    from hybridsolver_plugins.hine.hierarchy import A, B, C, Emulator, draw_cases

    g = torch.Generator().manual_seed(3)
    for variant, expected in [("L3", (0.075, 0.075, 0.85)), ("L2", (0.075, 0, 0.925)), ("L1", (0, 0, 1)),
                              ("history", (0.075, 0, 0.925))]:
        cases = draw_cases(Emulator(variant, 32, (4, 8, 8, 8), 4, 4), 40000, g)
        fractions = [float((cases == k).double().mean()) for k in (A, B, C)]
        assert np.allclose(fractions, expected, atol=0.006), variant


def test_training_lowers_the_loss_and_an_interrupted_run_resumes_to_the_same_weights(small_data, tmp_path,
                                                                                     monkeypatch, capsys):
    from hybridsolver_plugins.hine import train

    monkeypatch.setitem(train.CONFIGS, "tiny", TINY)
    whole = train.train("L3", small_data, str(tmp_path / "whole"), "tiny", lr=1e-2, checkpoint_every=2,
                        progress=False)
    losses = [float(line.split('"loss": ')[1].split(",")[0]) for line in open(tmp_path / "whole" / "log.jsonl")]
    assert losses[-1] < losses[0]
    hine_loss, calls = train.hine_loss, {"n": 0}

    def interrupted(*args):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return hine_loss(*args)

    monkeypatch.setattr(train, "hine_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train.train("L3", small_data, str(tmp_path / "resumed"), "tiny", lr=1e-2, checkpoint_every=2, progress=False)
    monkeypatch.setattr(train, "hine_loss", hine_loss)
    resumed = train.train("L3", small_data, str(tmp_path / "resumed"), "tiny", lr=1e-2, checkpoint_every=2,
                          progress=False)
    a, b = (torch.load(p, weights_only=False)["state"] for p in (whole, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a finished run of 3 steps continued to 6 is the run of 6 steps
    train.train("L3", small_data, str(tmp_path / "longer"), "tiny", steps=3, lr=1e-2, checkpoint_every=2,
                progress=False)
    longer = train.train("L3", small_data, str(tmp_path / "longer"), "tiny", steps=6, lr=1e-2, checkpoint_every=2,
                         progress=False)
    c = torch.load(longer, weights_only=False)["state"]
    assert all(torch.equal(a[k], c[k]) for k in a)
    code = train.main(["--variant", "L3", "--data", small_data, "--out", str(tmp_path / "whole"),
                       "--config", "tiny", "--lr", "0.001", "--quiet"])
    assert code == 2 and "lr = 0.01, now 0.001" in capsys.readouterr().err


@pytest.fixture(scope="module")
def exported(small_data, tmp_path_factory):
    """{variant: artifact} of tiny models trained 2 steps, and the starts file (3 rows)."""
    from hybridsolver_plugins.hine import export, train

    folder = tmp_path_factory.mktemp("hine_artifacts")
    train.CONFIGS["tiny"] = TINY | {"steps": 2}
    try:
        paths = {}
        for variant in ("L1", "L2", "L3", "history"):
            train.train(variant, small_data, str(folder / variant), "tiny", progress=False)
            paths[variant] = export.export_variant(variant, str(folder / variant), small_data, str(folder))
    finally:
        del train.CONFIGS["tiny"]
    return paths, export.export_starts(small_data, str(folder), 3, 4)[0]


def _case(starts, artifact, steps, members=3, first=0, max_batch=None):
    with open(os.path.join(CASES, "betaplane64_hine.toml"), "rb") as f:
        raw = tomllib.load(f)
    raw["grid"]["shape"] = [32, 32]
    raw["initial_condition"]["path"] = starts
    raw["time"]["steps"] = steps
    raw["ensemble"] |= {"members": members, "first_member": first}
    raw["plugins"] = [{"path": artifact, "every": 1} | ({"max_batch": max_batch} if max_batch else {})]
    raw["output"] = {"fields_every": 1, "diagnostics_every": 1, "checkpoint_every": 2}
    return raw


@pytest.mark.parametrize("variant", ["L3", "history"])
def test_the_host_s_rollout_is_the_model_s_start_up_then_case_c_with_its_own_predictions(exported, variant):
    from hybridsolver import Simulation
    from hybridsolver_plugins.hine.hierarchy import A, B, C
    from hybridsolver_plugins.hine.train import load_model

    paths, starts = exported
    sim = Simulation.from_case(_case(starts, paths[variant], 3))
    sim.advance(3)
    model, record = load_model(os.path.join(os.path.dirname(paths[variant]), variant, "model.pt"))
    u = torch.from_numpy(np.load(starts)[:, None] / 10).float()
    case = {k: torch.full((3,), k) for k in (A, B, C)}
    zero1, zero2 = torch.zeros(3, 1, 16, 16), torch.zeros(3, 1, 4, 4)
    with torch.no_grad():
        if variant == "L3":
            _, z1, _ = model.step(u, u * 0, zero1, zero2, case[A])
            _, _, z2 = model.step(u, u * 0, z1, zero2, case[B])
            for _ in range(3):
                u, z1, z2 = model.step(u, u * 0, z1, z2, case[C])
        else:
            prev, u = u, model.step(u, u * 0, zero1, zero2, case[A])[0]
            for _ in range(2):
                prev, u = u, model.step(u, prev, zero1, zero2, case[C])[0]
    expected = u[:, 0].double().numpy() * 10
    assert np.allclose(sim.fields()["vorticity"], expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("variant", ["L1", "L2", "L3", "history"])
def test_a_member_has_the_same_bits_in_any_ensemble_batch_and_across_a_resume(exported, tmp_path, variant,
                                                                             request):
    import tomli_w
    from run_files import assert_same_run_files
    from test_emulators import _run_until_signal

    from hybridsolver import Simulation
    from hybridsolver.cli import main

    paths, starts = exported
    runs = []
    for members, max_batch, first in [(3, 1, 0), (3, 2, 0), (3, None, 0), (1, None, 2)]:
        sim = Simulation.from_case(_case(starts, paths[variant], 4, members, first, max_batch))
        sim.advance(4)
        runs.append(sim.state[2 - first].copy())
    assert all(np.array_equal(r, runs[0]) for r in runs[1:])
    if variant not in ("L3", "history"):
        return  # the kill and resume of the two kinds of state
    # the killed run is a fresh process with torch's default threads (convolution bits
    # depend on the thread count): the uninterrupted and resumed runs match it
    default = subprocess.run([sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
                             capture_output=True, text=True, check=True).stdout
    threads = torch.get_num_threads()
    torch.set_num_threads(int(default))
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    case = tmp_path / "case.toml"
    case.write_text(tomli_w.dumps(_case(starts, paths[variant], 5)))
    assert main(["run", str(case), "--out", whole, "--quiet"]) == 0
    code, err = _run_until_signal(str(case), killed, 3, signal.SIGKILL)
    assert code == -signal.SIGKILL, err
    assert main(["run", str(case), "--resume", "--out", killed, "--quiet"]) == 0
    assert_same_run_files(killed, whole)


def test_the_evaluation_scores_the_truth_as_exact_and_runs_each_model(exported, small_data, tmp_path, monkeypatch):
    import tomli_w

    from hybridsolver_plugins.hine import evaluate
    from hybridsolver_plugins.hine.data import load_vorticity

    paths, starts = exported
    monkeypatch.setattr(evaluate, "HORIZON", 3)
    monkeypatch.setattr(evaluate, "LATE", 4)
    monkeypatch.setattr(evaluate, "LATE_EVERY", 2)
    omega, _, length = load_vorticity(small_data, "test")
    band = (0.0, 1e9)
    starts_list = [(0, 0), (0, 2), (0, 3)]
    truth = evaluate.truth_windows(omega, starts_list, 3).astype(np.float64)
    stationary = {"spectrum": evaluate.energy_spectrum(omega, length)[1],
                  "profile_amplitude": evaluate.profile_amplitude(omega)}
    run = {"energy": evaluate.kinetic_energy(truth, length), "early": truth, "steps": 3, "ms_per_step": 1.0,
           "late": truth, "length": length}
    row = evaluate.scores(run, truth, stationary, band)
    assert row["mse_mean"] == [0.0] * 3 and row["profile_error_early"] == 0.0 and row["inside"] == 1.0
    assert row["spectrum_error"] < 0.5 and row["profile_error_late"] < 1.0
    case = tmp_path / "case.toml"
    case.write_text(tomli_w.dumps(_case(starts, paths["L3"], 4)))
    table = evaluate.evaluate([paths["L1"], paths["L3"]], small_data, str(case), steps=6, out=str(tmp_path / "ev"),
                              starts=starts, progress=False)
    assert set(table) == {"truth", "L1.pt", "L3.pt"} and len(table["L3.pt"]["mse_mean"]) == 3
    assert os.path.isfile(tmp_path / "ev" / "survival.png") and os.path.isfile(tmp_path / "ev" / "mse.png")
