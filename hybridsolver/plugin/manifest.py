"""The manifest of a plugin artifact: its keys, their types, and the checks on them.

A manifest is the JSON object embedded in an artifact (DESIGN.md section 6).  Keys (all
required unless marked optional):

    name, version, equation (str); kind (closure | refiner | emulator); callsite
    (tendency | replace | post_step | observe); grid {shape, length} (lists of one
    length, or both ``"any"`` for a resolution-agnostic module); inputs, outputs (lists of
    {field, space (physical | spectral), at (current | previous, optional), derivative
    (optional, physical space), form (optional, outputs)}: see :mod:`.operators`); dtype
    (float64 | float32); devices (list of cpu | cuda);
    every (int >= 1); stochastic (bool, true iff noise is not empty); noise (list of
    {name, shape}, ``shape`` of ints >= 1, sampler keys or the grid sizes ``ny``, ``nx``);
    sampler {key: number}; provenance (object); sha256 (str);
    optional: description (str), equation_parameters {[equation] key: number}, state
    (list of {name, shape, dtype}: what a stateful module carries per member between
    calls, ``shape`` of ints >= 1 or sampler keys, ``dtype`` float32 | float64).

Any other top-level key is refused (a misspelt ``state`` would otherwise be ignored).
"""
from ..case import CaseError
from ..hooks import CALLSITES

MANIFEST = "hybridsolver.json"
KINDS = ("closure", "refiner", "emulator")
SPACES = ("physical", "spectral")
DTYPES = ("float64", "float32")
DEVICES = ("cpu", "cuda")
FORMS = ("stress",)  # output forms the host finishes (see operators)
# options the host sets on every call (a sampler key may not take one of these names)
RESERVED_OPTIONS = ("dt", "time", "every", "first", "length_y", "length_x")
# names in a noise or state shape that stand for the case grid's sizes (resolution-agnostic modules)
GRID_SIZES = ("ny", "nx")
KEYS = ("name", "version", "kind", "callsite", "equation", "grid", "inputs", "outputs", "dtype", "devices",
        "every", "stochastic", "noise", "sampler", "provenance", "sha256", "description", "equation_parameters",
        "state")


class PluginError(CaseError):
    """A bad artifact or a mismatch between an artifact and a case (exit code 2)."""


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


def _per_member_shape(entry, sampler):
    """True if ``entry['shape']`` is a list of positive ints, sampler keys or grid sizes."""
    shape = entry.get("shape") if isinstance(entry, dict) else None
    return isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n > 0
                                           or isinstance(n, str) and (n in sampler or n in GRID_SIZES) for n in shape)


def validate_manifest(manifest, where="manifest", with_sha=True):
    """Check a manifest dict's keys and types; raise :class:`PluginError` naming the key."""
    if not isinstance(manifest, dict):
        raise PluginError(f"{where}: manifest is not a JSON object")
    unknown = sorted(set(manifest) - set(KEYS))
    if unknown:
        raise PluginError(f"{where}: manifest key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                          f"unknown (known: {', '.join(KEYS)})")
    for key in ("name", "version", "equation"):
        _require(manifest, key, str, where)
    _check_choice(_require(manifest, "kind", str, where), KINDS, "kind", where)
    _check_choice(_require(manifest, "callsite", str, where), CALLSITES, "callsite", where)
    grid = _require(manifest, "grid", dict, where)
    if not (isinstance(grid.get("shape"), list) and isinstance(grid.get("length"), list)
            and len(grid["shape"]) == len(grid["length"]) or grid.get("shape") == grid.get("length") == "any"):
        raise PluginError(f"{where}: manifest 'grid' needs 'shape' and 'length' lists of one length (or both "
                          f"\"any\"), got {grid!r}")
    for key in ("inputs", "outputs"):
        entries = _require(manifest, key, list, where)
        if not entries:
            raise PluginError(f"{where}: manifest '{key}' is empty")
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("field"), str):
                raise PluginError(f"{where}: manifest '{key}' entries need a 'field' name, got {entry!r}")
            _check_choice(entry.get("space"), SPACES, f"{key}.space", where)
            _check_choice(entry.get("at", "current"), ("current", "previous"), f"{key}.at", where)
            _validate_operator(entry, key, where)
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
        if not (isinstance(entry.get("name") if isinstance(entry, dict) else None, str)
                and _per_member_shape(entry, sampler)):
            raise PluginError(f"{where}: manifest 'noise' entries need a 'name' and a 'shape' of positive ints "
                              f"or sampler keys, got {entry!r}")
    if stochastic != bool(noise):
        raise PluginError(f"{where}: manifest 'stochastic' is {stochastic} but it lists {len(noise)} noise tensors")
    for key, value in sampler.items():
        if key in RESERVED_OPTIONS + GRID_SIZES or not isinstance(value, (int, float)) or isinstance(value, bool):
            raise PluginError(f"{where}: manifest sampler '{key}' should be a number and not one of "
                              f"{RESERVED_OPTIONS + GRID_SIZES}, got {value!r}")
    _validate_state(manifest.get("state", []), sampler, where)
    parameters = manifest.get("equation_parameters", {})
    if not isinstance(parameters, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in parameters.values()):
        raise PluginError(f"{where}: manifest 'equation_parameters' should map [equation] keys to numbers, "
                          f"got {parameters!r}")
    _require(manifest, "provenance", dict, where)
    if with_sha:
        _require(manifest, "sha256", str, where)
    return manifest


def _validate_operator(entry, key, where):
    """An entry's optional ``derivative`` (a monomial of x/y letters, or {monomial: number})
    and, on outputs, ``form`` (``stress``); not both."""
    if "derivative" in entry:
        spec = entry["derivative"]
        terms = {spec: 1.0} if isinstance(spec, str) else spec
        if not (isinstance(terms, dict) and terms and all(
                isinstance(m, str) and m and set(m) <= {"x", "y"} and isinstance(c, (int, float))
                and not isinstance(c, bool) for m, c in terms.items())):
            raise PluginError(f"{where}: manifest {key} field '{entry['field']}': 'derivative' should be a monomial "
                              f"of x and y (\"xy\") or a dict of monomials and numbers, got {spec!r}")
    if "form" in entry:
        if key != "outputs":
            raise PluginError(f"{where}: manifest inputs field '{entry['field']}': 'form' is for outputs")
        _check_choice(entry["form"], FORMS, "outputs.form", where)
        if "derivative" in entry:
            raise PluginError(f"{where}: manifest outputs field '{entry['field']}' has both 'form' and 'derivative'")


def _validate_state(state, sampler, where):
    """Check the manifest's ``state`` list (entries ``{name, shape, dtype}``, names unique)."""
    if not isinstance(state, list):
        raise PluginError(f"{where}: manifest 'state' should be a list of {{name, shape, dtype}}, got {state!r}")
    names = set()
    for entry in state:
        name = entry.get("name") if isinstance(entry, dict) else None
        if not (isinstance(name, str) and name and _per_member_shape(entry, sampler)
                and set(entry) == {"name", "shape", "dtype"}):
            raise PluginError(f"{where}: manifest 'state' entries need exactly a 'name', a 'shape' of positive "
                              f"ints or sampler keys and a 'dtype', got {entry!r}")
        _check_choice(entry["dtype"], DTYPES, f"state.{name}.dtype", where)
        if name in names:
            raise PluginError(f"{where}: manifest 'state' names '{name}' twice")
        names.add(name)


def per_member_shape(entry, sampler, grid_shape):
    """A ``noise`` or ``state`` entry's shape per member, sampler keys replaced by their
    values and ``ny``, ``nx`` by the case grid's sizes ``grid_shape`` ((ny, nx) or (nx,))."""
    sizes = dict(zip(GRID_SIZES[-len(grid_shape):], grid_shape))
    return tuple(sizes[n] if n in GRID_SIZES else int(sampler[n]) if isinstance(n, str) else n
                 for n in entry["shape"])
