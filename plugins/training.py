"""Helpers the families' ``train`` and ``export`` commands share: minibatches of windows of
consecutive snapshots, and a training run's last log line (for the manifests'
provenance).  Used by ``sns`` and ``hine``."""
import json
import os

import torch


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
