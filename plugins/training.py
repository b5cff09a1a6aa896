"""Helpers the families' ``train`` and ``export`` commands share: minibatches of windows of
consecutive snapshots, the resumable optimisation loop with its checkpoint and log, and
a training run's last log line (for the manifests' provenance).  Used by ``sns`` and
``hine``."""
import json
import os
import time

import numpy as np
import torch
from tqdm import tqdm

from hybridsolver.case import CaseError


def windows(x, batch, length, generator):
    """``batch`` windows of ``length`` consecutive frames of ``x`` (trajectories, T, n, n),
    trajectory and start drawn uniformly with ``generator``: (batch, length, n, n)."""
    trajectory = torch.randint(x.shape[0], (batch,), generator=generator)
    start = torch.randint(x.shape[1] - length + 1, (batch,), generator=generator)
    index = start[:, None] + torch.arange(length)
    return x[trajectory[:, None], index]


def last_log(run):
    """The last line of the run folder ``run``'s ``log.jsonl`` (a dict; {} if empty)."""
    with open(os.path.join(run, "log.jsonl")) as f:
        lines = f.read().splitlines()
    return json.loads(lines[-1]) if lines else {}


def load_checkpoint(path, args, extendable=False):
    """The checkpoint at ``path`` (the dict :func:`optimise` saves), or None if there is
    none; CaseError naming the first of ``args`` it was made with otherwise.  With
    ``extendable`` a larger ``args['steps']`` is accepted (a finished run continues)."""
    if not os.path.isfile(path):
        return None
    saved = torch.load(path, map_location="cpu", weights_only=False)
    longer = extendable and {**saved["args"], "steps": args["steps"]} == args and args["steps"] >= saved["step"]
    if saved["args"] != args and not longer:
        changed = next(k for k in args if saved["args"].get(k) != args[k])
        raise CaseError(f"{path}: made with {changed} = {saved['args'].get(changed)!r}, now "
                        f"{args[changed]!r} (use another --out, or the same arguments to continue)")
    return saved


def optimise(model, optimizer, loss_of, steps, step, seed, out, checkpoint_every, record_of, progress=True,
             desc=None, after_step=None):
    """Optimizer steps ``step`` .. ``steps - 1`` of ``model``: step s minimises
    ``loss_of(s, generator)`` with a generator seeded by (``seed``, s), then calls
    ``after_step(s)`` if given.  Every ``checkpoint_every`` steps and at the end, appends
    the mean loss since the last line and its seconds to ``out/log.jsonl`` and saves
    ``record_of(step)`` atomically to ``out/checkpoint.pt``.  Returns the last step."""
    checkpoint_path, log_path = os.path.join(out, "checkpoint.pt"), os.path.join(out, "log.jsonl")
    model.train()
    losses, started = [], time.perf_counter()
    with tqdm(total=steps, initial=step, disable=not progress, desc=desc, dynamic_ncols=True) as bar:
        while step < steps:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + step)
            loss = loss_of(step, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if after_step is not None:
                after_step(step)
            losses.append(float(loss.detach()))
            step += 1
            bar.update(1)
            if step % checkpoint_every == 0 or step == steps:
                line = {"step": step, "loss": float(np.mean(losses)), "seconds": time.perf_counter() - started}
                with open(log_path, "a") as f:
                    f.write(json.dumps(line) + "\n")
                tmp = checkpoint_path + ".tmp"
                torch.save(record_of(step), tmp)
                os.replace(tmp, checkpoint_path)
                bar.set_postfix_str(f"loss={line['loss']:.4g}")
                losses, started = [], time.perf_counter()
    return step
