"""Checkpoints of a simulation: what continuing it bit-identically needs, in one .npz.

Arrays (members first where they have members):

- ``state``, ``step`` (which positions every random stream, :mod:`hybridsolver.rng`);
- ``stepper/*``, the time scheme's history (:meth:`hybridsolver.steppers.Stepper.checkpoint`);
- ``held/NAME``, the held tendency of each tendency hook;
- ``plugin/NAME/state/ENTRY`` and ``plugin/NAME/first``, a plugin's member state and
  whether its next call is its first (:meth:`hybridsolver.plugin.ArtifactHook.checkpoint`);
- ``resident/chain`` and ``resident/emulator``, the device-resident rollout's tensor
  (:mod:`hybridsolver.plugin.resident`), when the host's state is a copy of it;
- ``quarantined`` and ``member_status``.

A checkpoint is written atomically, and never with a non-finite value in it.
"""
import numpy as np

from .case import CaseError
from .output import save_npz_atomic


def save_checkpoint(sim, path):
    """Write ``sim``'s checkpoint to ``path`` (.npz) atomically; ValueError naming the array
    when one is not finite (nothing is written then), :class:`hybridsolver.output.WriteError`
    when the disk refuses."""
    arrays = checkpoint_arrays(sim)
    bad = [name for name, value in arrays.items() if value.dtype.kind in "fc" and not np.isfinite(value).all()]
    if bad:
        raise ValueError(f"{path}: not written, {bad[0]} is not finite at step {sim.step}")
    save_npz_atomic(path, arrays)


def checkpoint_arrays(sim):
    """{name: array} of ``sim``'s checkpoint (module docstring), whatever their values."""
    arrays = {"state": sim.state, "step": np.array(sim.step)}
    arrays |= {f"stepper/{k}": v for k, v in sim.stepper.checkpoint().items()}
    arrays |= {f"held/{h.name}": h.held for h in sim.hooks if h.callsite == "tendency"}
    if sim._hooks_started:
        for hook in sim.hooks:
            if hasattr(hook, "checkpoint"):
                arrays |= {f"plugin/{hook.name}/{k}": v for k, v in hook.checkpoint().items()}
        if sim._resident is not None:
            arrays |= sim._resident.checkpoint()
    return arrays | {"quarantined": sim.quarantined, "member_status": np.array(sim.member_status)}


def load_checkpoint(sim, path):
    """Continue ``sim`` from :func:`save_checkpoint`'s file ``path``, made by a simulation of
    the same case (state shape, scheme and hooks); CaseError naming ``path`` otherwise.
    Starts the hooks first (without calling observe hooks: the run that wrote the
    checkpoint has)."""
    sim.start_hooks(observe=False)
    with np.load(path) as ck:
        if ck["state"].shape != sim.state.shape:
            raise CaseError(f"{path}: checkpoint state shape {ck['state'].shape}, this case's {sim.state.shape}")
        tendency_hooks = [h for h in sim.hooks if h.callsite == "tendency"]
        missing = [h.name for h in tendency_hooks if f"held/{h.name}" not in ck.files]
        if missing:
            raise CaseError(f"{path}: no held tendency of hook '{missing[0]}' in the checkpoint")
        sim.state[...] = ck["state"]
        sim.step = int(ck["step"])
        sim.stepper.restore({k.split("/", 1)[1]: ck[k] for k in ck.files if k.startswith("stepper/")})
        for hook in tendency_hooks:
            hook.held[...] = ck[f"held/{hook.name}"]
            hook.holding = True
        for hook in sim.hooks:
            if hasattr(hook, "restore"):
                prefix = f"plugin/{hook.name}/"
                hook.restore({k[len(prefix):]: ck[k] for k in ck.files if k.startswith(prefix)}, path)
        if sim._resident is not None:
            sim._resident.restore({k: ck[k] for k in ck.files if k.startswith("resident/")})
        sim.quarantined[...] = ck["quarantined"]
        sim.member_status = [str(s) for s in ck["member_status"]]
    if sim._tendency is not None:
        sim._sum_held(tendency_hooks)
