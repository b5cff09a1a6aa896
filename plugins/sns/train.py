"""Train a model of the SNS family on the data of ``python -m plugins.sns.generate``.

    python -m plugins.sns.train --model unet|thermalizer|sns|acdm [--data data/sns] [--out runs/sns/<model>]
        [--config cpu|paper] [--steps N] [--batch B] [--lr 5e-4] [--seed 0] [--threads 1]
        [--checkpoint-every 100] [--device cpu|cuda]

- ``unet``: the pointwise surrogate (:mod:`.surrogate`), the multi-step loss with the
  unroll length growing 1, 2, 3, 4 over the four quarters of the steps;
- ``thermalizer``: the unconditional DDPM with its level classifier (:mod:`.thermalizer`),
  on single snapshots;
- ``sns``: the self-refining network (:mod:`.refiner`) on pairs one snapshot apart, with a
  clean frame drawn from anywhere in the training data;
- ``acdm``: the conditional diffusion model of the next frame (:mod:`.acdm`) on pairs.

Minibatches of windows of consecutive snapshots (trajectory and start drawn uniformly from
the training split), AdamW at ``--lr`` (the paper's 5e-4).  Fields are divided by the
training vorticity's std.  Each optimizer step draws from a generator seeded by (seed,
step), so a run interrupted and continued from ``checkpoint.pt`` (written every
``--checkpoint-every`` steps; rerun the same command) gives the weights of an
uninterrupted one; other arguments are refused.  ``log.jsonl`` has a line per
checkpoint (the mean loss since the last one, seconds); ``model.pt`` at the end holds
the weights, the configuration, the normalisation and the data's arguments, for
:mod:`plugins.sns.export` and :mod:`plugins.sns.evaluate`.

``--config cpu`` (the default) has UNets of widths 16/32/64 (0.30 M parameters for the
surrogate, 0.38 M for Thermalizer, 0.57 M for SNS) and, per model, minibatches of 8
windows (unet) or 16 (thermalizer, sns, acdm) for 3000 or 4000 steps: on one core of this
machine beside two other jobs, a step of the surrogate's four-step unroll costs 2.9 s
and one of Thermalizer, SNS or ACDM 1.5 s, so each training takes about 2 h.  ``--config
paper`` has the paper's widths 128/256/512 and longer schedules for a GPU.
"""
import argparse
import os
import sys

import numpy as np
import torch

from hybridsolver.case import CaseError

from .. import recording
from ..training import load_checkpoint, optimise, windows
from .acdm import ACDM, acdm_loss
from .data import load_vorticity
from .refiner import SelfRefiner, sns_loss
from .surrogate import Surrogate, curriculum, unrolled_loss
from .thermalizer import Thermalizer, thermalizer_loss

CONFIGS = {
    "cpu": {"widths": [16, 32, 64], "blocks": 2, "batch": {"unet": 8, "thermalizer": 16, "sns": 16, "acdm": 16},
            "steps": {"unet": 3000, "thermalizer": 4000, "sns": 4000, "acdm": 4000}, "acdm_levels": 200},
    "paper": {"widths": [128, 256, 512], "blocks": 2, "batch": {"unet": 32, "thermalizer": 64, "sns": 64, "acdm": 64},
              "steps": {"unet": 100_000, "thermalizer": 200_000, "sns": 200_000, "acdm": 200_000},
              "acdm_levels": 200},
}


def statistics(omega):
    """{'scale': the vorticity's std, 'increment_scale': the std of one snapshot step of
    the normalised field} of training vorticity ``omega`` (trajectories, T, n, n)."""
    scale = float(omega.std(dtype=np.float64))
    increments = np.diff(omega, axis=1) / scale
    return {"scale": scale, "increment_scale": float(increments.std(dtype=np.float64))}


def build_unet(config, stats):
    return Surrogate(stats["scale"], stats["increment_scale"], config["widths"], config["blocks"])


def unet_batch(x, batch, generator):
    return (windows(x, batch, 5, generator),)


def unet_loss(model, batch, step, steps, generator):
    return unrolled_loss(model, batch[0], curriculum(step, steps), generator=generator)


def thermalizer_batch(x, batch, generator):
    return (windows(x, batch, 1, generator),)


def sns_batch(x, batch, generator):
    """(pairs (B, 2, n, n), a clean frame of anywhere in the data (B, 1, n, n))."""
    return windows(x, batch, 2, generator), windows(x, batch, 1, generator)


MODELS = {
    "unet": {"build": build_unet, "batch": unet_batch, "loss": unet_loss},
    "thermalizer": {"build": lambda config, stats: Thermalizer(config["widths"], config["blocks"]),
                    "batch": thermalizer_batch,
                    "loss": lambda model, batch, step, steps, generator: thermalizer_loss(model, batch[0], generator)},
    "sns": {"build": lambda config, stats: SelfRefiner(config["widths"], config["blocks"]), "batch": sns_batch,
            "loss": lambda model, batch, step, steps, generator: sns_loss(
                model, batch[1], batch[0][:, :1], batch[0][:, 1:], generator)},
    "acdm": {"build": lambda config, stats: ACDM(config["widths"], config["blocks"], config["acdm_levels"]),
             "batch": lambda x, batch, generator: (windows(x, batch, 2, generator),),
             "loss": lambda model, batch, step, steps, generator: acdm_loss(
                 model, batch[0][:, :1], batch[0][:, 1:], generator)},
}


def build(record):
    """The model of a saved ``record`` (``model.pt`` or a checkpoint), in eval mode."""
    model = MODELS[record["model"]]["build"](record["config"], record["statistics"])
    model.load_state_dict(record["state"])
    return model.eval()


def load_model(path):
    """(model in eval mode, saved record) of a ``model.pt`` written by :func:`train`."""
    if not os.path.isfile(path):
        raise CaseError(f"{path}: no trained model (train one with python -m plugins.sns.train)")
    record = torch.load(path, map_location="cpu", weights_only=False)
    return build(record), record


def train(model_name, data, out, config="cpu", steps=None, batch=None, lr=5e-4, seed=0, checkpoint_every=100,
          progress=True, device="cpu"):
    """Train (or continue training) into ``out``; returns the path of ``model.pt``."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaseError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    spec, cfg = MODELS[model_name], dict(CONFIGS[config])
    cfg["steps"], cfg["batch"] = steps or cfg["steps"][model_name], batch or cfg["batch"][model_name]
    omega, _, _ = load_vorticity(data, "train")
    stats = statistics(omega)
    x = torch.from_numpy(omega / np.float32(stats["scale"])).to(device)
    del omega
    torch.manual_seed(seed)
    model = spec["build"](cfg, stats).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    args = {"model": model_name, "data": os.path.abspath(data), "config": config, "steps": cfg["steps"],
            "batch": cfg["batch"], "lr": lr, "seed": seed}
    os.makedirs(out, exist_ok=True)
    step = 0
    saved = load_checkpoint(os.path.join(out, "checkpoint.pt"), args)
    if saved is not None:
        model.load_state_dict(saved["state"])
        optimizer.load_state_dict(saved["optimizer"])
        step = saved["step"]

    def record_of(step):
        return {"args": args, "model": model_name, "config": cfg, "statistics": stats, "step": step,
                "state": model.state_dict(), "optimizer": optimizer.state_dict()}

    def loss_of(step, generator):
        return spec["loss"](model, spec["batch"](x, cfg["batch"], generator), step, cfg["steps"], generator)

    step = optimise(model, optimizer, loss_of, cfg["steps"], step, seed, out, checkpoint_every, record_of, progress,
                    model_name)
    path = os.path.join(out, "model.pt")
    torch.save({"args": args, "model": model_name, "config": cfg, "statistics": stats, "steps": step,
                "state": {k: v.cpu() for k, v in model.state_dict().items()},
                "data": recording.read_meta(data, "plugins.sns.generate"), "torch": torch.__version__,
                "device": str(device)}, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=sorted(MODELS))
    parser.add_argument("--data", default="data/sns")
    parser.add_argument("--out", default=None, help="run folder (default runs/sns/<model>)")
    parser.add_argument("--config", default="cpu", choices=tuple(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the config's)")
    parser.add_argument("--batch", type=int, default=None, help="windows per minibatch (default: the config's)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        path = train(args.model, args.data, args.out or os.path.join("runs", "sns", args.model), args.config,
                     args.steps, args.batch, args.lr, args.seed, args.checkpoint_every, not args.quiet, args.device)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
