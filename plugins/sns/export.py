"""Export trained SNS-family models as hybridsolver artifacts, and the rollouts' starts.

    python -m plugins.sns.export --model unet|thermalizer|sns|corrector|acdm [--run runs/sns/<model>]
        [--surrogate runs/sns/unet] [--data data/sns] [--out plugins/sns/artifacts]
    python -m plugins.sns.export --starts [--count 8] [--horizon 3000] [--data data/sns]

``--model unet`` writes ``unet.pt`` (registered as ``sns_unet``): the pointwise surrogate
as a stateless ``replace`` emulator (:class:`~.exported.SurrogateEmulator`, float32,
physical vorticity in and out, one emulator step per snapshot interval of the data).
``--model thermalizer`` and ``--model sns`` write ``thermalizer.pt`` (``sns_thermalizer``)
and ``sns.pt`` (``sns_refined``): the surrogate of ``--surrogate`` refined by the trained
model (:class:`~.exported.ThermalizerEmulator`, :class:`~.exported.SelfRefiningEmulator`),
stochastic and stateful, with the sampler defaults of :data:`SAMPLERS` (Thermalizer's
s_init = 10 and s_stop = 4, at most 40 reverse steps; SNS's levels at most 32).
``--model corrector`` writes ``corrector.pt`` (``sns_corrector``) of the SNS run: SNS
refining a solver's steps, a ``post_step`` refiner
(:class:`~.exported.SelfRefiningCorrector`, the new vorticity and the one before the step
in).  ``--model acdm`` writes ``acdm.pt`` (``sns_acdm``): ACDM's sampler, a stochastic
stateless ``replace`` emulator (:class:`~.exported.ACDMEmulator`, 2 S + 1 noise fields and S
network passes per step, S = 200 levels).  Each
manifest carries the data's case and arguments, and for every trained part its
training command, seed and last log line.

``--starts`` writes ``starts.npy``: (count, 64, 64) float64, the test vorticity at the
rollouts' initial conditions (:func:`plugins.flow_statistics.rollout_starts`: spread over the test
trajectories, each with ``--horizon`` true snapshots after it), which
``cases/kolmogorov64_sns*.toml`` start from (row m is member m's field), and
``starts.json``, the (trajectory, snapshot) of each row.
"""
import argparse
import os
import sys
import tomllib

import numpy as np
import torch

from hybridsolver.case import CaseError
from hybridsolver.plugin import export

from .. import recording
from ..training import last_log
from .data import load_vorticity
from .exported import ACDMEmulator, SelfRefiningCorrector, SelfRefiningEmulator, SurrogateEmulator, ThermalizerEmulator
from .registry import ARTIFACTS
from .train import load_model

PARTS = {"unet": ["unet"], "thermalizer": ["unet", "thermalizer"], "sns": ["unet", "sns"], "corrector": ["sns"],
         "acdm": ["acdm"]}
SAMPLERS = {"thermalizer": {"s_init": 10, "s_stop": 4, "max_steps": 40}, "sns": {"max_level": 32}}
NAMES = {"unet": "sns_unet", "thermalizer": "sns_thermalizer", "sns": "sns_refined", "corrector": "sns_corrector",
         "acdm": "sns_acdm"}
DESCRIPTIONS = {
    "unet": "pointwise UNet surrogate of Kolmogorov flow at Re 1e4 (the SNS paper's baseline): "
            "omega_(t+1) = omega_t + Psi(omega_t)",
    "thermalizer": "the pointwise UNet surrogate's step thermalized (Pedersen et al.): frames the noise-level "
                   "classifier puts above s_init are denoised to s_stop",
    "sns": "self-refining neural surrogate (Liu et al., Algorithm 1 path A): the pointwise UNet surrogate's step "
           "re-noised to the levels the network predicts and denoised, the previous frame first",
    "acdm": "autoregressive conditional diffusion model (Kohl et al.): the next frame sampled from 200 reverse "
            "steps conditioned on fresh noisy copies of the previous one",
    "corrector": "self-refining neural surrogate (Liu et al.) refining a solver's step: the new frame and the one "
                 "before it re-noised to the levels the network predicts and denoised, the previous frame first",
}


def model_keys(model_name, n, config):
    """The manifest keys that differ between the models (noise, sampler, state) on an n-grid
    (``config``: the trained model's configuration)."""
    if model_name == "unet":
        return {"stochastic": False, "noise": [], "sampler": {}}
    if model_name == "acdm":
        return {"stochastic": True, "noise": [{"name": "initial", "shape": [1] + n},
                                              {"name": "conditioning", "shape": [config["acdm_levels"]] + n},
                                              {"name": "reverse", "shape": [config["acdm_levels"]] + n}], "sampler": {}}
    steps = {"name": "reverse_steps", "shape": [1], "dtype": "float32"}
    if model_name == "thermalizer":
        return {"stochastic": True, "noise": [{"name": "reverse", "shape": ["max_steps"] + n}],
                "sampler": SAMPLERS["thermalizer"], "state": [steps]}
    keys = {"stochastic": True, "noise": [{"name": "renoise", "shape": [2] + n},
                                          {"name": "reverse", "shape": [2, "max_level"] + n}],
            "sampler": SAMPLERS["sns"], "state": [{"name": "first_frame", "shape": [1] + n, "dtype": "float32"}, steps]}
    if model_name == "corrector":
        vorticity = {"field": "vorticity", "space": "physical", "units": "1/time"}
        keys |= {"kind": "refiner", "callsite": "post_step", "inputs": [vorticity, vorticity | {"at": "previous"}]}
    return keys


def command(record):
    args = record["args"]
    return (f"python -m plugins.sns.train --model {args['model']} --data DATA --config {args['config']} "
            f"--steps {args['steps']} --batch {args['batch']} --lr {args['lr']} --seed {args['seed']}")


def manifest(model_name, records, meta, logs, step_dt):
    """The manifest of ``model_name`` made of the trained ``records`` ({'unet': ..., and
    the refiner's}: their ``model.pt``) on data ``meta`` with their last ``logs`` lines."""
    n = list(meta["coarse_shape"])
    io = [{"field": "vorticity", "space": "physical", "units": "1/time"}]
    return {
        "name": NAMES[model_name], "version": "1.0", "kind": "emulator", "callsite": "replace",
        "description": f"{DESCRIPTIONS[model_name]}; one step per {step_dt} of model time",
        "equation": "navier_stokes2d", "grid": {"shape": n, "length": [2 * np.pi, 2 * np.pi]},
        "inputs": io, "outputs": io, "dtype": "float32", "devices": ["cpu", "cuda"], "every": 1,
        **model_keys(model_name, n, records[PARTS[model_name][-1]]["config"]),
        "provenance": {
            "trained": True, "emulator_dt": step_dt, "statistics": next(iter(records.values()))["statistics"],
            "models": {name: {"config": r["config"], "command": command(r), "torch": r["torch"], "device": r["device"],
                              "training_log": logs[name]} for name, r in records.items()},
            "data": {"generator": "python -m plugins.sns.generate", "arguments": meta},
        },
    }


def snapshot_dt(meta):
    """The data's snapshot interval (model time)."""
    return meta["every_steps"] * tomllib.loads(meta["case"])["time"]["dt"]


def export_model(model_name, run, data, out, surrogate_run=None):
    """Write ``<model>.pt`` of the run ``run`` (the refiners' surrogate: ``surrogate_run``);
    returns its path."""
    parts = PARTS[model_name]  # the trained model of ``run`` last
    runs = {name: run if name == parts[-1] else surrogate_run for name in parts}
    models, records = {}, {}
    for name, folder in runs.items():
        models[name], records[name] = load_model(os.path.join(folder, "model.pt"))
        if records[name]["model"] != name:
            raise CaseError(f"{folder}/model.pt: a {records[name]['model']} model, expected {name}")
    meta = recording.read_meta(data, "plugins.sns.generate")
    step_dt = snapshot_dt(meta)
    module = {"unet": lambda: SurrogateEmulator(models["unet"], step_dt),
              "corrector": lambda: SelfRefiningCorrector(models["sns"], records["sns"]["statistics"]["scale"]),
              "acdm": lambda: ACDMEmulator(models["acdm"], records["acdm"]["statistics"]["scale"], step_dt),
              "thermalizer": lambda: ThermalizerEmulator(models["unet"], models["thermalizer"], step_dt),
              "sns": lambda: SelfRefiningEmulator(models["unet"], models["sns"], step_dt)}[model_name]()
    path = os.path.join(out, f"{model_name}.pt")
    export(module, manifest(model_name, records, meta, {k: last_log(v) for k, v in runs.items()}, step_dt), path)
    return path


def export_starts(data, out, count, horizon):
    """Write ``starts.npy`` and ``starts.json`` (:func:`plugins.recording.write_starts`);
    returns the paths."""
    return recording.write_starts(load_vorticity(data, "test")[0], data, out, count, horizon)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=tuple(NAMES), help="the model to export")
    parser.add_argument("--starts", action="store_true", help="write the rollouts' initial conditions instead")
    parser.add_argument("--run", help="the train --out folder (default runs/sns/<model>)")
    parser.add_argument("--surrogate", help="the refiners' surrogate: its train --out folder (default runs/sns/unet)")
    parser.add_argument("--data", default="data/sns")
    parser.add_argument("--out", default=ARTIFACTS)
    parser.add_argument("--count", type=int, default=8, help="initial conditions (default 8)")
    parser.add_argument("--horizon", type=int, default=3000, help="true snapshots after each start (default 3000)")
    args = parser.parse_args(argv)
    if bool(args.model) == args.starts:
        parser.error("give --model or --starts")
    torch.set_num_threads(1)
    try:
        if args.starts:
            paths = export_starts(args.data, args.out, args.count, args.horizon)
        else:
            paths = [export_model(args.model, args.run or os.path.join("runs", "sns", args.model), args.data,
                                  args.out, args.surrogate or os.path.join("runs", "sns", "unet"))]
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print("\n".join(paths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
