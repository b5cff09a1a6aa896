"""Rollouts of the HINE family's models against the DNS (the issue's tables): MSE per
step, long-horizon stability, zonal-mean profiles and spectra.

    python -m plugins.hine.evaluate [--models hine_l1 hine_l2 hine_l3 hine_history] [--data data/hine]
        [--case cases/betaplane64_hine.toml] [--steps 5000] [--out runs/hine/evaluation] [--threads 1]

Each model is one ensemble run of ``--case`` (64², one step of 0.05 per call, one member
per initial condition of ``plugins/hine/artifacts/starts.npy``) with the model as its
only plugin (a registered name or an artifact path), stepped one step at a time for
``--steps`` steps (default 5000: ten times a training trajectory's 500 snapshots), or
until every member has left the band.  The truth is the test split of ``--data``.

Scores (per model, into ``OUT/evaluation.json``; figures ``OUT/survival.png``,
``OUT/mse.png`` and ``OUT/spectra.png``):

- ``mse``: per step 1 .. ``HORIZON`` (100), the mean over grid points of the squared
  difference of the normalised vorticity (/ 10) from the truth from the same start;
  ``mse_mean`` / ``mse_std`` over the initial conditions;
- ``exit_steps``: per initial condition, the first step whose kinetic energy leaves the
  truth's mean ± 5 std (over every test snapshot; :func:`hybridsolver.stability.exit_steps`,
  checked every step, where the paper checks every 100), -1 if it never does; ``inside``
  the fraction that never does; ``survival`` the fraction inside at each step;
- ``profile_error_early``: the relative L2 error of the zonal-mean vorticity profile
  averaged over steps 1 .. ``HORIZON``, against the truth from the same start (mean over
  the initial conditions);
- ``profile_error_late``: over the last ``LATE`` steps of the rollout (of ``--steps``, or
  up to the step where the last member left the band) of the members still finite
  (``late_members``), the relative L2 error of the time-mean amplitude spectrum sqrt(<|P_hat(k_y)|^2>) of
  the zonal-mean vorticity profile P(y) against the test data's (phase-free: the jets'
  number and strength, not their latitude, which differs between trajectories);
- ``spectrum_error``: the log-spectral RMSE of the same members' time-mean KE spectrum
  over the last ``LATE`` steps against the test data's;
- ``ms_per_step``: wall time of one step of the whole ensemble, after the first
  ``WARM_UP`` steps.
"""
import argparse
import collections
import json
import os
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.stability import NEVER, exit_steps, reference_band, survival

from ..flow_statistics import energy_spectrum, kinetic_energy, log_spectral_rmse, zonal_mean
from .data import SCALE, load_vorticity
from .registry import ARTIFACTS

CASE = "cases/betaplane64_hine.toml"
MODELS = ["hine_l1", "hine_l2", "hine_l3", "hine_history"]
HORIZON = 100  # steps of the MSE table
LATE = 500  # steps of the late window
LATE_EVERY = 10  # steps between the late window's records
SIGMAS = 5.0
WARM_UP = 3  # first steps left out of the timing (TorchScript optimises its first calls)
PAPER_STEPS = (1, 25, 50, 75, 100)


def profile_amplitude(omega):
    """sqrt of the time-mean |FFT_y of the zonal-mean vorticity|^2, k_y = 0 .. ny/2, of
    ``omega`` (T, ny, nx) or (M, T, ny, nx) (all leading axes averaged)."""
    profile = zonal_mean(omega)
    power = np.abs(np.fft.rfft(profile.reshape(-1, profile.shape[-1]), axis=-1)) ** 2
    return np.sqrt(power.mean(axis=0))


def relative_error(a, b):
    """||a - b|| / ||b|| over the last axis, k >= 1 for spectra (callers slice)."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def rollout(case, model, starts_path, steps, band, progress=True):
    """One ensemble run of ``model`` for up to ``steps`` steps: {'energy' (M, T + 1), 'early'
    (M, HORIZON + 1, n, n), 'late' (M_finite, R, n, n) the records of the last LATE steps
    of the members still finite, 'inside_at_end' (M,), 'steps' taken, 'ms_per_step'}."""
    overrides = {"plugins": [{"path": model, "every": 1}], "time.steps": steps,
                 "initial_condition.path": starts_path, "ensemble.members": len(np.load(starts_path)),
                 "output.fields_every": 0, "output.diagnostics_every": 0}
    sim = Simulation.from_case(case, overrides)
    length = sim.grid.length
    omega = sim.fields()["vorticity"]
    energy, early = [kinetic_energy(omega, length)], [omega.astype(np.float32)]
    late = collections.deque(maxlen=LATE // LATE_EVERY)  # the records of the last LATE steps
    seconds, step = 0.0, 0
    low, high = band
    out = np.zeros(len(omega), dtype=bool)
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=os.path.basename(model), dynamic_ncols=True):
        started = time.perf_counter()
        sim.advance(1)
        if step > WARM_UP:
            seconds += time.perf_counter() - started
        omega = sim.fields()["vorticity"]
        with np.errstate(invalid="ignore", over="ignore"):
            e = kinetic_energy(omega, length)
            out |= ~((e >= low) & (e <= high))
        energy.append(e)
        if step <= HORIZON:
            early.append(omega.astype(np.float32))
        if step % LATE_EVERY == 0:
            late.append(omega.astype(np.float32))
        if out.all() and step >= HORIZON:
            break
    late = np.stack(late, 1)
    return {"energy": np.stack(energy, 1), "early": np.stack(early, 1), "steps": step,
            "late": late[np.all(np.isfinite(late), axis=(1, 2, 3))], "inside_at_end": ~out, "length": length,
            "ms_per_step": 1e3 * seconds / max(step - WARM_UP, 1)}


def truth_windows(omega, starts, horizon):
    """The test data from ``starts`` [(trajectory, snapshot)]: (M, horizon + 1, n, n)."""
    return np.stack([omega[t, s:s + horizon + 1] for t, s in starts])


def scores(run, truth, stationary, band):
    """The scores of one rollout ``run`` (:func:`rollout`) against the ``truth`` windows
    from its starts and the test data's ``stationary`` statistics."""
    steps = np.arange(run["energy"].shape[1])
    exits = exit_steps(run["energy"], steps, *band)
    mse = np.mean((run["early"][:, 1:].astype(np.float64) - truth[:, 1:]) ** 2, axis=(-2, -1)) / SCALE ** 2
    profile = zonal_mean(run["early"][:, 1:]).mean(axis=1)
    true_profile = zonal_mean(truth[:, 1:]).mean(axis=1)
    out = {"exit_steps": exits.tolist(), "inside": float(np.mean(exits == NEVER)),
           "survival": survival(exits, steps).tolist(), "steps_run": int(run["steps"]),
           "mse_mean": np.nanmean(mse, axis=0).tolist(), "mse_std": np.nanstd(mse, axis=0).tolist(),
           "profile_error_early": float(np.nanmean(np.linalg.norm(profile - true_profile, axis=-1)
                                                   / np.linalg.norm(true_profile, axis=-1))),
           "ms_per_step": run["ms_per_step"]}
    if len(run["late"]):
        spectrum = energy_spectrum(run["late"], run["length"])[1]
        out.update({"late_members": int(len(run["late"])), "spectrum": spectrum.tolist(),
                    "spectrum_error": log_spectral_rmse(spectrum, stationary["spectrum"]),
                    "profile_error_late": relative_error(profile_amplitude(run["late"])[1:],
                                                         stationary["profile_amplitude"][1:])})
    return out


def evaluate(models, data, case=CASE, steps=5000, out="runs/hine/evaluation", starts=None, progress=True):
    """Run and score ``models``; writes and returns the evaluation table {model: scores}."""
    starts = starts or os.path.join(ARTIFACTS, "starts.npy")
    with open(os.path.splitext(starts)[0] + ".json") as f:
        start_list = [(s["test_trajectory"], s["snapshot"]) for s in json.load(f)["starts"]]
    omega, _, length = load_vorticity(data, "test")
    if steps < max(HORIZON, LATE) or max(s for _, s in start_list) + HORIZON >= omega.shape[1]:
        raise CaseError(f"--steps {steps}: the MSE needs {HORIZON} steps of the rollout and of the test "
                        f"trajectories after every start, and the late window {LATE} steps")
    band = reference_band(kinetic_energy(omega, length), SIGMAS)
    stationary = {"spectrum": energy_spectrum(omega, length)[1], "profile_amplitude": profile_amplitude(omega)}
    truth = truth_windows(omega, start_list, HORIZON).astype(np.float64)
    os.makedirs(out, exist_ok=True)
    table = {"truth": {"band": list(band), "spectrum": stationary["spectrum"].tolist(),
                       "profile_amplitude": stationary["profile_amplitude"].tolist(), "steps": steps,
                       "starts": start_list}}
    for model in models:
        run = rollout(case, model, starts, steps, band, progress)
        table[os.path.basename(model)] = scores(run, truth, stationary, band)
        with open(os.path.join(out, "evaluation.json"), "w") as f:
            json.dump(table, f, indent=1)
    plot(table, out)
    return table


def plot(table, out):
    """``survival.png`` (fraction inside the band against step), ``mse.png`` (MSE
    against step, mean and std band) and ``spectra.png`` (the late KE spectra beside the
    test data's) of every model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {name: row for name, row in table.items() if name != "truth"}
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in rows.items():
        ax.plot(row["survival"], label=f"{name} ({100 * row['inside']:.0f}% inside)")
    ax.set(xlabel="emulator step (0.05 each)", ylabel="fraction inside mean ± 5 std", ylim=(-0.02, 1.02))
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "survival.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, row in rows.items():
        mean, std = np.asarray(row["mse_mean"]), np.asarray(row["mse_std"])
        t = np.arange(1, len(mean) + 1)
        ax.plot(t, mean, label=name)
        ax.fill_between(t, np.maximum(mean - std, 1e-8), mean + std, alpha=0.15)
    ax.set(xlabel="emulator step", ylabel="MSE (vorticity / 10)", yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "mse.png"), dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    k = np.arange(len(table["truth"]["spectrum"]))
    ax.loglog(k[1:], table["truth"]["spectrum"][1:], "k", lw=2, label="DNS (test data)")
    for name, row in rows.items():
        if "spectrum" in row:
            ax.loglog(k[1:], row["spectrum"][1:], label=f"{name} (late window)")
    ax.set(xlabel="k", ylabel="E(k)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "spectra.png"), dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--data", default="data/hine")
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--out", default="runs/hine/evaluation")
    parser.add_argument("--starts", help="initial conditions (default plugins/hine/artifacts/starts.npy)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        table = evaluate(args.models, args.data, args.case, args.steps, args.out, args.starts, not args.quiet)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for model, row in table.items():
        if model == "truth":
            continue
        mse = "/".join(f"{row['mse_mean'][s - 1]:.2e}" for s in PAPER_STEPS)
        print(f"{model}: MSE at {'/'.join(map(str, PAPER_STEPS))}: {mse}; inside {row['inside']:.2f}; "
              f"profile error early {row['profile_error_early']:.3f}, late "
              f"{row.get('profile_error_late', float('nan')):.3f}; spectrum error "
              f"{row.get('spectrum_error', float('nan')):.3f}; {row['ms_per_step']:.1f} ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
