"""TorchScript plugin artifacts: manifest, export, loading, contract checks, batched inference.

An artifact is one TorchScript archive with an embedded JSON manifest
(``torch.jit.save(module, path, _extra_files={"hybridsolver.json": manifest})``,
DESIGN.md section 6).  The module's ``forward`` takes

    x:       Tensor (B, C_in, ny, nx) real (physical inputs) or
             (B, C_in, ny, nx//2+1) complex (spectral inputs, unnormalised rfft2)
    noise:   List[Tensor], one (B, *shape) standard-normal tensor per manifest
             ``noise`` entry, drawn by the host from each member's stream
    options: Dict[str, float], the sampler settings plus ``dt``, ``time``, ``every``

and returns ``(B, C_out, ny, nx)`` (physical outputs) or ``(B, C_out, ny, nx//2+1)``
complex (spectral).  Channels are the manifest's fields in order, a layered field
(``qg2layer``'s ``q``) taking one channel per layer.  ``B`` is at most ``max_batch``; rows are ensemble members.
What the output means depends on the callsite: a tendency (``tendency``), the state
``every`` steps later (``replace``) or the corrected state (``post_step``).

The manifest's ``sha256`` covers the archive's code, constants and weights: every
entry but the manifest itself and torch's serialization id, which hashes the whole
file (:func:`content_sha256`).  Files are refused before anything is unpickled
unless they are zip archives holding TorchScript code.
"""
import contextlib
import hashlib
import importlib.metadata
import io
import json
import math
import os
import warnings
import zipfile
import zlib

import numpy as np

from . import rng
from .case import CaseError
from .hooks import CALLSITES, Hook, HookStats

MANIFEST = "hybridsolver.json"
KINDS = ("closure", "refiner", "emulator")
SPACES = ("physical", "spectral")
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda")
ENTRY_POINT_GROUP = "hybridsolver.plugins"
RESERVED_OPTIONS = ("dt", "time", "every")


class PluginError(CaseError):
    """A bad artifact or a mismatch between an artifact and a case (exit code 2)."""


# ---- manifest ---------------------------------------------------------------------

def _require(manifest, key, kind, where):
    if key not in manifest:
        raise PluginError(f"{where}: manifest has no '{key}'")
    value = manifest[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise PluginError(f"{where}: manifest '{key}' should be {kind.__name__}, got {value!r}")
    return value


def _check_choice(value, choices, key, where):
    if value not in choices:
        raise PluginError(f"{where}: manifest '{key}' is {value!r}, expected one of {', '.join(choices)}")


def validate_manifest(manifest, where="manifest", with_sha=True):
    """Check a manifest dict's keys and types; raise :class:`PluginError` naming the key."""
    if not isinstance(manifest, dict):
        raise PluginError(f"{where}: manifest is not a JSON object")
    for key in ("name", "version", "equation"):
        _require(manifest, key, str, where)
    _check_choice(_require(manifest, "kind", str, where), KINDS, "kind", where)
    _check_choice(_require(manifest, "callsite", str, where), CALLSITES, "callsite", where)
    grid = _require(manifest, "grid", dict, where)
    if not (isinstance(grid.get("shape"), list) and isinstance(grid.get("length"), list)
            and len(grid["shape"]) == len(grid["length"])):
        raise PluginError(f"{where}: manifest 'grid' needs 'shape' and 'length' lists of one length, got {grid!r}")
    for key in ("inputs", "outputs"):
        entries = _require(manifest, key, list, where)
        if not entries:
            raise PluginError(f"{where}: manifest '{key}' is empty")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
                raise PluginError(f"{where}: manifest '{key}' entries need a 'field' name, got {entry!r}")
            _check_choice(entry.get("space"), SPACES, f"{key}.space", where)
            _check_choice(entry.get("at", "current"), ("current", "previous"), f"{key}.at", where)
        if len({e["space"] for e in entries}) != 1:
            raise PluginError(f"{where}: manifest '{key}' mixes physical and spectral space")
    _check_choice(_require(manifest, "dtype", str, where), DTYPES, "dtype", where)
    for device in _require(manifest, "devices", list, where):
        _check_choice(device, DEVICES, "devices", where)
    every = _require(manifest, "every", int, where)
    if every < 1:
        raise PluginError(f"{where}: manifest 'every' should be >= 1, got {every}")
    stochastic = _require(manifest, "stochastic", bool, where)
    noise = _require(manifest, "noise", list, where)
    sampler = _require(manifest, "sampler", dict, where)
    for entry in noise:
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("shape"), list)
                and all(isinstance(n, int) and n > 0 or n in sampler for n in entry["shape"])):
            raise PluginError(f"{where}: manifest 'noise' entries need a 'name' and a 'shape' of positive ints "
                              f"or sampler keys, got {entry!r}")
    if stochastic != bool(noise):
        raise PluginError(f"{where}: manifest 'stochastic' is {stochastic} but it lists {len(noise)} noise tensors")
    for key, value in sampler.items():
        if key in RESERVED_OPTIONS or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise PluginError(f"{where}: manifest sampler '{key}' should be a number and not one of "
                              f"{RESERVED_OPTIONS}, got {value!r}")
    parameters = manifest.get("equation_parameters", {})
    if not isinstance(parameters, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in parameters.values()):
        raise PluginError(f"{where}: manifest 'equation_parameters' should map [equation] keys to numbers, "
                          f"got {parameters!r}")
    _require(manifest, "provenance", dict, where)
    if with_sha:
        _require(manifest, "sha256", str, where)
    return manifest


# ---- archives ---------------------------------------------------------------------

def _entry_name(info):
    """Archive entry name without torch's top folder (which follows the file name)."""
    return info.filename.split("/", 1)[-1]


def content_sha256(archive):
    """sha256 over the entries of a zip archive (bytes or path), manifest and torch's
    serialization id (a hash of all entries, manifest included) excluded.

    Entries are taken in name order, each as its name (without the top folder), a
    NUL byte and its uncompressed content.
    """
    with zipfile.ZipFile(io.BytesIO(archive) if isinstance(archive, bytes) else archive) as zf:
        return _digest(zf)


def _digest(zf):
    """:func:`content_sha256` of an open ``zipfile.ZipFile``."""
    digest = hashlib.sha256()
    for info in sorted(zf.infolist(), key=_entry_name):
        name = _entry_name(info)
        if name in (f"extra/{MANIFEST}", ".data/serialization_id"):
            continue
        digest.update(name.encode() + b"\0")
        digest.update(zf.read(info))
    return digest.hexdigest()


def read_artifact(path):
    """Check that ``path`` is a TorchScript archive and return its manifest (dict).

    Refuses, with :class:`PluginError`, pickles, ``torch.save`` archives, truncated or
    corrupt files, missing or malformed manifests and sha256 mismatches.  Nothing is
    unpickled here.
    """
    if not os.path.isfile(path):
        raise PluginError(f"{path}: no such file")
    with open(path, "rb") as f:
        head = f.read(2)
    if head[:1] == b"\x80" and head[1:2] and head[1] <= 5:
        raise PluginError(f"{path}: a pickle file, not a TorchScript archive (hybridsolver never unpickles)")
    if not zipfile.is_zipfile(path):
        raise PluginError(f"{path}: not a TorchScript archive (truncated, or not a zip file)")
    try:
        with zipfile.ZipFile(path) as zf:
            names = {_entry_name(i) for i in zf.infolist()}
            if not any(n.startswith("code/") for n in names):
                raise PluginError(f"{path}: a zip archive without TorchScript code (a torch.save pickle?); "
                                  "hybridsolver loads only torch.jit.save archives")
            if f"extra/{MANIFEST}" not in names:
                raise PluginError(f"{path}: no {MANIFEST} manifest (export it with hybridsolver.plugin.export)")
            top = zf.infolist()[0].filename.split("/", 1)[0]
            text = zf.read(f"{top}/extra/{MANIFEST}")
            sha = _digest(zf)
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError) as exc:
        raise PluginError(f"{path}: corrupt TorchScript archive ({exc})") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PluginError(f"{path}: {MANIFEST} is not valid JSON ({exc})") from None
    validate_manifest(manifest, path)
    if manifest["sha256"] != sha:
        raise PluginError(f"{path}: sha256 mismatch: manifest says {manifest['sha256'][:16]}..., "
                          f"archive content is {sha[:16]}...")
    return manifest


@contextlib.contextmanager
def _torchscript():
    """Silence torch's deprecation warnings for TorchScript, the artifact format of DESIGN.md section 6."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*torch.jit")
        yield


def load_module(path):
    """The TorchScript module of a checked artifact, on the CPU, in eval mode."""
    import torch

    try:
        with _torchscript():
            module = torch.jit.load(path, map_location="cpu")
    except RuntimeError as exc:
        raise PluginError(f"{path}: TorchScript could not load it ({str(exc).splitlines()[0]})") from None
    return module.eval()


def export(module, manifest, path):
    """Save ``module`` (scripted if needed) with ``manifest`` as an artifact at ``path``.

    Fills in ``sha256``, validates the manifest, writes the file atomically and loads
    it back through :func:`read_artifact` and :func:`load_module`.  Returns the manifest
    as written.
    """
    import torch

    manifest = {k: v for k, v in manifest.items() if k != "sha256"}
    validate_manifest(manifest, f"export {path}", with_sha=False)
    with _torchscript():
        if not isinstance(module, torch.jit.ScriptModule):
            module = torch.jit.script(module)
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={MANIFEST: json.dumps(manifest)})
        manifest["sha256"] = content_sha256(buffer.getvalue())
        buffer = io.BytesIO()
        torch.jit.save(module, buffer, _extra_files={MANIFEST: json.dumps(manifest, indent=1)})
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(buffer.getvalue())
    os.replace(tmp, path)
    written = read_artifact(path)
    load_module(path)
    return written


def registered():
    """{name: entry point} of the ``hybridsolver.plugins`` entry-point group."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def resolve(path_or_name, case_dir=None):
    """The file of a plugin given as a path, a registered name, or a path relative to the
    case file's folder (tried in that order)."""
    if os.path.isfile(path_or_name):
        return path_or_name
    entry = registered().get(path_or_name)
    if entry is not None:
        target = entry.load()
        return os.fspath(target() if callable(target) else target)
    if case_dir and os.path.isfile(os.path.join(case_dir, path_or_name)):
        return os.path.join(case_dir, path_or_name)
    known = ", ".join(sorted(registered())) or "none"
    raise PluginError(f"{path_or_name}: no such file or registered plugin (registered: {known})")


# ---- contract check and the hook ---------------------------------------------------

def check_contract(manifest, sim, where):
    """Check an artifact's manifest against a simulation's case (before step 0)."""
    eq, grid = sim.equation, sim.grid
    if manifest["equation"] != eq.name:
        raise PluginError(f"{where}: artifact equation '{manifest['equation']}', case equation.name '{eq.name}'")
    shape = list(manifest["grid"]["shape"])
    if shape != list(grid.shape):
        raise PluginError(f"{where}: artifact grid shape {shape}, case grid.shape {list(grid.shape)}")
    length = manifest["grid"]["length"]
    if not all(math.isclose(a, b, rel_tol=1e-9) for a, b in zip(length, grid.length)):
        raise PluginError(f"{where}: artifact grid length {length}, case grid.length {list(grid.length)}")
    for key, known in (("inputs", eq.fields + tuple(eq.derived_fields)), ("outputs", eq.fields)):
        for entry in manifest[key]:
            if entry["field"] not in known:
                raise PluginError(f"{where}: artifact {key[:-1]} field '{entry['field']}' is unknown to "
                                  f"{eq.name} (possible {key}: {', '.join(known)})")
            if entry.get("at") == "previous" and manifest["callsite"] != "post_step":
                raise PluginError(f"{where}: artifact input '{entry['field']}' at 'previous' needs callsite "
                                  f"post_step, artifact callsite is '{manifest['callsite']}'")
    case_equation = sim.case.data["equation"]
    for key, value in manifest.get("equation_parameters", {}).items():
        if key not in case_equation or not math.isclose(value, case_equation[key], rel_tol=1e-9):
            raise PluginError(f"{where}: artifact made for equation.{key} = {value}, case equation.{key} = "
                              f"{case_equation.get(key, 'unset')}")
    if eq.state_dtype != np.complex128:
        for key in ("inputs", "outputs"):
            if any(e["space"] == "spectral" for e in manifest[key]):
                raise PluginError(f"{where}: artifact {key} are spectral, {eq.name} "
                                  f"({sim.case.data['equation'].get('discretization', 'finite differences')}) has a "
                                  "physical state: its plugins read and return physical fields")
    if [e["field"] for e in manifest["outputs"]] != list(eq.fields):
        raise PluginError(f"{where}: artifact outputs {[e['field'] for e in manifest['outputs']]}, "
                          f"{eq.name} state fields {list(eq.fields)}")


def pick_device(requested, manifest, where):
    """``auto`` -> cuda when torch sees a GPU and the artifact supports it, else cpu."""
    import torch

    have_cuda = torch.cuda.is_available()
    device = requested
    if requested == "auto":
        device = "cuda" if have_cuda and "cuda" in manifest["devices"] else "cpu"
    if device not in manifest["devices"]:
        raise PluginError(f"{where}.device: case asks for '{device}', artifact supports {manifest['devices']}")
    if device == "cuda" and not have_cuda:
        raise PluginError(f"{where}.device: case asks for 'cuda', torch {torch.__version__} sees no CUDA device")
    return device


class ArtifactHook(Hook):
    """A TorchScript artifact as a hook: one batched inference call for its members.

    ``entry`` is the case's ``[[plugins]]`` table (validated), ``index`` its position.
    Inputs of all the hook's rows are gathered into one array (physical fields through
    the host's FFT plans, or the spectral state), run in chunks of at most
    ``max_batch`` rows under ``torch.inference_mode()`` and scattered back in the
    state's layout (spectral ``(rows, ny, nx//2+1)``, or physical for finite-difference
    equations).
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
            super().__init__(every=entry.get("every", manifest["every"]), interval=entry.get("interval"), offset=entry.get("offset", 0),
                             members=entry.get("members"), hold_noise=entry.get("hold_noise", 0.0),
                             name=entry.get("name", manifest["name"]))
        except ValueError as exc:
            raise PluginError(f"{where}: {exc}") from None
        unknown = sorted(set(entry.get("sampler", {})) - set(manifest["sampler"]))
        if unknown:
            raise PluginError(f"{self.where}.sampler.{unknown[0]}: not a sampler setting of the artifact "
                              f"(it has: {', '.join(manifest['sampler']) or 'none'})")
        self.sampler = {k: float(v) for k, v in (manifest["sampler"] | entry.get("sampler", {})).items()}
        self.requested_device = entry.get("device", "auto")
        self.max_batch = entry.get("max_batch")
        self.module = None

    # -- setup

    def start(self, sim):
        """Load the module, choose the device, and make one dry-run call (before step 0)."""
        import torch

        where = f"{self.where} ({self.path})"
        self.device = torch.device(pick_device(self.requested_device, self.manifest, self.where))
        self.module = load_module(self.path).to(self.device)
        self.dtype = getattr(torch, self.manifest["dtype"])
        state = sim.state[self.rows]
        self.max_batch = min(self.max_batch or state.shape[0], state.shape[0])
        self.noise_shapes = [tuple(int(self.sampler[n]) if isinstance(n, str) else n for n in e["shape"])
                             for e in self.manifest["noise"]]
        self._pinned = {}
        first = state[:self.max_batch]
        try:
            out = self._infer(self._inputs(sim, first, first), sim.members[self.rows][:self.max_batch], sim.step, sim)
        except RuntimeError as exc:
            raise PluginError(f"{where}: dry run failed: {str(exc).strip().splitlines()[-1]}") from None
        expected = self._output_shape(sim, self.max_batch)
        if tuple(out.shape) != expected:
            raise PluginError(f"{where}: dry run returned shape {tuple(out.shape)}, manifest and case expect "
                              f"{expected}")
        space = self.manifest["outputs"][0]["space"]
        if np.iscomplexobj(out) != (space == "spectral"):
            raise PluginError(f"{where}: dry run returned {out.dtype} values, manifest outputs are {space}")
        if not np.isfinite(out).all():
            raise PluginError(f"{where}: dry run returned non-finite values")
        self.stats = HookStats()  # the dry run is not counted

    def _output_shape(self, sim, rows):
        grid = sim.grid
        last = grid.shape if self.manifest["outputs"][0]["space"] == "physical" else grid.spectral_shape
        channels = sum(_layers(sim, e["field"]) for e in self.manifest["outputs"])
        return (rows, channels) + tuple(last)

    # -- one call

    def _inputs(self, sim, state, previous):
        """The module input, (rows, C_in, *grid) float or (rows, C_in, *spectral grid) complex
        (grid ``(ny, nx)`` or ``(n,)``); a layered field (``qg2layer``'s q) gives one channel
        per layer.  Inputs are state fields or the equation's ``derived_fields`` (e.g.
        ``qg2layer``'s psi, u, v).  Equations with a physical state (finite differences)
        hand their fields as they are."""
        eq = sim.equation
        names = [e["field"] for e in self.manifest["inputs"]]
        read = eq.to_fields if eq.state_dtype != np.complex128 else (
            lambda w: eq.spectral_fields(w) | eq.derived_spectra(w, names))
        sources = {"current": read(state)}
        if any(e.get("at") == "previous" for e in self.manifest["inputs"]):
            sources["previous"] = read(previous)
        arrays = [sources[e.get("at", "current")][e["field"]] for e in self.manifest["inputs"]]
        dims = len(sim.grid.shape)
        x = np.concatenate([a.reshape((a.shape[0], -1) + a.shape[a.ndim - dims:]) for a in arrays], axis=1)
        if self.manifest["inputs"][0]["space"] == "spectral" or eq.state_dtype != np.complex128:
            return x
        flat = eq.transforms.to_physical(x.reshape((-1,) + sim.grid.spectral_shape))
        return flat.reshape(x.shape[:2] + sim.grid.shape)

    def _to_device(self, array, slot):
        """A torch tensor of ``array`` on the device in the manifest dtype; counts bytes moved."""
        import torch

        tensor = torch.from_numpy(array)
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

    def _from_device(self, tensor):
        if self.device.type != "cpu":
            self.stats.bytes_from_device += tensor.numel() * tensor.element_size()
        out = tensor.detach().to("cpu")
        return out.numpy().astype(np.complex128 if out.is_complex() else np.float64, copy=False)

    def _infer(self, x, members, step, sim):
        """Run the module over ``x`` (rows: the ensemble ``members``) in chunks."""
        import torch

        options = self.sampler | {"dt": float(sim.dt), "time": float(step * sim.dt),
                                  "every": float(self.schedule.every or 0)}
        outputs = []
        with torch.inference_mode():
            for lo in range(0, x.shape[0], self.max_batch):
                hi = min(lo + self.max_batch, x.shape[0])
                noise = [self._to_device(rng.standard_normal(sim.seed, members[lo:hi],
                                                             f"plugin:{self.name}:{e['name']}", step, shape), i + 1)
                         for i, (e, shape) in enumerate(zip(self.manifest["noise"], self.noise_shapes))]
                out = self.module(self._to_device(np.ascontiguousarray(x[lo:hi]), 0), noise, options)
                outputs.append(self._from_device(out))
        return np.concatenate(outputs) if len(outputs) > 1 else outputs[0]

    def __call__(self, sim, state, previous=None):
        """The result for the hook's rows in the state's shape and dtype (spectral, or
        physical for finite-difference equations)."""
        out = self._infer(self._inputs(sim, state, previous), sim.members[self.rows], sim.step, sim)
        fields, channel = {}, 0
        for entry in self.manifest["outputs"]:
            layers = _layers(sim, entry["field"])
            part = out[:, channel:channel + layers]
            fields[entry["field"]] = part if layers > 1 else part[:, 0]
            channel += layers
        if self.manifest["outputs"][0]["space"] == "physical":
            return sim.equation.from_fields(fields)
        return sim.equation.from_spectral_fields(fields)


def _layers(sim, field):
    """Channels of ``field`` in a module's input or output: its layers, or 1."""
    shape = sim.field_shape(field)
    return shape[0] if len(shape) > len(sim.grid.shape) else 1


def plugin_hooks(sim):
    """The hooks of the case's ``[[plugins]]`` entries, in order."""
    return [ArtifactHook(entry, i, sim) for i, entry in enumerate(sim.case.data.get("plugins", []))]


def describe(path):
    """A readable multi-line description of an artifact (``hybridsolver plugins inspect``)."""
    manifest = read_artifact(path)
    lines = [f"{path}: {manifest['name']} {manifest['version']} ({manifest['kind']}, callsite "
             f"{manifest['callsite']}), sha256 verified", json.dumps(manifest, indent=2)]
    return "\n".join(lines)

