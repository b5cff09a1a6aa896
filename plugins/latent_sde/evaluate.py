"""Test errors of the trained latent-SDE stages: the paper's predictive-mean metric.

    python -m plugins.latent_sde.evaluate --run runs/latent_sde/kdv --data data/kdv
        [--paths 64] [--substeps 4] [--seed 0] [--threads 2] [--stages N ...]
        [--out runs/latent_sde/kdv/evaluation.json]

For every ``eta<N>.pt`` of the run (or those of ``--stages``) and every test trajectory:
``paths`` sample paths of the emulator (:class:`~.emulator.LatentSDEEmulator`, the
module that is exported) start from the encoder at the first test snapshot and step from snapshot to snapshot with
``substeps`` Euler-Maruyama steps each; the predictive mean is the mean of mu_y over
the paths, the predictive variance Sigma_y (the likelihood's, the same for every z) plus
the paths' variance of mu_y.  The table goes to ``--out`` (rows of other stages already
there are kept).  The test error of a snapshot is ||y - mean||_2 / ||y||_2 against the
observed (noisy) test field y; the table gives its mean and standard deviation over all
test snapshots after the first, per stage, and ``coverage95``: the fraction of their
points with |y - mean| <= 1.96 sqrt(variance), the coverage of the Gaussian 95%
predictive interval (the host run's members carry mu_y only, without Sigma_y).

The coarse-solver baseline (row ``coarse``) is the host itself on the macroscale grid
(the fine grid divided by the model's stride per axis): the data's case with that grid
and ``dt`` the snapshot interval, started from the first test snapshot truncated to the
coarse grid's Fourier modes, its fields Fourier-interpolated back to the fine grid and
scored the same way.  For data on a window of a flow (the cylinder: (u, v) on a window of
the channel, whose full state the data do not hold) it is the data's case itself on a
grid ``WINDOW_COARSENING`` times coarser per axis (D = 16 cells becomes 4) with half the
snapshot interval as dt, run from its start like the data's, sampled on the window at
the test times.
"""
import argparse
import glob
import json
import os
import re
import sys

import numpy as np
import torch
from tqdm import tqdm

from hybridsolver import Simulation
from hybridsolver.case import CaseError
from hybridsolver.datasets import make_window, snapshot

from .emulator import LatentSDEEmulator
from .train import data_case, load_observations, load_stage


def predictive_moments(emulator, y0, times, paths, substeps, generator):
    """Mean and variance over ``paths`` sample paths of mu_y at ``times`` (T,), started
    from the encoder at ``y0`` (C, *grid) at times[0]: two (T, C, *grid) float64 (row 0
    the first call's start, mu_y of the encoder's draw is not taken: row 0 is y0 itself,
    variance 0)."""
    n_z = emulator.encoder_std.shape[0]
    x = y0[None].expand((paths,) + tuple(y0.shape)).double()
    state = [torch.zeros(paths, n_z)]
    out, spread = [y0.double()], [torch.zeros_like(y0, dtype=torch.float64)]
    for j in range(len(times) - 1):
        noise = [torch.randn(paths, n_z, generator=generator, dtype=torch.float64),
                 torch.randn(paths, substeps, n_z, generator=generator, dtype=torch.float64)]
        options = {"first": 1.0 if j == 0 else 0.0, "substeps": float(substeps), "every": 1.0,
                   "dt": float(times[j + 1] - times[j]), "time": float(times[j])}
        x, state = emulator(x, noise, options, state)
        out.append(x.mean(0))
        spread.append(x.var(0))
    return torch.stack(out), torch.stack(spread)


def gaussian_coverage(y, mean, var):
    """The fraction of the points of ``y`` inside the central 95% interval of N(mean, var)
    (|y - mean| <= 1.96 sqrt(var)); tensors of one shape, or broadcastable."""
    return ((y - mean).abs() <= 1.96 * var.sqrt()).double().mean().item()


def relative_errors(y, mean):
    """||y - mean|| / ||y|| per snapshot: y, mean (T, ...) -> (T,) numpy."""
    diff = (y - mean).flatten(1).norm(dim=1)
    return (diff / y.flatten(1).norm(dim=1)).numpy()


def resample(field, shape):
    """``field`` (..., *fine) on the periodic grid of ``shape`` (1D or 2D) by Fourier
    truncation or zero padding (the Nyquist modes of the smaller grid dropped)."""
    axes = tuple(range(-len(shape), 0))
    spectrum = np.fft.fftn(field, axes=axes)
    out = np.zeros(field.shape[:-len(shape)] + tuple(shape), dtype=complex)
    index = []
    for n_in, n_out in zip(field.shape[-len(shape):], shape):
        keep = (min(n_in, n_out) - 1) // 2  # modes -keep .. keep
        index.append((np.r_[0:keep + 1, n_in - keep:n_in], np.r_[0:keep + 1, n_out - keep:n_out]))
    if len(shape) == 1:
        out[..., index[0][1]] = spectrum[..., index[0][0]]
    else:
        out[..., index[0][1][:, None], index[1][1][None, :]] = spectrum[..., index[0][0][:, None], index[1][0][None, :]]
    scale = np.prod(shape) / np.prod(field.shape[-len(shape):])
    return np.real(np.fft.ifftn(out, axes=axes)) * scale


WINDOW_COARSENING = 4  # the coarse solver's grid for windowed data: the data's grid / 4 per axis


def coarse_window_baseline(case, y, t):
    """Test errors (all test snapshots after the first, (N,) numpy) of the windowed data's
    ``case`` on a grid WINDOW_COARSENING times coarser, run from its start to the test
    times ``t`` (T,) and sampled on the window; ``y`` (1, T, C, *window) the test data."""
    case["grid"]["shape"] = [n // WINDOW_COARSENING for n in case["grid"]["shape"]]
    dt = float(t[1] - t[0]) / 2
    case["time"] = {"scheme": case["time"]["scheme"], "dt": dt, "start": case["time"].get("start", 0.0),
                    "t_end": float(t[-1])}
    case["ensemble"] = {"members": 1, "seed": case["ensemble"]["seed"],
                        "first_member": case["ensemble"].get("first_member", 0)}
    case["output"] = {"fields_every": 0, "diagnostics_every": 0, "fields": case["output"]["fields"]}
    sim = Simulation.from_case(case)
    window = make_window(sim.case, sim.grid)
    names = sim.output_names
    errors = []
    for j in range(len(t)):
        sim.advance(round((float(t[j]) - sim.time) / dt))
        if j:
            sampled = snapshot(sim, window)
            errors.append(relative_errors(y[:, j], torch.from_numpy(np.stack([sampled[n] for n in names], axis=1))))
    return np.concatenate(errors)


def coarse_baseline(data, stride):
    """Test errors (all test snapshots after the first) of the host on the grid coarsened
    by ``stride`` per axis, or of :func:`coarse_window_baseline` for windowed data (see the
    module docstring): (N,) numpy."""
    case = data_case(data)
    y, t = load_observations(data, "test")
    if case.get("dataset", {}).get("window_shape"):
        return coarse_window_baseline(case, y, t)
    fine = tuple(case["grid"]["shape"])
    coarse = [n // stride for n in fine]
    case["grid"]["shape"] = coarse
    case["time"] = {"scheme": case["time"]["scheme"], "dt": float(t[1] - t[0]), "steps": len(t) - 1}
    case["ensemble"] = {"members": y.shape[0], "seed": 0}
    case["output"] = {"fields_every": 0, "diagnostics_every": 0}
    case.pop("dataset", None)
    sim = Simulation.from_case(case)
    first = y[:, 0].numpy()  # (trajectories, C, *fine)
    names = sim.equation.fields
    sim.set_initial({name: resample(first[:, c], coarse) for c, name in enumerate(names)})
    errors = []
    for j in range(1, len(t)):
        sim.advance(1)
        fields = sim.equation.to_fields(sim.state)
        mean = np.stack([resample(fields[name], fine) for name in names], axis=1)
        errors.append(relative_errors(y[:, j], torch.from_numpy(mean)))
    return np.concatenate(errors)


def evaluate(run, data, paths=64, substeps=4, seed=0, progress=True, stages=None):
    """{stage name: {mean, std, n_eta}} of the test error of every ``eta<N>.pt`` in ``run``,
    and ``coarse``: {mean, std, grid} of the coarse-solver baseline."""
    found = {int(re.findall(r"\d+", os.path.basename(p))[0]): p for p in glob.glob(os.path.join(run, "eta*.pt"))}
    missing = sorted(set(stages or ()) - set(found))
    if missing:
        raise CaseError(f"{run}: stage(s) {missing} not trained (no eta<N>.pt)")
    stages = [found[n] for n in sorted(stages or found)]
    if not stages:
        raise CaseError(f"{run}: no trained stage (eta<N>.pt); train one with python -m plugins.latent_sde.train")
    y, t = load_observations(data, "test")
    table = {}
    torch.set_grad_enabled(False)
    for path in stages:
        model, record = load_stage(path)
        emulator = torch.jit.script(LatentSDEEmulator(model))
        var_y = model.decode(torch.zeros(1, emulator.encoder_std.shape[0]))[1].double()  # the same for every z
        generator = torch.Generator().manual_seed(seed)
        errors, inside = [], []
        for k in tqdm(range(y.shape[0]), disable=not progress, desc=os.path.basename(path)):
            mean, spread = predictive_moments(emulator, y[k, 0], t, paths, substeps, generator)
            errors.append(relative_errors(y[k, 1:], mean[1:]))
            inside.append(gaussian_coverage(y[k, 1:], mean[1:], var_y + spread[1:]))
        errors = np.concatenate(errors)
        table[os.path.basename(path)[:-3]] = {"n_eta": model.config.n_eta, "mean": float(errors.mean()),
                                               "std": float(errors.std()), "coverage95": float(np.mean(inside))}
    errors = coarse_baseline(data, model.config.stride)
    table["coarse"] = {"grid": [n // model.config.stride for n in model.config.grid], "mean": float(errors.mean()),
                       "std": float(errors.std())}
    return table


def read_table(path):
    """The table of an ``evaluation.json`` ({} where there is none)."""
    return json.load(open(path)) if os.path.isfile(path) else {}


def update_table(path, rows):
    """Write ``rows`` into the table at ``path``, keeping its other rows; returns the table."""
    table = read_table(path) | rows
    with open(path, "w") as f:
        json.dump(table, f, indent=1)
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a train --out folder")
    parser.add_argument("--data", required=True, help="the generate folder (its test.nc)")
    parser.add_argument("--paths", type=int, default=64)
    parser.add_argument("--substeps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--stages", type=int, nargs="+", help="the n_eta of the stages (default: every one trained)")
    parser.add_argument("--out", help="JSON file of the table (default RUN/evaluation.json)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out or os.path.join(args.run, "evaluation.json")
    try:
        table = evaluate(args.run, args.data, args.paths, args.substeps, args.seed, stages=args.stages)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    table = update_table(out, table)
    for name, row in table.items():
        coverage = f", 95% interval coverage {row['coverage95']:.2f}" if "coverage95" in row else ""
        print(f"{name}: test error {row['mean']:.3f} ± {row['std']:.3f}{coverage}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
