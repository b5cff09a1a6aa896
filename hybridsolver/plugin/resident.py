"""Device-resident rollouts: an emulator and its refiners stepping on the plugin's device.

A *segment* starts at a step where the only plugins acting are one replace artifact
(an emulator) covering every member and post_step artifacts (refiners) that read and
return the emulator's output fields: same space, dtype and device, inputs those fields
at the current or the previous step.  Between its ends the members' state stays the
tensor the emulator returns, ``(M, C, *grid)`` in the emulator's layout; every jump is
one batched call of the emulator (in ``max_batch`` chunks) and of each refiner due, and
quarantined members are held at zero on the device.  The state comes back to the
host's arrays once, when the segment ends: at ``until`` (the next output, monitor check
or checkpoint of a run, or the end of an ``advance``), before a jump that would pass
``limit``, where an observe hook is due, where a plugin's window opens or closes, or on
a signal.

The tensor stays the authoritative state after a segment: the next segment starts from
it, not from the host's copy, when the host state is still what the segment wrote (same
step, same values), and checkpoints carry it (``resident/chain``).  So where segments
end changes nothing: a member's bits do not depend on the output cadence, on
``advance`` calls being split, or on a kill and resume.  They equal the host path's
(:meth:`hybridsolver.Simulation._host_iteration`, ``[runtime] resident = false``) for
spectral emulators; for physical ones the host path's spectral round trip of the state
(rfft, then irfft) at every call changes the last bits.
"""
import numpy as np

from .. import fft
from ..hooks import timed_call
from .hook import ArtifactHook, field_channels


def _chain_channels(emulator, sim):
    """{field: (first channel, stop)} of the emulator's output layout."""
    channels, lo = {}, 0
    for entry in emulator.manifest["outputs"]:
        layers = field_channels(sim, entry["field"])
        channels[entry["field"]] = (lo, lo + layers)
        lo += layers
    return channels


def _is_emulator(hook, sim):
    """A replace artifact covering every member whose inputs are its outputs, at the current step."""
    if not isinstance(hook, ArtifactHook):
        return False
    m = hook.manifest
    return (hook.rows == slice(0, len(sim.members))
            and [(e["field"], e["space"], e.get("at", "current")) for e in m["inputs"]]
            == [(e["field"], e["space"], "current") for e in m["outputs"]])


def _refines(refiner, emulator):
    """True if post_step artifact ``refiner`` reads and returns ``emulator``'s layout."""
    if not isinstance(refiner, ArtifactHook):
        return False
    m, e = refiner.manifest, emulator.manifest
    fields = [x["field"] for x in e["outputs"]]
    space = e["outputs"][0]["space"]
    return (m["dtype"] == e["dtype"] and [x["field"] for x in m["outputs"]] == fields
            and m["outputs"][0]["space"] == space and m["inputs"][0]["space"] == space
            and all(x["field"] in fields for x in m["inputs"]))


class ResidentRollout:
    """Finds and runs device-resident segments of a simulation's step loop.

    ``segments`` and ``steps`` count the segments run and the steps they took.
    """

    def __init__(self, sim):
        self.sim = sim
        self.segments = 0
        self.steps = 0
        self._emulators = [h for h in sim._at("replace") if _is_emulator(h, sim)]
        self._refiners = {id(r): [p for p in sim._at("post_step") if _refines(p, r)] for r in self._emulators}
        self._chain = None  # (emulator, tensor, step): the device state the host's state was last copied from
        self._written = fft.zeros(sim.state.shape, sim.state.dtype) if self._emulators else None

    def ready(self, limit):
        """The emulator that can start a segment at the current step, or None."""
        sim = self.sim
        step = sim.step
        if not self._emulators or any(h.active(step) for h in sim._at("tendency")):
            return None
        active = [h for h in sim._at("replace") if h.active(step)]
        if len(active) != 1 or active[0] not in self._emulators:
            return None
        emulator = active[0]
        if not (emulator.schedule.due(step, sim.dt) and step + emulator.schedule.every <= limit):
            return None
        refiners = self._refiners[id(emulator)]
        if any(p.active(step) and p not in refiners for p in sim._at("post_step")):
            return None
        if any(p.device != emulator.device for p in refiners if p.active(step)):
            return None
        return emulator

    def run(self, emulator, until, limit):
        """Run one segment from the current step with ``emulator`` (:meth:`ready`) and write
        the state back to the host at its end."""
        import torch

        sim = self.sim
        every = emulator.schedule.every
        channels = _chain_channels(emulator, sim)
        active = [h.active(sim.step) for h in sim.hooks]
        refiners = [p for p in self._refiners[id(emulator)] if p.active(sim.step)]
        keep_previous = bool(refiners)
        quarantined = torch.from_numpy(sim.quarantined).to(emulator.device) if sim.quarantined.any() else None
        x = self._start(emulator)
        self.segments += 1
        with torch.inference_mode():
            while True:
                previous = x if keep_previous else None
                x = timed_call(emulator, x, sim, sim.step, call=emulator.run)
                sim.step += every
                self.steps += every
                for refiner in refiners:
                    if refiner.schedule.due(sim.step, sim.dt):
                        rows = refiner.rows
                        inputs = _refiner_inputs(refiner, channels, x[rows], previous[rows])
                        x[rows] = timed_call(refiner, inputs, sim, sim.step, call=refiner.run)
                if quarantined is not None:
                    x[quarantined] = 0
                step = sim.step
                if (step >= until or step + every > limit or sim._signal is not None
                        or not emulator.schedule.due(step, sim.dt)
                        or any(h.active(step) != a for h, a in zip(sim.hooks, active))
                        or any(h.due(step, sim.dt) for h in sim._at("observe"))):
                    break
        sim.state[...] = emulator.to_state(sim, emulator.from_tensor(x))
        self._written[...] = sim.state
        self._chain = (emulator, x, sim.step)

    def _start(self, emulator):
        """The segment's first tensor: the last segment's, if the host state is still what
        it wrote, else the emulator's inputs from the host state."""
        sim = self.sim
        if self._valid() and self._chain[0] is emulator:
            return self._chain[1]
        return emulator.to_tensor(emulator._inputs(sim, sim.state, sim.state))

    def _valid(self):
        chain = self._chain
        return chain is not None and chain[2] == self.sim.step and np.array_equal(self.sim.state, self._written)

    def checkpoint(self):
        """{name: array} for a checkpoint: the last segment's tensor (``resident/chain``)
        and its emulator's name, when the host state is still what it wrote; else {}."""
        if not self._valid():
            return {}
        emulator, x, _ = self._chain
        return {"resident/chain": x.detach().to("cpu").numpy(), "resident/emulator": np.array(emulator.name)}

    def restore(self, arrays):
        """Continue from :meth:`checkpoint`'s arrays (after the state was restored)."""
        import torch

        if "resident/chain" not in arrays:
            self._chain = None
            return
        name = str(arrays["resident/emulator"])
        emulator = next((e for e in self._emulators if e.name == name), None)
        if emulator is None:
            return
        self._chain = (emulator, torch.from_numpy(arrays["resident/chain"]).to(emulator.device), self.sim.step)
        self._written[...] = self.sim.state


def _refiner_inputs(refiner, channels, current, previous):
    """A refiner's input tensor from the chain's current and previous states (rows of it)."""
    import torch

    sources = {"current": current, "previous": previous}
    parts = [sources[e.get("at", "current")][:, slice(*channels[e["field"]])] for e in refiner.manifest["inputs"]]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
