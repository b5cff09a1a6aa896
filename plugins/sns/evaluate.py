"""Long rollouts of the SNS family's models against the numerical solution (the issue's
table): stability, late-time spectra, temporal consistency and cost.

    python -m plugins.sns.evaluate [--models sns_unet solver] [--data data/sns]
        [--case cases/kolmogorov64_sns.toml] [--steps 3000] [--out runs/sns/evaluation]

Each model is one ensemble run of ``--case`` (64², Delta t = 0.002 per step, one member
per initial condition of ``plugins/sns/artifacts/starts.npy``, made by ``python -m
plugins.sns.export --starts``) with the model as its only plugin (a registered name or
an artifact path; ``solver`` runs the case's own 64² solver, no plugin), stepped one step
at a time for ``--steps`` steps.  Each step records every member's kinetic energy and
rate of change, and every ``RECORD_EVERY`` steps its vorticity.  The truth is the
test split of ``--data`` (the spectrally truncated DNS) from the same starts.

Scores (per model, into ``OUT/evaluation.json``, figures ``OUT/*.png``):

- ``exit_steps``: per initial condition, the first step whose energy leaves the truth's
  mean ± 5 std (over every test snapshot; :func:`hybridsolver.stability.exit_steps`),
  -1 if it never does; ``inside`` the fraction that never does;
- ``spectrum_error``: the log-spectral RMSE of the members' mean KE spectrum over the
  last tenth of the rollout's records against the truth's time mean;
- ``correlation_error`` / ``rate_error``, early (steps 0-250 from the starts, against the
  truth from the same starts) and late (the last 250 steps, against the truth's mean over
  every window of the test trajectories): the RMS over lags 0 .. 250 steps of the
  difference of the members' mean C(tau) (:func:`hybridsolver.stability.spatiotemporal_correlation`),
  and the relative error of the mean rate of change R (mean |x_{t+1} - x_t| / Delta t);
- ``ms_per_step``: wall time of one step of the whole ensemble (the host's call and its
  plugin), without the evaluation's own recording;
- ``reverse_steps_histogram`` (Thermalizer, SNS): counts of the reverse (denoising) steps
  a member's emulator step took, 0, 1, 2, ... (the paper's Fig. 7), over every member and
  step, from the plugin's ``reverse_steps`` state.

Members that stop being finite are left out of the spectra, C and R (``finite`` counts
the ones kept).
"""
import argparse
import json
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.stability import NEVER, exit_steps, rate_of_change, reference_band, spatiotemporal_correlation

from ..flow_statistics import energy_spectrum, kinetic_energy, log_spectral_rmse
from .data import load_vorticity
from .registry import ARTIFACTS

CASE = "cases/kolmogorov64_sns.toml"
RECORD_EVERY = 5  # steps between stored vorticity records
WINDOW = 250  # steps of the early and late windows
SIGMAS = 5.0


def rollout(case, model, starts_path, steps, progress=True):
    """One ensemble run of ``model`` (a plugin name or path, or 'solver') for ``steps``
    steps: {'energy' (M, steps + 1), 'rate' (M, steps), 'records' (M, R, n, n) float32
    every RECORD_EVERY steps, 'seconds' (stepping only)}."""
    plugins = [] if model == "solver" else [{"path": model, "every": 1}]
    overrides = {"plugins": plugins, "time.steps": steps, "initial_condition.path": starts_path,
                 "output.fields_every": 0, "output.diagnostics_every": 0}
    sim = Simulation.from_case(case, overrides)
    length = sim.grid.length
    omega = sim.fields()["vorticity"]
    energy, rate, records = [kinetic_energy(omega, length)], [], [omega.astype(np.float32)]
    seconds, reverse, counter = 0.0, [], None
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=model, dynamic_ncols=True):
        started = time.perf_counter()
        sim.advance(1)
        seconds += time.perf_counter() - started
        counter = counter or reverse_step_counter(sim)  # the plugin starts at the first step
        if counter is not None:
            reverse.append(counter())
        new = sim.fields()["vorticity"]
        with np.errstate(invalid="ignore", over="ignore"):
            energy.append(kinetic_energy(new, length))
            rate.append(np.mean(np.abs(new - omega), axis=(-2, -1)) / sim.dt)
        if step % RECORD_EVERY == 0:
            records.append(new.astype(np.float32))
        omega = new
    return {"energy": np.stack(energy, 1), "rate": np.stack(rate, 1), "records": np.stack(records, 1),
            "seconds": seconds, "dt": sim.dt, "length": length,
            "reverse_steps": np.stack(reverse, 1) if reverse else None}


def reverse_step_counter(sim):
    """A function returning the members' reverse steps (M,) of the last call of the
    simulation's plugin, if it keeps them in its ``reverse_steps`` state (Thermalizer,
    SNS); else None."""
    if not sim.hooks or not hasattr(sim.hooks[0], "state_specs"):
        return None
    hook = sim.hooks[0]
    names = [name for name, _, _ in hook.state_specs]
    if "reverse_steps" not in names:
        return None
    index = names.index("reverse_steps")
    return lambda: hook.member_state[index][:, 0].cpu().numpy().astype(np.int64)


def truth_rollout(omega, starts, steps, length, dt):
    """The test data's counterpart of :func:`rollout` over ``steps`` steps from ``starts``
    [(trajectory, snapshot)] (snapshots one emulator step apart)."""
    windows = np.stack([omega[t, s:s + steps + 1] for t, s in starts])
    return {"energy": kinetic_energy(windows, length), "rate": rate_of_change(windows, dt),
            "records": windows[:, ::RECORD_EVERY]}


def correlation(records, lags):
    """Members' mean C(tau) (len(lags),) of ``records`` (M, R, n, n), finite members only."""
    keep = np.all(np.isfinite(records), axis=(1, 2, 3))
    return np.nanmean(spatiotemporal_correlation(records[keep], lags), axis=0)


def stationary_correlation(omega, lags, length):
    """The test trajectories' C(tau) (len(lags),), the mean over consecutive windows of
    ``length`` records (every RECORD_EVERY snapshots) of each trajectory."""
    records = omega[:, ::RECORD_EVERY]
    n = records.shape[1] // length
    windows = records[:, :n * length].reshape((-1, length) + records.shape[2:])
    return correlation(windows, lags)


def scores(run, truth, stationary, band, steps):
    """The evaluation scores of one rollout ``run`` (:func:`rollout`) against ``truth``
    (:func:`truth_rollout` of the same starts) and the test data's ``stationary`` statistics."""
    exits = exit_steps(run["energy"], np.arange(run["energy"].shape[1]), *band)
    finite = np.all(np.isfinite(run["records"]), axis=(1, 2, 3)) & np.all(np.isfinite(run["rate"]), axis=1)
    window = WINDOW // RECORD_EVERY
    lags = np.arange(window + 1)
    late_records = run["records"][finite, -window - 1:]
    out = {"exit_steps": exits.tolist(), "inside": float(np.mean(exits == NEVER)), "finite": int(finite.sum()),
           "ms_per_step": 1e3 * run["seconds"] / steps}
    if run.get("reverse_steps") is not None:
        out["reverse_steps_histogram"] = np.bincount(run["reverse_steps"].ravel()).tolist()
    if not finite.any():
        return out
    tail = max(1, run["records"].shape[1] // 10)
    k, spectrum = energy_spectrum(run["records"][finite, -tail:], run["length"])
    early_c = correlation(run["records"][finite, :window + 1], lags)
    early_truth = correlation(truth["records"][finite, :window + 1], lags)
    late_c = correlation(late_records, lags)
    early_rate = run["rate"][finite, :WINDOW].mean()
    late_rate = run["rate"][finite, -WINDOW:].mean()
    out.update({
        "spectrum": spectrum.tolist(),
        "spectrum_error": log_spectral_rmse(spectrum, stationary["spectrum"]),
        "correlation_early": early_c.tolist(), "correlation_late": late_c.tolist(),
        "correlation_error_early": float(np.sqrt(np.mean((early_c - early_truth) ** 2))),
        "correlation_error_late": float(np.sqrt(np.mean((late_c - stationary["correlation"]) ** 2))),
        "rate_early": float(early_rate), "rate_late": float(late_rate),
        "rate_error_early": float(abs(early_rate / truth["rate"][finite, :WINDOW].mean() - 1)),
        "rate_error_late": float(abs(late_rate / stationary["rate"] - 1)),
    })
    return out


def evaluate(models, data, case=CASE, steps=3000, out="runs/sns/evaluation", starts=None, progress=True):
    """Run and score ``models``; writes and returns the evaluation table {model: scores}."""
    starts = starts or os.path.join(ARTIFACTS, "starts.npy")
    with open(os.path.splitext(starts)[0] + ".json") as f:
        start_list = [(s["test_trajectory"], s["snapshot"]) for s in json.load(f)["starts"]]
    omega, times, length = load_vorticity(data, "test")
    dt = float(times[1] - times[0])
    if steps < WINDOW or max(s for _, s in start_list) + WINDOW >= omega.shape[1]:
        raise CaseError(f"--steps {steps}: the early window needs {WINDOW} steps of the rollout and of the test "
                        "trajectories after every start")
    band = reference_band(kinetic_energy(omega, length), SIGMAS)
    lags = np.arange(WINDOW // RECORD_EVERY + 1)
    stationary = {"spectrum": energy_spectrum(omega, length)[1], "rate": float(rate_of_change(omega, dt).mean()),
                  "correlation": stationary_correlation(omega, lags, len(lags))}
    truth = truth_rollout(omega, start_list, WINDOW, length, dt)
    os.makedirs(out, exist_ok=True)
    table = {"truth": {"band": list(band), "spectrum": stationary["spectrum"].tolist(),
                       "correlation": stationary["correlation"].tolist(), "rate": stationary["rate"],
                       "steps": steps, "starts": start_list}}
    runs = {}
    for model in models:
        runs[model] = rollout(case, model, starts, steps, progress)
        table[os.path.basename(model)] = scores(runs[model], truth, stationary, band, steps)
        with open(os.path.join(out, "evaluation.json"), "w") as f:
            json.dump(table, f, indent=1)
    plot(runs, truth, table, band, os.path.join(out, "rollouts.png"))
    plot_reverse_steps(table, os.path.join(out, "reverse_steps.png"))
    return table


def plot(runs, truth, table, band, path):
    """Energy against time (with the band), late spectra, C(tau) and R(t) of every model
    beside the truth."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(18, 4))
    k = np.arange(len(table["truth"]["spectrum"]))
    lags = RECORD_EVERY * np.arange(len(table["truth"]["correlation"]))
    axes[0].axhspan(*band, color="0.9", label="truth mean ± 5 std")
    axes[1].loglog(k[1:], table["truth"]["spectrum"][1:], "k", lw=2, label="truth")
    axes[2].plot(lags, table["truth"]["correlation"], "k", lw=2, label="truth")
    axes[3].plot(truth["rate"].mean(axis=0), "k", lw=2, label="truth (early window)")
    for model, run in runs.items():
        name = os.path.basename(model)
        line = axes[0].plot(run["energy"].T, lw=0.6)[0]
        line.set_label(name)
        if "spectrum" in table[name]:
            axes[1].loglog(k[1:], table[name]["spectrum"][1:], label=name)
            axes[2].plot(lags, table[name]["correlation_late"], label=f"{name} (late)")
        axes[3].plot(np.nanmean(run["rate"], axis=0), lw=0.8, label=name)
    axes[0].set(xlabel="step", ylabel="kinetic energy", yscale="log")
    axes[1].set(xlabel="k", ylabel="E(k), late")
    axes[2].set(xlabel="lag (steps)", ylabel="C(tau)")
    axes[3].set(xlabel="step", ylabel="R(t)", yscale="log")
    for ax in axes:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_reverse_steps(table, path):
    """The histograms of reverse steps per emulator step of the models that report them."""
    rows = {name: row["reverse_steps_histogram"] for name, row in table.items() if "reverse_steps_histogram" in row}
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, counts in rows.items():
        counts = np.asarray(counts, dtype=float)
        ax.bar(np.arange(len(counts)), counts / counts.sum(), alpha=0.6, label=name)
    ax.set(xlabel="reverse steps per emulator step", ylabel="fraction of member-steps")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["sns_unet", "solver"])
    parser.add_argument("--data", default="data/sns")
    parser.add_argument("--case", default=CASE)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--out", default="runs/sns/evaluation")
    parser.add_argument("--starts", help="initial conditions (default plugins/sns/artifacts/starts.npy)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    try:
        table = evaluate(args.models, args.data, args.case, args.steps, args.out, args.starts, not args.quiet)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for model, row in table.items():
        if model != "truth":
            print(f"{model}: inside {row['inside']:.2f}, exits {row['exit_steps']}, "
                  f"spectrum error {row.get('spectrum_error', float('nan')):.3f}, "
                  f"C error early/late {row.get('correlation_error_early', float('nan')):.3f}/"
                  f"{row.get('correlation_error_late', float('nan')):.3f}, "
                  f"R error early/late {row.get('rate_error_early', float('nan')):.3f}/"
                  f"{row.get('rate_error_late', float('nan')):.3f}, {row['ms_per_step']:.1f} ms/step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
