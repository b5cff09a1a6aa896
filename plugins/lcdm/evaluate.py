"""Evaluate L-CDM / P-CDM closures offline and in closed loop against the DNS.

    python -m plugins.lcdm.evaluate [--runs joint two-phase pcdm] [--data data/lcdm]
        [--artifacts plugins/lcdm/artifacts] [--members 16] [--samples 4]
        [--seed 0] [--out runs/lcdm/evaluate] [--skip-closed-loop]
        [--strategies none advection lcdm lcdm-mean pcdm] [--tau-max 0.1]

Offline (:func:`offline`), on test pairs spread over the test trajectories: the
reconstruction ``D_H(E_H(H))``, the generated latent (against ``E_H(H)``) and the
generated physical ``H`` (against the DNS), each as ``D_MSE = |X - X^|_F^2 / N``
(N elements) and ``D_RE = |X - X^|_F / |X|_F`` per pair, averaged over pairs.  Latents
are in normalised units, physical fields in 1/time^2.  Generation integrates the
reverse SDE over the whole diffusion (``tau_max = 1``, N = 10 Karras steps); the noise
comes from a torch generator seeded with ``--seed``.

Closed loop (:func:`closed_loop`): the 64^2 reduced model of
``cases/kolmogorov64_lcdm.toml`` (no advection; H from the closure every 5 steps,
held in between) from the test trajectory's truth at t = 30 for 20 time units, an
ensemble of ``--members`` members, with the strategies *per-sample* (one sample per
member and call), *ensemble-mean* (each call averages ``--samples`` samples) and
*no correction* (H = 0), and for reference the 64^2 model with its own advection term;
the P-CDM artifact runs per-sample to ``--pcdm-horizon`` (t = 35 by default), and the
closed-loop wall-time ratio P-CDM / L-CDM is taken over that window.
The table gives the vorticity ``D_RE`` against the truth at
t = 35, 40, 45, 50, averaged over members, and each run's wall time.  Writes
``offline.json``, ``closed_loop.json`` and ``closed_loop.png`` into ``--out`` and
prints the tables in Markdown.
"""
import argparse
import json
import os
import sys
import time
import tomllib

import numpy as np
import torch

from hybridsolver import Simulation
from hybridsolver.case import CaseError

from .data import load_pairs
from .models import SAMPLER
from .registry import ARTIFACTS
from .train import load_model

REDUCED_CASE = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "cases", "kolmogorov64_lcdm.toml")
TRUTH_TIMES = (35.0, 40.0, 45.0, 50.0)
STRATEGIES = ("none", "advection", "lcdm", "lcdm-mean", "pcdm")  # --strategies keys


def relative_errors(truth, estimate):
    """``|X - X^|_F / |X|_F`` of each row of arrays (N, ...): (N,) float64."""
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    diff = (truth - estimate).reshape(len(truth), -1)
    return np.linalg.norm(diff, axis=1) / np.linalg.norm(truth.reshape(len(truth), -1), axis=1)


def metrics(truth, estimate):
    """{'D_MSE', 'D_RE'} of arrays (N, ...): mean squared error, and the relative
    Frobenius error of each row averaged over rows."""
    truth, estimate = np.asarray(truth, np.float64), np.asarray(estimate, np.float64)
    return {"D_MSE": float(((truth - estimate) ** 2).mean()), "D_RE": float(relative_errors(truth, estimate).mean())}


def paired_difference(a, b):
    """(mean of a - b, its standard error) of two per-pair error lists on the same pairs."""
    diff = np.asarray(a) - np.asarray(b)
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def test_rows(count, pairs):
    """``pairs`` row indices spread evenly over ``count`` test pairs."""
    return np.unique(np.linspace(0, count - 1, min(pairs, count)).round().astype(int))


def generate(model, omega, seed=0, steps=10, tau_max=1.0, batch=100):
    """Generated latents (N, 1, n, n) and physical H (N, 1, 64, 64) for vorticity (N, 1, 64, 64)."""
    sampler = model.sampler().eval()
    n = sampler.latent
    generator = torch.Generator().manual_seed(seed)
    options = {k: float(v) for k, v in SAMPLER.items()} | {"tau_max": tau_max}
    z_all, h_all = [], []
    with torch.inference_mode():
        for lo in range(0, len(omega), batch):
            x = torch.from_numpy(omega[lo:lo + batch])
            noise = [torch.randn(len(x), 1, 1, n, n, generator=generator),
                     torch.randn(len(x), 1, steps, 1, n, n, generator=generator)]
            z = sampler.sample_latent(x, noise, options)
            z_all.append(z.numpy())
            h_all.append(sampler.decode(z).numpy())
    return np.concatenate(z_all), np.concatenate(h_all)


def offline(model, data, pairs=1000, seed=0, steps=10, tau_max=1.0):
    """Offline metrics of a trained model on ``pairs`` test pairs (see the module docstring)."""
    omega, closure, _ = load_pairs(data, "test")
    rows = test_rows(len(omega), pairs)
    omega, closure = omega[rows], closure[rows]
    z, h = generate(model, omega, seed, steps, tau_max)
    out = {"pairs": int(len(rows)), "seed": seed, "steps": steps, "tau_max": tau_max,
           "physical": metrics(closure, h), "physical_D_RE_pairs": relative_errors(closure, h).tolist()}
    if hasattr(model, "enc_h"):
        with torch.inference_mode():
            target = model.encode_h(torch.from_numpy(closure / model.h_scale))[0]
            reconstruction = model.dec_h(target) * model.h_scale
        out["reconstruction"] = metrics(closure, reconstruction.numpy())
        out["latent"] = metrics(target.numpy(), z)
    return out


def reduced_case(members, initial, plugin=None, samples=1, seed=0, advection=False, tau_max=None):
    """The raw case dict of a closed-loop run: ``cases/kolmogorov64_lcdm.toml`` with
    ``members``, the initial field file, and ``plugin`` (an artifact path in the case's
    plugin entry, or None for no correction) averaging ``samples`` samples per call,
    started at diffusion time ``tau_max`` (None: the artifact's default, 0.1).  ``advection = True`` (with
    no plugin) is the 64^2 model with its own, resolved advection term."""
    with open(REDUCED_CASE, "rb") as f:
        case = tomllib.load(f)
    case["equation"]["advection"] = advection
    case["ensemble"] = {"members": members, "seed": seed}
    case["initial_condition"] = {"type": "file", "path": initial}
    sampler = {"samples": samples} | ({} if tau_max is None else {"tau_max": tau_max})
    case["plugins"] = [] if plugin is None else [case["plugins"][0] | {"path": plugin, "sampler": sampler}]
    return case


def closed_loop(case, truth_times, truth, progress=True):
    """Run a reduced case from t = 30 and compare with the truth at ``truth_times``.

    ``truth``: (T, 64, 64).  Returns {'D_RE': [per time, mean over members],
    'D_RE_members': [[per member] per time], 'seconds', 'fields': (T, M, 64, 64)}.
    """
    sim = Simulation.from_case(case)
    start = 30.0
    out = {"D_RE": [], "D_RE_members": [], "fields": [], "wall": []}
    sim.start_hooks()  # the artifacts' dry runs are not timed
    started = time.perf_counter()
    for t, field in zip(truth_times, truth):
        sim.advance(int(round((t - start) / sim.dt)) - sim.step)
        out["wall"].append(time.perf_counter() - started)
        omega = sim.fields()["vorticity"]
        per_member = [metrics(field[None], w[None])["D_RE"] for w in omega]
        out["D_RE"].append(float(np.mean(per_member)))
        out["D_RE_members"].append(per_member)
        out["fields"].append(omega)
        if progress:
            error = np.std(per_member, ddof=1) / np.sqrt(len(per_member)) if len(per_member) > 1 else 0.0
            print(f"  t = {t:g}: D_RE {out['D_RE'][-1]:.5f} +- {error:.5f} (standard error over members; "
                  f"{time.perf_counter() - started:.0f} s)", flush=True)
    out["seconds"] = time.perf_counter() - started
    out["fields"] = np.array(out["fields"])
    return out


def cost_per_sample(artifacts, batch=64, steps=10, repeats=5, device="cpu"):
    """Seconds per sample of each artifact's sampler (N = ``steps``, one sample per
    member, ``batch`` members per call) on ``device``, medians of interleaved repeats in
    one process (on CUDA each call is timed to its end: the device is synchronised)."""
    from hybridsolver.plugin import load_module, read_artifact

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    modules, inputs = {}, {}
    generator = torch.Generator().manual_seed(0)
    for name, path in artifacts.items():
        n = read_artifact(path)["noise"][0]["shape"][-1]
        modules[name] = load_module(path).to(device)
        inputs[name] = [t.to(device) for t in (torch.randn(batch, 1, 64, 64, generator=generator),
                                               torch.randn(batch, 1, 1, n, n, generator=generator),
                                               torch.randn(batch, 1, steps, 1, n, n, generator=generator))]
    options = {k: float(v) for k, v in SAMPLER.items()}  # the plugin's Dict[str, float]
    times = {name: [] for name in artifacts}
    with torch.inference_mode():
        for name, (x, *noise) in inputs.items():  # warm-up
            modules[name](x, noise, options)
        for _ in range(repeats):
            for name, (x, *noise) in inputs.items():
                sync()
                started = time.perf_counter()
                modules[name](x, noise, options)
                sync()
                times[name].append((time.perf_counter() - started) / batch)
    return {name: float(np.median(t)) for name, t in times.items()}


def read_truth(folder=ARTIFACTS):
    """The shipped closed-loop truth: (initial field path, times (T,), vorticity (T, 64, 64))."""
    import xarray as xr

    path = os.path.join(folder, "truth.nc")
    if not os.path.exists(path):
        raise CaseError(f"{path}: no closed-loop truth (write it with python -m plugins.lcdm.export --truth)")
    ds = xr.load_dataset(path)
    ds = ds.sel(time=[t for t in TRUTH_TIMES])
    return os.path.join(folder, "initial_t30.npy"), ds.time.values, ds.vorticity.values


def plot(results, truth_times, truth, path):
    """D_RE against time for each strategy, and the last truth time's fields of member 0
    (of the strategies that reached it)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    complete = [name for name, res in results.items() if len(res["fields"]) == len(truth_times)]
    fig, axes = plt.subplots(1, 2 + len(complete), figsize=(4 * (2 + len(complete)), 3.6))
    for name, res in results.items():
        axes[0].plot([30.0] + list(truth_times[:len(res["D_RE"])]), [0.0] + res["D_RE"], "o-", label=name)
    axes[0].set_xlabel("t")
    axes[0].set_ylabel("vorticity D_RE (mean over members)")
    axes[0].legend(fontsize=7)
    limit = np.abs(truth[-1]).max()
    panels = [("truth", truth[-1])] + [(name, results[name]["fields"][-1][0]) for name in complete]
    for ax, (title, field) in zip(axes[1:], panels):
        ax.imshow(field, origin="lower", cmap="RdBu_r", vmin=-limit, vmax=limit, extent=(0, 1, 0, 1))
        ax.set_title(f"{title}, t = {truth_times[-1]:g}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown_offline(table):
    lines = ["| model | reconstruction D_MSE | D_RE | latent D_MSE | D_RE | physical D_MSE | D_RE |",
             "|---|---|---|---|---|---|---|"]
    for name, m in table.items():
        cells = []
        for key in ("reconstruction", "latent", "physical"):
            cells += [f"{m[key]['D_MSE']:.3e}", f"{m[key]['D_RE']:.3f}"] if key in m else ["–", "–"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_closed_loop(results, truth_times):
    lines = ["| strategy | " + " | ".join(f"t = {t:g}" for t in truth_times) + " | wall s |",
             "|---|" + "---|" * (len(truth_times) + 1)]
    for name, res in results.items():
        cells = [f"{d:.3f}" for d in res["D_RE"]] + ["–"] * (len(truth_times) - len(res["D_RE"]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {res['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", nargs="*", default=["runs/lcdm/joint", "runs/lcdm/two-phase", "runs/lcdm/pcdm"],
                        help="training run folders for the offline table (missing ones are skipped)")
    parser.add_argument("--data", default="data/lcdm")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--artifacts", default=ARTIFACTS)
    parser.add_argument("--members", type=int, default=16)
    parser.add_argument("--samples", type=int, default=4, help="samples per call of the ensemble-mean strategy")
    parser.add_argument("--pcdm-horizon", type=float, default=35.0,
                        help="run the P-CDM closed loop to this time (default 35: it costs ~10x the L-CDM's)")
    parser.add_argument("--tau-max", type=float, default=None,
                        help="closed-loop diffusion start time (default: the artifact's, 0.1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="runs/lcdm/evaluate")
    parser.add_argument("--skip-closed-loop", action="store_true")
    parser.add_argument("--strategies", nargs="*", choices=STRATEGIES, default=list(STRATEGIES),
                        help="closed-loop runs to make (default all; the cost ratios need lcdm and pcdm)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    try:
        table = {}
        for run in args.runs:
            if os.path.exists(os.path.join(run, "model.pt")):
                model, _ = load_model(os.path.join(run, "model.pt"))
                table[os.path.basename(run)] = offline(model, args.data, args.pairs, args.seed)
        print(markdown_offline(table))
        if "joint" in table and "two-phase" in table:
            diff, error = paired_difference(table["joint"]["physical_D_RE_pairs"],
                                            table["two-phase"]["physical_D_RE_pairs"])
            table["joint_minus_two_phase_physical_D_RE"] = {"mean": diff, "standard_error": error}
            print(f"physical D_RE, joint - two-phase on the same pairs: {diff:+.4f} (standard error {error:.4f})")
        with open(os.path.join(args.out, "offline.json"), "w") as f:
            json.dump(table, f)
        if args.skip_closed_loop:
            return 0
        initial, times, truth = read_truth(args.artifacts)
        artifacts = {name: os.path.join(args.artifacts, f"{name}.pt") for name in ("lcdm", "pcdm")
                     if os.path.exists(os.path.join(args.artifacts, f"{name}.pt"))}
        every = len(times)
        pcdm_times = int(np.sum(times <= args.pcdm_horizon + 1e-9))
        runs = {"none": ("no correction", None, 1, False, every),
                "advection": ("64² advection (no closure)", None, 1, True, every),
                "lcdm": ("lcdm per-sample", artifacts.get("lcdm"), 1, False, every),
                "lcdm-mean": (f"lcdm ensemble-mean ({args.samples})", artifacts.get("lcdm"), args.samples, False,
                              every),
                "pcdm": ("pcdm per-sample", artifacts.get("pcdm"), 1, False, pcdm_times)}
        strategies = {name: rest for key, (name, *rest) in runs.items()
                      if key in args.strategies and (key not in ("lcdm", "lcdm-mean", "pcdm") or rest[0])}
        results = {}
        for name, (plugin, samples, advection, count) in strategies.items():
            print(f"closed loop: {name}", flush=True)
            case = reduced_case(args.members, initial, plugin, samples, args.seed, advection, args.tau_max)
            results[name] = closed_loop(case, times[:count], truth[:count])
        summary = {name: {k: v for k, v in res.items() if k != "fields"} for name, res in results.items()}
        if "lcdm per-sample" in results and "pcdm per-sample" in results:
            costs = cost_per_sample(artifacts)
            summary["cost_per_sample_s"] = costs
            summary["cost_ratio_pcdm_over_lcdm"] = costs["pcdm"] / costs["lcdm"]
            # over the same closed-loop window (the P-CDM horizon), from the seconds per truth time
            lcdm_window = results["lcdm per-sample"]["wall"][pcdm_times - 1]
            summary["closed_loop_wall_ratio_pcdm_over_lcdm"] = results["pcdm per-sample"]["wall"][-1] / lcdm_window
        with open(os.path.join(args.out, "closed_loop.json"), "w") as f:
            json.dump(summary, f, indent=1)
        plot(results, times, truth, os.path.join(args.out, "closed_loop.png"))
        print(markdown_closed_loop(results, times))
        for key in ("cost_per_sample_s", "cost_ratio_pcdm_over_lcdm", "closed_loop_wall_ratio_pcdm_over_lcdm"):
            if key in summary:
                print(f"{key}: {summary[key]}")
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
