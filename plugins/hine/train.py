"""Train a model of the HINE family on the data of ``python -m plugins.hine.generate``.

    python -m plugins.hine.train --variant L1|L2|L3|history [--data data/hine] [--out runs/hine/<variant>]
        [--config cpu|paper] [--steps N] [--batch B] [--lr 3e-4] [--seed 0] [--threads 1]
        [--checkpoint-every 100] [--device cpu|cuda]

Minibatches of windows of 4 consecutive snapshots (trajectory and start drawn uniformly
from the training split), normalised by 1/10, the loss of :func:`.hierarchy.hine_loss`;
AdamW (the paper's lr 3e-4, weight decay 0.03) and an exponential moving average of the
weights (decay 0.9995, warmed up as min(0.9995, (1 + s) / (10 + s)) at step s), which is
the model that is saved and exported.  Each optimizer step draws from a generator seeded
by (seed, step), so a run interrupted and continued from ``checkpoint.pt`` (written every
``--checkpoint-every`` steps; rerun the same command) gives the weights of an
uninterrupted one, and a finished run continues with a larger ``--steps`` (nothing in the
optimisation depends on the number of steps, so 4000 steps and then 8000 more are 12,000
steps); other arguments are refused (exit 2).  ``log.jsonl`` has a line per
checkpoint (the mean loss since the last one, seconds); ``model.pt`` at the end holds
the EMA weights, the configuration and the data's arguments.

``--config cpu`` (the default): the backbone of :data:`.network.CPU` (widths 8 / 16 / 32 /
48, 0.26 M parameters), 16 windows per step, 4000 steps; ``--config paper``: widths 32 /
64 / 128 / 128, 64 windows, 100,000 steps, for a GPU.
"""
import argparse
import copy
import os
import sys

import numpy as np
import torch

from hybridsolver.case import CaseError

from .. import recording
from ..training import load_checkpoint, optimise, windows
from .data import SCALE, load_vorticity
from .hierarchy import VARIANTS, Emulator, hine_loss
from .network import CPU, PAPER

CONFIGS = {"cpu": {**CPU, "batch": 16, "steps": 4000}, "paper": {**PAPER, "batch": 64, "steps": 100_000}}
WINDOW = 4
EMA_DECAY = 0.9995
WEIGHT_DECAY = 0.03


def build(record):
    """The EMA model of a saved ``record`` (``model.pt``), in eval mode."""
    cfg = record["config"]
    model = Emulator(record["variant"], record["n"], cfg["widths"], cfg["modes"], cfg["embedding"])
    model.load_state_dict(record["state"])
    return model.eval()


def load_model(path):
    """(model in eval mode, saved record) of a ``model.pt`` written by :func:`train`."""
    if not os.path.isfile(path):
        raise CaseError(f"{path}: no trained model (train one with python -m plugins.hine.train)")
    record = torch.load(path, map_location="cpu", weights_only=False)
    return build(record), record


def ema_update(ema, model, step):
    """ema <- d ema + (1 - d) model, d = min(EMA_DECAY, (1 + step) / (10 + step))."""
    decay = min(EMA_DECAY, (1.0 + step) / (10.0 + step))
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.mul_(decay).add_(p.detach(), alpha=1.0 - decay)


def train(variant, data, out, config="cpu", steps=None, batch=None, lr=3e-4, seed=0, checkpoint_every=100,
          progress=True, device="cpu"):
    """Train (or continue training) ``variant`` into ``out``; returns the path of ``model.pt``."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaseError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    if variant not in VARIANTS:
        raise CaseError(f"--variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
    cfg = dict(CONFIGS[config])
    cfg["steps"], cfg["batch"] = steps or cfg["steps"], batch or cfg["batch"]
    omega, _, _ = load_vorticity(data, "train")
    n = omega.shape[-1]
    x = torch.from_numpy(omega / np.float32(SCALE)).to(device)
    del omega
    torch.manual_seed(seed)
    model = Emulator(variant, n, cfg["widths"], cfg["modes"], cfg["embedding"]).to(device)
    ema = copy.deepcopy(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=WEIGHT_DECAY)
    args = {"variant": variant, "data": os.path.abspath(data), "config": config, "steps": cfg["steps"],
            "batch": cfg["batch"], "lr": lr, "seed": seed}
    os.makedirs(out, exist_ok=True)
    step = 0
    saved = load_checkpoint(os.path.join(out, "checkpoint.pt"), args, extendable=True)
    if saved is not None:
        model.load_state_dict(saved["state"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        step = saved["step"]

    def record_of(step):
        return {"args": args, "step": step, "state": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict()}

    def loss_of(step, generator):
        return hine_loss(model, windows(x, cfg["batch"], WINDOW, generator), generator)

    step = optimise(model, optimizer, loss_of, cfg["steps"], step, seed, out, checkpoint_every, record_of, progress,
                    variant, after_step=lambda step: ema_update(ema, model, step))
    path = os.path.join(out, "model.pt")
    torch.save({"args": args, "variant": variant, "n": n, "config": cfg, "steps": step, "scale": SCALE,
                "state": {k: v.cpu() for k, v in ema.state_dict().items()},
                "data": recording.read_meta(data, "plugins.hine.generate"), "torch": torch.__version__,
                "device": str(device)}, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    parser.add_argument("--data", default="data/hine")
    parser.add_argument("--out", default=None, help="run folder (default runs/hine/<variant>)")
    parser.add_argument("--config", default="cpu", choices=tuple(CONFIGS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the config's)")
    parser.add_argument("--batch", type=int, default=None, help="windows per minibatch (default: the config's)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        path = train(args.variant, args.data, args.out or os.path.join("runs", "hine", args.variant), args.config,
                     args.steps, args.batch, args.lr, args.seed, args.checkpoint_every, not args.quiet, args.device)
    except CaseError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
