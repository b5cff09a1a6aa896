"""Train the L-CDM closure (joint or two-phase) or the P-CDM baseline.

    python -m plugins.lcdm.train --model joint|two-phase|pcdm [--data data/lcdm]
        [--out runs/lcdm/<model>] [--config cpu|paper] [--epochs E] [--batch B]
        [--lr 1e-3] [--seed 0] [--threads 1] [--limit N] [--device cpu|cuda]

- ``joint``: all of the L-CDM trained together on
  ``10 rec_H + 0.1 rec_w + 0.1 L_score + 0.01 KL`` for E epochs;
- ``two-phase``: the autoencoders alone (``10 rec_H + 0.1 rec_w + 0.01 KL``) for E
  epochs, then, with them frozen, the score model alone for E epochs (the same
  number of passes over the data for every part as in ``joint``);
- ``pcdm``: the physical-space score model for E epochs.

Adam (lr 1e-3), minibatches shuffled by a generator seeded from ``seed``, the phase
and the epoch.  ``--config cpu`` (the default) takes minibatches of 32 pairs for 6
epochs: on this 2-core machine, with two trainings running, an epoch over 8,000 pairs
costs about 6.5 minutes (about 50 ms per pair for joint and for P-CDM), and smaller
minibatches give more optimizer steps for that cost; ``--config paper`` takes the
paper's 200.  ``--device cuda`` trains on a GPU (the data sit on it whole); the
shuffling stays on a CPU generator, the noise comes from a CUDA generator with the
same seeds, so a GPU run is reproducible on the same GPU and software only.  The run
folder gets ``checkpoint.pt`` after every epoch (a rerun of the same command
continues from it), ``log.jsonl`` (one line per epoch: the loss terms and seconds)
and, at the end, ``model.pt`` (weights, configuration, normalisation, data
provenance, device), which :mod:`plugins.lcdm.export` and :mod:`plugins.lcdm.evaluate`
read.  ``--config paper`` is the wider network and longer schedule for a GPU.
"""
import argparse
import json
import os
import sys
import time

import torch
from tqdm import tqdm

from hybridsolver.case import CaseError

from .data import load_pairs
from .models import TAU_MIN, LatentCDM, PhysicalCDM, denoising_loss

MODELS = ("joint", "two-phase", "pcdm")
WEIGHTS = {"rec_h": 10.0, "rec_w": 0.1, "score": 0.1, "kl": 0.01}
CONFIGS = {
    "cpu": {"epochs": 6, "batch": 32, "lcdm": {"widths": [4, 16, 32], "score_width": 24, "modes": 4},
            "pcdm": {"score_width": 24, "modes": 8}},
    "paper": {"epochs": 300, "batch": 200, "lcdm": {"widths": [8, 32, 64], "score_width": 48, "modes": 4},
              "pcdm": {"score_width": 40, "modes": 8}},
}


def build(kind, config, omega_scale, h_scale):
    """A fresh model of ``kind`` ('lcdm' or 'pcdm') from a CONFIGS entry."""
    if kind == "pcdm":
        return PhysicalCDM(omega_scale, h_scale, **config["pcdm"])
    return LatentCDM(omega_scale, h_scale, **config["lcdm"])


def load_model(path):
    """(model in eval mode, saved record) from a ``model.pt`` written by :func:`train`."""
    if not os.path.exists(path):
        raise CaseError(f"{path}: no trained model (train one with python -m plugins.lcdm.train)")
    record = torch.load(path, map_location="cpu", weights_only=False)
    model = build(record["kind"], record["config"], record["omega_scale"], record["h_scale"])
    model.load_state_dict(record["state"])
    return model.eval(), record


def phases(model_name, epochs):
    """[(phase, epochs)]: which loss terms train which parts, in order."""
    if model_name == "two-phase":
        return [("autoencoders", epochs), ("score", epochs)]
    return [("joint" if model_name == "joint" else "score", epochs)]


def phase_loss(model, phase, omega, h, generator):
    """(weighted loss, {term: value}) of one minibatch in ``phase``."""
    if phase == "score" and isinstance(model, LatentCDM):
        # frozen autoencoders: omega and h are the precomputed latents
        terms = {"score": denoising_loss(model.score, h, model.score.condition(omega), model.sigma, TAU_MIN, generator)}
    else:
        terms = model.losses(omega, h, generator=generator)
        if phase == "autoencoders":
            terms.pop("score")
    return sum(WEIGHTS[k] * v for k, v in terms.items()), {k: float(v.detach()) for k, v in terms.items()}


def latents(model, omega, h, batch=500):
    """Posterior-mean H latents and omega latents of the frozen autoencoders, (N, 1, 16, 16) each."""
    zw, zh = [], []
    with torch.no_grad():
        for lo in range(0, len(omega), batch):
            zw.append(model.enc_w(omega[lo:lo + batch]))
            zh.append(model.encode_h(h[lo:lo + batch])[0])
    return torch.cat(zw), torch.cat(zh)


def train(model_name, data, out, config="cpu", epochs=None, batch=None, lr=1e-3, seed=0, limit=None,
          progress=True, device="cpu"):
    """Train (or continue training) into ``out`` on ``device``; returns the path of ``model.pt``."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CaseError(f"--device cuda: torch {torch.__version__} sees no CUDA device")
    cfg = CONFIGS[config]
    epochs = epochs or cfg["epochs"]
    batch = batch or cfg["batch"]
    omega_np, h_np, trajectories = load_pairs(data, "train", limit)
    omega_scale, h_scale = float(omega_np.std()), float(h_np.std())
    omega = torch.from_numpy(omega_np / omega_scale).to(device)
    h = torch.from_numpy(h_np / h_scale).to(device)
    torch.manual_seed(seed)
    kind = "pcdm" if model_name == "pcdm" else "lcdm"
    model = build(kind, cfg, omega_scale, h_scale).to(device)
    plan = phases(model_name, epochs)
    os.makedirs(out, exist_ok=True)
    checkpoint_path = os.path.join(out, "checkpoint.pt")
    args = {"model": model_name, "data": os.path.abspath(data), "config": config, "epochs": epochs, "batch": batch,
            "lr": lr, "seed": seed, "limit": limit}
    state = {"phase": 0, "epoch": 0, "log": []}
    resume_optimizer = None
    if os.path.exists(checkpoint_path):
        saved = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
        if saved["args"] != args:
            changed = next(k for k in args if saved["args"].get(k) != args[k])
            raise CaseError(f"{checkpoint_path}: made with {changed} = {saved['args'].get(changed)!r}, now "
                            f"{args[changed]!r} (use another --out, or the same arguments to continue)")
        model.load_state_dict(saved["model"])
        state, resume_optimizer = saved["state"], saved["optimizer"]
    log_path = os.path.join(out, "log.jsonl")
    total = sum(e for _, e in plan)
    done = sum(e for _, e in plan[:state["phase"]]) + state["epoch"]
    with tqdm(total=total, initial=done, unit="epoch", disable=not progress, dynamic_ncols=True) as bar:
        for index in range(state["phase"], len(plan)):
            phase, phase_epochs = plan[index]
            parts = model.parts()
            params = parts["score"] if phase == "score" else parts["autoencoders"] if phase == "autoencoders" \
                else [p for group in parts.values() for p in group]
            optimizer = torch.optim.Adam(params, lr=lr)
            if resume_optimizer is not None and state["phase"] == index and state["epoch"] > 0:
                optimizer.load_state_dict(resume_optimizer)
            resume_optimizer = None
            x, y = omega, h
            if phase == "score" and kind == "lcdm":
                model.eval()
                x, y = latents(model, omega, h)
            model.train()
            for epoch in range(state["epoch"] if state["phase"] == index else 0, phase_epochs):
                started = time.perf_counter()
                epoch_seed = seed + 1000 * index + epoch
                generator = torch.Generator().manual_seed(epoch_seed)
                order = torch.randperm(len(x), generator=generator)
                noise = generator if device.type == "cpu" else torch.Generator(device).manual_seed(epoch_seed)
                sums, count = {}, 0
                for lo in range(0, len(order), batch):
                    rows = order[lo:lo + batch].to(device)
                    loss, terms = phase_loss(model, phase, x[rows], y[rows], noise)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    for k, v in terms.items():
                        sums[k] = sums.get(k, 0.0) + v * len(rows)
                    count += len(rows)
                line = {"phase": phase, "epoch": epoch + 1, "seconds": time.perf_counter() - started,
                        **{k: v / count for k, v in sums.items()}}
                state = {"phase": index, "epoch": epoch + 1, "log": state["log"] + [line]}
                with open(log_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
                tmp = checkpoint_path + ".tmp"
                torch.save({"args": args, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                            "state": state}, tmp)
                os.replace(tmp, checkpoint_path)
                bar.set_postfix_str(" ".join(f"{k}={v:.3g}" for k, v in line.items() if k not in ("phase", "epoch")))
                bar.update(1)
            state = {"phase": index + 1, "epoch": 0, "log": state["log"]}
    path = os.path.join(out, "model.pt")
    state_cpu = {k: v.cpu() for k, v in model.state_dict().items()}
    torch.save({"kind": kind, "config": cfg, "state": state_cpu, "omega_scale": omega_scale, "h_scale": h_scale,
                "args": args, "trajectories": trajectories, "pairs": len(omega), "log": state["log"],
                "torch": torch.__version__, "device": str(device)}, path)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, choices=MODELS)
    parser.add_argument("--data", default="data/lcdm")
    parser.add_argument("--out", default=None, help="run folder (default runs/lcdm/<model>)")
    parser.add_argument("--config", default="cpu", choices=tuple(CONFIGS))
    parser.add_argument("--epochs", type=int, default=None, help="epochs per phase (default: the config's)")
    parser.add_argument("--batch", type=int, default=None, help="minibatch (default: the config's)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training pairs")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        path = train(args.model, args.data, args.out or os.path.join("runs", "lcdm", args.model), args.config,
                     args.epochs, args.batch, args.lr, args.seed, args.limit, progress=not args.quiet,
                     device=args.device)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
