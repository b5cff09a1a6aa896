"""Test errors of the trained latent-SDE stages: the paper's predictive-mean metric.

    python -m plugins.latent_sde.evaluate --run runs/latent_sde/kdv --data data/kdv
        [--paths 64] [--substeps 4] [--seed 0] [--out runs/latent_sde/kdv/evaluation.json]

For every ``eta<N>.pt`` of the run and every test trajectory: ``paths`` sample paths of
the emulator (:class:`~.emulator.LatentSDEEmulator`, the module that is exported) start
from the encoder at the first test snapshot and step from snapshot to snapshot with
``substeps`` Euler-Maruyama steps each; the predictive mean is the mean of mu_y over
the paths.  The test error of a snapshot is ||y - mean||_2 / ||y||_2 against the
observed (noisy) test field y; the table gives its mean and standard deviation over all
test snapshots after the first, per stage.
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

from hybridsolver.case import CaseError

from .emulator import LatentSDEEmulator
from .train import load_observations, load_stage


def predictive_mean(emulator, y0, times, paths, substeps, generator):
    """Mean over ``paths`` sample paths of mu_y at ``times`` (T,), started from the
    encoder at ``y0`` (C, *grid) at times[0]: (T, C, *grid) float64 (row 0 the first
    call's start, mu_y of the encoder's draw is not taken: row 0 is y0 itself)."""
    n_z = emulator.encoder_std.shape[0]
    x = y0[None].expand((paths,) + tuple(y0.shape)).double()
    state = [torch.zeros(paths, n_z)]
    out = [y0.double()]
    for j in range(len(times) - 1):
        noise = [torch.randn(paths, n_z, generator=generator, dtype=torch.float64),
                 torch.randn(paths, substeps, n_z, generator=generator, dtype=torch.float64)]
        options = {"first": 1.0 if j == 0 else 0.0, "substeps": float(substeps), "every": 1.0,
                   "dt": float(times[j + 1] - times[j]), "time": float(times[j])}
        x, state = emulator(x, noise, options, state)
        out.append(x.mean(0))
    return torch.stack(out)


def relative_errors(y, mean):
    """||y - mean|| / ||y|| per snapshot: y, mean (T, ...) -> (T,) numpy."""
    diff = (y - mean).flatten(1).norm(dim=1)
    return (diff / y.flatten(1).norm(dim=1)).numpy()


def evaluate(run, data, paths=64, substeps=4, seed=0, progress=True):
    """{stage name: {mean, std, n_eta}} of the test error of every ``eta<N>.pt`` in ``run``."""
    stages = sorted(glob.glob(os.path.join(run, "eta*.pt")), key=lambda p: int(re.findall(r"\d+", os.path.basename(p))[0]))
    if not stages:
        raise CaseError(f"{run}: no trained stage (eta<N>.pt); train one with python -m plugins.latent_sde.train")
    y, t = load_observations(data, "test")
    table = {}
    torch.set_grad_enabled(False)
    for path in stages:
        model, record = load_stage(path)
        emulator = torch.jit.script(LatentSDEEmulator(model))
        generator = torch.Generator().manual_seed(seed)
        errors = []
        for k in tqdm(range(y.shape[0]), disable=not progress, desc=os.path.basename(path)):
            mean = predictive_mean(emulator, y[k, 0], t, paths, substeps, generator)
            errors.append(relative_errors(y[k, 1:], mean[1:]))
        errors = np.concatenate(errors)
        table[os.path.basename(path)[:-3]] = {"n_eta": model.config.n_eta, "mean": float(errors.mean()),
                                               "std": float(errors.std())}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="a train --out folder")
    parser.add_argument("--data", required=True, help="the generate folder (its test.nc)")
    parser.add_argument("--paths", type=int, default=64)
    parser.add_argument("--substeps", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="JSON file of the table (default RUN/evaluation.json)")
    args = parser.parse_args(argv)
    try:
        table = evaluate(args.run, args.data, args.paths, args.substeps, args.seed)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out = args.out or os.path.join(args.run, "evaluation.json")
    with open(out, "w") as f:
        json.dump(table, f, indent=1)
    for name, row in table.items():
        print(f"{name}: test error {row['mean']:.3f} ± {row['std']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
