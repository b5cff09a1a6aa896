"""Train the multiscale latent-SDE models of one problem hierarchically: the implicit-scale
model (n_eta = 0), then n_eta = 1, 2, ... each started from the one before.

    python -m plugins.latent_sde.train --problem kdv --data data/kdv [--out runs/latent_sde/kdv]
        [--max-eta 5] [--steps 16000] [--later-steps STEPS] [--segment 128] [--seed 0] [--threads 2]
        [--init ARTIFACT [--init-step STEP]]

Data are the train split of ``hybridsolver generate`` (``DATA/train.nc``; observations
= clean field + its noise).  Each step takes one segment of ``--segment`` consecutive
snapshots of a trajectory (``--steps`` steps for n_eta = 0, ``--later-steps`` for each
later stage, default the same), its trajectory and start drawn from a generator seeded
from ``--seed`` and the stage (the start with an overhang at both ends, clamped, so that
the trajectories' first and last snapshots are trained on: :func:`segment_start`), and maximises the segment's ELBO
(:meth:`model.LatentSDE.elbo`) with Adam: n_eta = 0 at lr 1e-3, later stages at 1e-4,
each x0.9 every 2000 steps (the smoothing kernel's at s^(-d/2) of that, s the coarsening:
:attr:`operators.ScaleOperators.lr_scale`), the residual term's weight rising linearly from 0 to 1 over
the first 5000 steps of a stage, and the gradient's norm clipped at ``CLIP_NORM`` (100; the
norms run at 5-80, a rare segment's spike of the residual, 1e4 times its usual size,
otherwise drove the implicit-scale model into the collapsed state zeta = 0).  A stage's new
parameters (the wider latent's rows,
the new networks) get Xavier-normal weights and zero biases, drawn from torch's generator
seeded from ``--seed`` and the stage; the rest start from the previous stage.

Every 200 steps (and at a stage's first step) the model is scored on the validation split
(``DATA/validation.nc``): its ELBO with the residual at full weight on
``VALIDATION_SEGMENTS`` segments spread evenly over the split (the same segments and the
same draws of z every time, so the figure is a function of the weights), and, for the log,
its reconstruction error ||y - mu_y(mu_z(y))|| / ||y|| on ``VALIDATION_SNAPSHOTS``
snapshots.  A stage keeps the weights of its highest validation ELBO: the single-segment
steps are noisy, and one rare segment's update can leave the model in a worse state for
the rest of the budget (the cylinder's implicit-scale model, reconstruction error on
the validation snapshots: 0.15 at step 3200 of 4000, 0.42 at 3400, 0.16 at 3600, 0.40 at
the end).  (The reconstruction error alone is no criterion:
Burgers' untrained model, a Gaussian smoothing with random drifts, reconstructs best.)

The run folder gets ``checkpoint.pt`` every 200 steps and at the end of each stage (a
rerun of the same command continues from it), ``log.jsonl`` (every 200 steps: the stage,
step, ELBO and its terms, the validation ELBO and reconstruction error, seconds) and
``eta<N>.pt`` per finished stage (the model's configuration, the weights of its best
validation ELBO, that ELBO, its reconstruction error and its step).

``--init`` starts the run from a shipped emulator artifact (``export``'s
``<problem>_eta<N>.pt``, whose traced networks hold the whole trained model, the time
warping included) or from a run's own ``eta<N>.pt``: its stage N begins from those
weights at step ``--init-step`` of that stage (the learning rate and the residual
warm-up as at that step; Adam's moments and the segment draws start afresh), and the
stages before N are not trained.  Stages are kept as artifacts between sessions this
way: ``--init burgers2d_eta0.pt --init-step 8000 --steps 8000`` trains n_eta = 1 ...
from the shipped implicit-scale model, ``--init kdv_eta5.pt --init-step 8000
--later-steps 16000 --max-eta 5`` trains the shipped n_eta = 5 model 8000 steps more.
"""
import argparse
import dataclasses
import json
import os
import sys
import time
import tomllib

import netCDF4
import numpy as np
import torch
from tqdm import tqdm

from hybridsolver.case import CaseError

from .model import BURGERS, CYLINDER, KDV, Config, LatentSDE

PROBLEMS = {"kdv": KDV, "burgers2d": BURGERS, "cylinder": CYLINDER}
DECAY_EVERY, DECAY, WARMUP, LOG_EVERY, CLIP_NORM = 2000, 0.9, 5000, 200, 100.0
VALIDATION_SNAPSHOTS, VALIDATION_SEGMENTS = 64, 2


def _split_file(folder, split):
    path = os.path.join(folder, f"{split}.nc")
    if not os.path.isfile(path):
        raise CaseError(f"{path}: no dataset (make it with hybridsolver generate)")
    return path


def _field_names(ds):
    return [v for v in ds.variables if ds[v].dimensions[:2] == ("member", "time") and not v.endswith("_noise")
            and v not in ("valid",)]


def field_names(folder, split="test"):
    """The observed fields of a generate split file, in the order of load_observations' channels."""
    with netCDF4.Dataset(_split_file(folder, split)) as ds:
        return _field_names(ds)


def load_observations(folder, split="train"):
    """``(y (trajectories, T, C, *grid) float64, t (T,))`` of a generate split file, C the
    fields of :func:`field_names`."""
    with netCDF4.Dataset(_split_file(folder, split)) as ds:
        ds.set_auto_mask(False)
        rows = int(ds.complete)
        names = _field_names(ds)
        fields = [np.asarray(ds[n][:rows], np.float64) + np.asarray(ds[f"{n}_noise"][:rows], np.float64) for n in names]
        t = np.asarray(ds["time"][:], np.float64)
    return torch.from_numpy(np.stack(fields, axis=2)), torch.from_numpy(t)


def data_case(folder):
    """The resolved case (dict) that made the ``generate`` folder (read from its test.nc)."""
    with netCDF4.Dataset(_split_file(folder, "test")) as ds:
        return tomllib.loads(ds.case)


def validation_set(folder, segment, segments=VALIDATION_SEGMENTS, snapshots=VALIDATION_SNAPSHOTS):
    """The validation split, read once: ``segments`` segments [(y (T, C, *grid), t (T,))]
    of ``segment`` snapshots (or the split's length, if shorter), their trajectories and
    starts spread evenly, and ``snapshots`` snapshots (S, C, *grid) spread evenly over its
    trajectories and times; float32."""
    y, t = load_observations(folder, "validation")
    length = min(segment, y.shape[1])
    starts = torch.linspace(0, y.shape[1] - length, segments).round().long()
    parts = [(y[i % y.shape[0], lo:lo + length].float(), t[lo:lo + length].float()) for i, lo in enumerate(starts)]
    flat = y.flatten(0, 1)
    rows = torch.linspace(0, flat.shape[0] - 1, min(snapshots, flat.shape[0])).round().long()
    return parts, flat[rows].float()


def segment_start(snapshots, segment, generator):
    """The first snapshot of a training segment of ``segment`` consecutive snapshots out of
    ``snapshots``: drawn uniformly from ``segment // 2`` before the first possible start to
    as many after the last, and clamped to the possible ones.

    A start drawn uniformly from the possible ones alone covers a trajectory's first
    snapshot once for every ``segment`` times it covers one in its middle (KdV's
    n_eta = 5 model trained that way reconstructed its training snapshots 0 and 999 to
    0.06-0.08, those in between to 0.025, and the predictions start from snapshot 0);
    with the overhang every snapshot is covered between 1/2 and 3/2 times as often as
    the middle ones."""
    last = snapshots - segment
    overhang = segment // 2
    start = int(torch.randint(-overhang, last + overhang + 1, (1,), generator=generator))
    return min(max(start, 0), last)


def validation_elbo(model, segments, seed=0):
    """The mean ELBO (residual weight 1) of ``segments`` (:func:`validation_set`'s),
    z drawn from a generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        return sum(model.elbo(y, t, generator)[0].item() for y, t in segments) / len(segments)


def reconstruction_error(model, y, chunk=16):
    """Mean over the snapshots ``y`` (S, C, *grid) of ||y - mu_y(mu_z(y))|| / ||y||."""
    errors = []
    with torch.no_grad():
        for part in y.split(chunk):
            mean = model.decode(model.encode(part))[0]
            errors.append((part - mean).flatten(1).norm(dim=1) / part.flatten(1).norm(dim=1))
    return torch.cat(errors).mean().item()


def _scored(model, validation, step):
    """{elbo, error, step, state (a copy of the weights)}: the model's validation ELBO and
    reconstruction error at ``step``; ``validation`` :func:`validation_set`'s (segments, snapshots)."""
    segments, snapshots = validation
    return {"elbo": validation_elbo(model, segments), "error": reconstruction_error(model, snapshots), "step": step,
            "state": {k: v.clone() for k, v in model.state_dict().items()}}


def grow(model, previous):
    """Start ``model``'s parameters from ``previous`` (a state dict of a smaller n_eta): equal
    shapes are copied, larger ones keep the old block in their leading slice; the rest get
    Xavier-normal weights (zero biases)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                torch.nn.init.xavier_normal_(p)
            elif name.endswith("bias"):
                p.zero_()
            old = previous.get(name)
            if old is None or old.dim() != p.dim():
                continue
            block = tuple(slice(0, min(a, b)) for a, b in zip(old.shape, p.shape))
            p[block] = old[block]


def _stage_record(path):
    """The ``eta<N>.pt`` record of a run at ``path``, or None if ``path`` is not one."""
    try:
        record = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:  # an emulator artifact (a TorchScript archive) or no torch file at all
        return None
    return record if isinstance(record, dict) and {"config", "state", "args"} <= set(record) else None


def artifact_stage(problem, path):
    """(n_eta, state dict, provenance) of the trained model at ``path``: an emulator artifact
    (``export``'s; the provenance is its path, sha256, training command and offline
    metrics) or a run's ``eta<N>.pt`` (its path, training command and best step), checked
    to be ``problem``'s configuration."""
    from hybridsolver.plugin import PluginError
    from hybridsolver.plugin.artifact import load_module, read_artifact

    record = _stage_record(path)
    if record is not None:
        config, state = record["config"], record["state"]
        provenance = {"stage": os.path.relpath(path), "command": command(record["args"]),
                      "best_step": record["best_step"]}
    else:
        try:
            manifest = read_artifact(path)
            config = manifest["provenance"]["config"]
            module = load_module(path)
        except (PluginError, KeyError) as exc:
            raise CaseError(f"--init: {exc}") from None
        traced = module.encode.state_dict()
        state = {k[len("model."):]: v for k, v in traced.items() if k.startswith("model.")}
        provenance = {"artifact": os.path.relpath(path), "sha256": manifest["sha256"],
                      "command": manifest["provenance"].get("command"),
                      "offline_metrics": manifest["provenance"].get("offline_metrics")}
    reference = stage_config(problem, config["n_eta"])
    if json.dumps(dataclasses.asdict(Config(**config))) != json.dumps(dataclasses.asdict(reference)):
        raise CaseError(f"--init {path}: a model of configuration {config}, not {problem}'s")
    keys = LatentSDE(reference, dtype=torch.float32).state_dict().keys()
    return config["n_eta"], {k: state[k].clone() for k in keys}, provenance


def command(args):
    """The ``train`` command line (``--data DATA``) of a run's recorded ``args``."""
    problem, _, max_eta, steps, segment, seed, *rest = args
    line = (f"python -m plugins.latent_sde.train --problem {problem} --data DATA --max-eta {max_eta} "
            f"--steps {steps} --segment {segment} --seed {seed}")
    if rest and rest[0] != "init":
        line += f" --later-steps {rest.pop(0)}"
    if rest:
        line += f" --init {os.path.relpath(rest[1])} --init-step {rest[2]}"
    return line


def stage_config(problem, n_eta):
    return dataclasses.replace(PROBLEMS[problem], n_eta=n_eta)


def save(path, record):
    torch.save(record, f"{path}.tmp")
    os.replace(f"{path}.tmp", path)


def load_stage(path):
    """(model in eval mode, record) of an ``eta<N>.pt``."""
    record = torch.load(path, map_location="cpu", weights_only=False)
    model = LatentSDE(Config(**record["config"]), dtype=torch.float32)
    model.load_state_dict(record["state"])
    return model.eval(), record


def parameter_groups(model):
    """Adam's parameter groups of ``model``: the scale operators' kernel at their
    ``lr_scale`` times the learning rate (``scale``), every other parameter at 1."""
    kernel = model.ops.kernel
    return [{"params": [kernel], "scale": model.ops.lr_scale},
            {"params": [p for p in model.parameters() if p is not kernel], "scale": 1.0}]


def set_learning_rate(optimizer, lr, step):
    """Set each group's learning rate at ``step``: its ``scale`` times ``lr`` decayed by
    ``DECAY`` every ``DECAY_EVERY`` steps."""
    for group in optimizer.param_groups:
        group["lr"] = group["scale"] * lr * DECAY ** (step // DECAY_EVERY)


def train(problem, data, out, max_eta=5, steps=16000, segment=128, seed=0, progress=True, later_steps=None,
          init=None, init_step=0):
    """Train (or continue) every stage n_eta = 0 .. max_eta into ``out`` (from the stage
    of the artifact ``init`` at its step ``init_step`` when given); returns the path of the
    last stage's ``eta<max_eta>.pt``."""
    y, t = (a.float() for a in load_observations(data))
    validation = validation_set(data, segment)
    if y.shape[1] < segment:
        raise CaseError(f"--segment: {segment} snapshots, the trajectories hold {y.shape[1]}")
    os.makedirs(out, exist_ok=True)
    checkpoint_path = os.path.join(out, "checkpoint.pt")
    later_steps = steps if later_steps is None else later_steps
    args = [problem, os.path.abspath(data), max_eta, steps, segment, seed]
    args += [later_steps] if later_steps != steps else []
    init_stage, init_state, init_provenance = artifact_stage(problem, init) if init else (0, None, None)
    if init:
        if init_stage > max_eta:
            raise CaseError(f"--init {init}: a model of n_eta = {init_stage}, beyond --max-eta {max_eta}")
        args += ["init", os.path.abspath(init), init_step]
    state = torch.load(checkpoint_path, weights_only=False) if os.path.exists(checkpoint_path) else None
    if state is not None and state["args"] != args:
        raise CaseError(f"{checkpoint_path}: made with other arguments {state['args']}; use another --out")
    first_stage = state["stage"] if state else init_stage
    for n_eta in range(first_stage, max_eta + 1):
        torch.manual_seed(seed * 1000 + n_eta)  # the initial and the new (grown) weights
        model = LatentSDE(stage_config(problem, n_eta), dtype=torch.float32)
        lr = 1e-3 if n_eta == 0 else 1e-4
        optimizer = torch.optim.Adam(parameter_groups(model), lr=lr)
        generator = torch.Generator().manual_seed(seed * 1000 + n_eta)
        step = 0
        resumed = state is not None and state["stage"] == n_eta and "model" in state
        if resumed:
            if len(state["optimizer"]["param_groups"]) != len(optimizer.param_groups):
                raise CaseError(f"{checkpoint_path}: made before the smoothing kernel had its own learning rate "
                                "(one Adam group); use another --out")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"])
            step = state["step"]
            best = state["best"]
        elif init_state is not None and n_eta == init_stage:
            model.load_state_dict(init_state)
            step = init_step
        elif n_eta > 0:
            grow(model, torch.load(os.path.join(out, f"eta{n_eta - 1}.pt"), weights_only=False)["state"])
        if not resumed:
            best = _scored(model, validation, step)
        started = time.monotonic()
        stage_steps = steps if n_eta == 0 else later_steps
        with tqdm(total=stage_steps, initial=step, disable=not progress, desc=f"n_eta={n_eta}",
                  dynamic_ncols=True) as bar:
            while step < stage_steps:
                k = int(torch.randint(y.shape[0], (1,), generator=generator))
                lo = segment_start(y.shape[1], segment, generator)
                weight = min(1.0, step / WARMUP)
                set_learning_rate(optimizer, lr, step)
                elbo, log_likelihood, residual = model.elbo(y[k, lo:lo + segment], t[lo:lo + segment], generator,
                                                            residual_weight=weight)
                optimizer.zero_grad()
                (-elbo).backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
                optimizer.step()
                step += 1
                bar.update(1)
                if step % LOG_EVERY == 0 or step == stage_steps:
                    scored = _scored(model, validation, step)
                    best = scored if scored["elbo"] > best["elbo"] else best
                    with open(os.path.join(out, "log.jsonl"), "a") as log:
                        log.write(json.dumps({"n_eta": n_eta, "step": step, "elbo": elbo.item(),
                                              "log_likelihood": log_likelihood.item(), "residual": residual.item(),
                                              "validation_elbo": scored["elbo"], "validation_error": scored["error"],
                                              "seconds": time.monotonic() - started}) + "\n")
                    save(checkpoint_path, {"args": args, "stage": n_eta, "step": step, "model": model.state_dict(),
                                           "optimizer": optimizer.state_dict(), "generator": generator.get_state(),
                                           "best": best})
        save(os.path.join(out, f"eta{n_eta}.pt"), {"config": dataclasses.asdict(model.config),
                                                   "state": best["state"], "args": args, "init": init_provenance,
                                                   "validation_elbo": best["elbo"], "validation_error": best["error"],
                                                   "best_step": best["step"]})
        state = {"args": args, "stage": n_eta + 1}
        save(checkpoint_path, state)
    return os.path.join(out, f"eta{max_eta}.pt")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problem", choices=sorted(PROBLEMS), required=True)
    parser.add_argument("--data", required=True, help="a hybridsolver generate folder (its train.nc)")
    parser.add_argument("--out", help="run folder (default runs/latent_sde/PROBLEM)")
    parser.add_argument("--max-eta", type=int, default=5)
    parser.add_argument("--steps", type=int, default=16000, help="optimizer steps of the n_eta = 0 stage")
    parser.add_argument("--later-steps", type=int, help="optimizer steps of each later stage (default --steps)")
    parser.add_argument("--segment", type=int, default=128, help="snapshots per segment")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--init", help="an exported artifact or a run's eta<N>.pt whose stage the run starts from")
    parser.add_argument("--init-step", type=int, default=0, help="the step of its stage the artifact is at")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        path = train(args.problem, args.data, args.out or os.path.join("runs", "latent_sde", args.problem),
                     args.max_eta, args.steps, args.segment, args.seed, progress=not args.quiet,
                     later_steps=args.later_steps, init=args.init, init_step=args.init_step)
    except CaseError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
