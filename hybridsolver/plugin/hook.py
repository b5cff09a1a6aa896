"""A TorchScript artifact as a hook: batched inference, member state, device tensors.

The module's ``forward`` takes

    x:       Tensor (B, C_in, ny, nx) real (physical inputs) or
             (B, C_in, ny, nx//2+1) complex (spectral inputs, unnormalised rfft2)
    noise:   List[Tensor], one (B, *shape) standard-normal tensor per manifest
             ``noise`` entry, drawn by the host from each member's stream
    options: Dict[str, float], the sampler settings plus ``dt``, ``time``, ``every``,
             ``first`` (1.0 on the plugin's first call of the run, else 0.0) and the box
             lengths ``length_y``, ``length_x``
    state:   List[Tensor] (stateful modules only, manifest ``state``), one
             (B, *shape) tensor per entry in manifest order: what the module returned
             for these members at its previous call, zeros at the first

and returns ``(B, C_out, ny, nx)`` (physical outputs) or ``(B, C_out, ny, nx//2+1)``
complex (spectral), or, when stateful, ``(out, state)``.  Channels are the manifest's
fields in order, a layered field (``qg2layer``'s ``q``) taking one channel per layer.
``B`` is at most ``max_batch``; rows are ensemble members.  What the output means
depends on the callsite: a tendency (``tendency``), the state ``every`` steps later
(``replace``) or the corrected state (``post_step``).
"""
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import rng
from ..hooks import Hook, HookStats
from .artifact import load_module, read_artifact, resolve
from .contract import check_contract, check_output, check_returned_state, check_signature, pick_device
from .manifest import PluginError, per_member_shape
from .operators import PhysicalTransforms, is_operator_output


class ArtifactHook(Hook):
    """A TorchScript artifact as a hook: one batched inference call for its members.

    ``entry`` is the case's ``[[plugins]]`` table (validated), ``index`` its position.
    Inputs of all the hook's rows are gathered into one array (physical fields through
    the host's FFT plans, or the spectral state), run in chunks of at most
    ``max_batch`` rows under ``torch.inference_mode()`` and scattered back in the
    state's layout (spectral ``(rows, ny, nx//2+1)``, or physical for finite-difference
    equations).  On the CPU with ``workers > 1`` the chunks run ``workers`` at a time on
    as many threads, each with one torch thread (:meth:`run`).  A stateful module's
    state is held here, ``member_state`` (one tensor ``(rows, *shape)`` per manifest
    entry, on the plugin's device).
    """

    def __init__(self, entry, index, sim):
        self.where = f"plugins.{index}"
        case_dir = os.path.dirname(os.path.abspath(sim.case.path)) if sim.case.path else None
        try:
            self.path = resolve(entry["path"], case_dir)
            manifest = read_artifact(self.path)
        except PluginError as exc:
            raise PluginError(f"{self.where}.path: {exc}") from None
        where = f"{self.where} ({self.path})"
        self.manifest = manifest
        self.callsite = manifest["callsite"]
        check_contract(manifest, sim, where)
        try:
            super().__init__(every=entry.get("every", manifest["every"]), interval=entry.get("interval"),
                             offset=entry.get("offset", 0), members=entry.get("members"),
                             hold_noise=entry.get("hold_noise", 0.0), name=entry.get("name", manifest["name"]),
                             start=entry.get("start", 0.0), stop=entry.get("stop"))
        except ValueError as exc:
            raise PluginError(f"{where}: {exc}") from None
        self.label = f"{self.where} ('{self.name}')"
        unknown = sorted(set(entry.get("sampler", {})) - set(manifest["sampler"]))
        if unknown:
            raise PluginError(f"{self.where}.sampler.{unknown[0]}: not a sampler setting of the artifact "
                              f"(it has: {', '.join(manifest['sampler']) or 'none'})")
        self.sampler = {k: float(v) for k, v in (manifest["sampler"] | entry.get("sampler", {})).items()}
        self.requested_device = entry.get("device", "auto")
        self.max_batch = entry.get("max_batch")
        self.workers = entry.get("workers", 1)
        self._pool = None
        self.module = None
        self.first = True

    @property
    def stateful(self):
        return bool(self.manifest.get("state"))

    @property
    def operator_outputs(self):
        """True when the host finishes the outputs (``derivative`` or ``form`` entries)."""
        return any(is_operator_output(e) for e in self.manifest["outputs"])

    # -- setup

    def start(self, sim):
        """Load the module, choose the device, allocate the member state and make one
        dry-run call (before step 0)."""
        import torch

        where = f"{self.where} ({self.path})"
        self.device = torch.device(pick_device(self.requested_device, self.manifest, self.where))
        self.module = load_module(self.path).to(self.device)
        check_signature(self.module, self.manifest, where)
        self.dtype = getattr(torch, self.manifest["dtype"])
        state = sim.state[self.rows]
        rows = state.shape[0]
        if self.device.type == "cpu" and self.workers > 1:
            self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix=self.name)
            self.max_batch = self.max_batch or -(-rows // self.workers)
        self.max_batch = min(self.max_batch or rows, rows)
        self.noise_shapes = [per_member_shape(e, self.sampler, sim.grid.shape) for e in self.manifest["noise"]]
        self.state_specs = [(e["name"], per_member_shape(e, self.sampler, sim.grid.shape), getattr(torch, e["dtype"]))
                            for e in self.manifest.get("state", [])]
        self.member_state = [torch.zeros((rows,) + shape, dtype=dtype, device=self.device)
                             for _, shape, dtype in self.state_specs]
        self.lengths = {"length_y": float(sim.grid.length[0]), "length_x": float(sim.grid.length[-1])}
        self.physical = None
        if sim.equation.state_dtype == np.complex128 and (
                self.manifest["inputs"][0]["space"] == "physical" or self.operator_outputs):
            self.physical = PhysicalTransforms(sim.equation, self.manifest["inputs"], self.manifest["outputs"],
                                               lambda field: field_channels(sim, field))
        self._pinned = {}
        self.stats = HookStats()
        first = state[:self.max_batch]
        dry = [s[:self.max_batch].clone() for s in self.member_state]
        try:
            x = self.to_tensor(self._inputs(sim, first, first))
            with torch.inference_mode():
                result = self._module_call(x, self._noise(sim, self.max_batch, sim.step, 0), sim.step, sim, dry, True)
        except (RuntimeError, torch.jit.Error) as exc:  # a scripted module's raise is a torch.jit.Error
            raise PluginError(f"{where}: dry run failed: {str(exc).strip().splitlines()[-1]}") from None
        out = result
        if self.stateful:
            if not (isinstance(result, tuple) and len(result) == 2):
                raise PluginError(f"{where}: dry run returned {type(result).__name__}, a stateful module returns "
                                  "(out, state)")
            out, new_state = result
            check_returned_state(new_state, self.state_specs, self.max_batch, where)
        check_output(self.from_tensor(out), self._output_shape(sim, self.max_batch),
                     self.manifest["outputs"][0]["space"], where)
        self.stats = HookStats()  # the dry run is not counted

    def _output_shape(self, sim, rows):
        grid = sim.grid
        last = grid.shape if self.manifest["outputs"][0]["space"] == "physical" else grid.spectral_shape
        channels = sum(field_channels(sim, e["field"]) * (3 if e.get("form") == "stress" else 1)
                       for e in self.manifest["outputs"])
        return (rows, channels) + tuple(last)

    # -- host arrays and device tensors

    def _inputs(self, sim, state, previous):
        """The module input, (rows, C_in, *grid) float or (rows, C_in, *spectral grid) complex
        (grid ``(ny, nx)`` or ``(n,)``); a layered field (``qg2layer``'s q) gives one channel
        per layer.  Inputs are state fields or the equation's ``derived_fields`` (e.g.
        ``qg2layer``'s psi, u, v), physical ones through the host's FFTW plans with their
        ``derivative`` taken (:class:`PhysicalTransforms`).  Equations with a physical
        state (finite differences) hand their fields as they are."""
        eq = sim.equation
        if self.manifest["inputs"][0]["space"] == "physical" and eq.state_dtype == np.complex128:
            return self.physical.physical_inputs({"current": state, "previous": previous})
        names = [e["field"] for e in self.manifest["inputs"]]
        read = eq.to_fields if eq.state_dtype != np.complex128 else (
            lambda w: eq.spectral_fields(w) | eq.derived_spectra(w, names))
        sources = {"current": read(state)}
        if any(e.get("at") == "previous" for e in self.manifest["inputs"]):
            sources["previous"] = read(previous)
        arrays = [sources[e.get("at", "current")][e["field"]] for e in self.manifest["inputs"]]
        dims = len(sim.grid.shape)
        return np.concatenate([a.reshape((a.shape[0], -1) + a.shape[a.ndim - dims:]) for a in arrays], axis=1)

    def to_state(self, sim, out):
        """The state rows (spectral, or physical for finite-difference equations) of a
        module output ``out`` (numpy, the module's output layout); operator outputs are
        finished by the host (:meth:`PhysicalTransforms.output_spectra`)."""
        if self.operator_outputs:
            return sim.equation.from_spectral_fields(self.physical.output_spectra(out))
        fields, channel = {}, 0
        for entry in self.manifest["outputs"]:
            layers = field_channels(sim, entry["field"])
            part = out[:, channel:channel + layers]
            fields[entry["field"]] = part if layers > 1 else part[:, 0]
            channel += layers
        if self.manifest["outputs"][0]["space"] == "physical":
            return sim.equation.from_fields(fields)
        return sim.equation.from_spectral_fields(fields)

    def to_tensor(self, array, slot=0):
        """A torch tensor of numpy ``array`` on the plugin's device in the manifest dtype
        (complex64/complex128 for complex arrays); counts the bytes sent to a GPU."""
        import torch

        tensor = torch.from_numpy(np.ascontiguousarray(array))
        dtype = self.dtype if not tensor.is_complex() else (torch.complex64 if self.dtype == torch.float32
                                                           else torch.complex128)
        if self.device.type == "cpu":
            return tensor.to(dtype)
        key = (slot, dtype, tuple(tensor.shape))
        if key not in self._pinned:
            self._pinned[key] = torch.empty(tensor.shape, dtype=dtype, pin_memory=True)
        pinned = self._pinned[key]
        pinned.copy_(tensor)
        self.stats.bytes_to_device += pinned.numel() * pinned.element_size()
        return pinned.to(self.device, non_blocking=True)

    def from_tensor(self, tensor):
        """Numpy float64 (complex128) of a module output on the device: one host round trip
        (bytes counted when the device is a GPU)."""
        if self.device.type != "cpu":
            self.stats.bytes_from_device += tensor.numel() * tensor.element_size()
        self.stats.round_trips += 1
        out = tensor.detach().to("cpu")
        return out.numpy().astype(np.complex128 if out.is_complex() else np.float64, copy=False)

    # -- one call

    def _noise(self, sim, rows, step, lo):
        """The noise tensors of hook rows ``lo .. lo+rows-1`` at ``step`` from their members' streams."""
        members = sim.members[self.rows][lo:lo + rows]
        return [self.to_tensor(rng.standard_normal(sim.seed, members, f"plugin:{self.name}:{e['name']}", step, shape),
                               i + 1)
                for i, (e, shape) in enumerate(zip(self.manifest["noise"], self.noise_shapes))]

    def _module_call(self, x, noise, step, sim, state, first):
        options = self.sampler | self.lengths | {
            "dt": float(sim.dt), "time": float(sim.time_at(step)), "every": float(self.schedule.every or 0),
            "first": 1.0 if first else 0.0}
        if self.stateful:
            return self.module(x, noise, options, state)
        return self.module(x, noise, options)

    def run(self, x, sim, step):
        """The module's output for the hook's rows, input ``x`` (a tensor on the device,
        rows the hook's members), in chunks of ``max_batch`` rows; a stateful module's
        member state is read and replaced.  Returns a tensor on the device.

        With a thread pool (CPU, ``workers > 1``) the chunks' calls run concurrently,
        each on one torch thread: torch's kernels on small tensors use a second thread
        poorly, two single-threaded calls use both.  A member's bits then depend on
        ``workers`` (one torch thread per call instead of torch's default), not on the
        ensemble size or ``max_batch``.
        """
        import torch

        bounds = [(lo, min(lo + self.max_batch, x.shape[0])) for lo in range(0, x.shape[0], self.max_batch)]

        def call(chunk, noise):
            lo, hi = chunk
            with torch.inference_mode():
                return self._module_call(x[lo:hi], noise, step, sim, [s[lo:hi] for s in self.member_state], self.first)

        def chunk_noise(chunk):
            return self._noise(sim, chunk[1] - chunk[0], step, chunk[0])

        if self._pool is None:  # one chunk's noise at a time
            results = [call(chunk, chunk_noise(chunk)) for chunk in bounds]
        else:
            noises = [chunk_noise(chunk) for chunk in bounds]
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                results = list(self._pool.map(call, bounds, noises))
            finally:
                torch.set_num_threads(threads)
        outputs = []
        with torch.inference_mode():
            for (lo, hi), out in zip(bounds, results):
                if self.stateful:
                    out, new_state = out
                    for held, new in zip(self.member_state, new_state):
                        held[lo:hi] = new
                outputs.append(out)
        self.first = False
        return torch.cat(outputs) if len(outputs) > 1 else outputs[0]

    def __call__(self, sim, state, previous=None):
        """The result for the hook's rows in the state's shape and dtype (spectral, or
        physical for finite-difference equations)."""
        out = self.from_tensor(self.run(self.to_tensor(self._inputs(sim, state, previous)), sim, sim.step))
        return self.to_state(sim, out)

    # -- member state in checkpoints and quarantine

    def checkpoint(self):
        """{name: numpy array}: the member state (``state/NAME``, rows first) and whether
        the next call is the first (``first``)."""
        arrays = {f"state/{name}": s.detach().to("cpu").numpy() for (name, _, _), s in
                  zip(self.state_specs, self.member_state)}
        return arrays | {"first": np.array(self.first)}

    def restore(self, arrays, where):
        """Set the member state and ``first`` from :meth:`checkpoint`'s arrays (CaseError-style
        PluginError naming ``where`` when one is missing or of another shape)."""
        import torch

        for (name, _, dtype), held in zip(self.state_specs, self.member_state):
            key = f"state/{name}"
            if key not in arrays or tuple(arrays[key].shape) != tuple(held.shape):
                got = tuple(arrays[key].shape) if key in arrays else "nothing"
                raise PluginError(f"{where}: plugin '{self.name}' state '{name}': checkpoint holds {got}, "
                                  f"the plugin expects {tuple(held.shape)}")
            held.copy_(torch.from_numpy(arrays[key]).to(dtype))
        self.first = bool(arrays.get("first", self.first))

    def zero_rows(self, rows):
        """Zero the member state of hook rows ``rows`` (boolean numpy, quarantined members)."""
        import torch

        if self.member_state and rows.any():
            index = torch.from_numpy(np.flatnonzero(rows)).to(self.device)
            for held in self.member_state:
                held[index] = 0


def field_channels(sim, field):
    """Channels of ``field`` in a module's input or output: its layers, or 1."""
    shape = sim.field_shape(field)
    return shape[0] if len(shape) > len(sim.grid.shape) else 1


def plugin_hooks(sim):
    """The hooks of the case's ``[[plugins]]`` entries, in order."""
    return [ArtifactHook(entry, i, sim) for i, entry in enumerate(sim.case.data.get("plugins", []))]
