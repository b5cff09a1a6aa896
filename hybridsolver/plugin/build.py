"""A plugin's manifest from the case it will run in (:func:`build_manifest`).

The manifest's keys (:mod:`hybridsolver.plugin.manifest`) that the case already says —
equation, grid, the state's field names, the space, dtype, devices, the callsite of the
plugin's kind — are filled in; the caller gives the name, the kind and what the case
cannot know (noise, sampler options, provenance).
"""
from ..case import load_case
from .manifest import GRID_SIZES, PluginError, validate_manifest

CALLSITE_OF_KIND = {"closure": "tendency", "emulator": "replace", "refiner": "post_step"}


def _entries(fields, space):
    """Manifest input or output entries: a field name becomes ``{"field": name, "space": space}``;
    a dict (derivatives, layers, ``at``) is kept as given."""
    return [dict(f) if isinstance(f, dict) else {"field": f, "space": space} for f in fields]


def build_manifest(case, name, kind="closure", *, version="1.0", callsite=None, inputs=None, outputs=None,
                   space="physical", grid="case", dtype="float64", devices=("cpu", "cuda"), every=1, noise=(),
                   sampler=None, equation_parameters=(), description=None, provenance=None, state=None):
    """The manifest (every key but ``sha256``, which :func:`hybridsolver.plugin.export` adds)
    of a plugin for ``case`` (a case file path, a raw case dict or a loaded :class:`~hybridsolver.case.Case`).

    ``callsite`` defaults to the kind's (closure: ``tendency``, emulator: ``replace``,
    refiner: ``post_step``); ``inputs`` and ``outputs`` (field names or manifest entries)
    to the equation's state fields in ``space``; ``grid="case"`` records the case's grid
    shape and length, ``grid="any"`` makes a resolution-agnostic manifest.  ``noise``:
    names of noise tensors of one member's grid shape, or ``{name, shape}`` entries.
    ``equation_parameters``: ``[equation]`` keys whose case values the artifact records
    (a case with other values is then refused).  ``provenance`` defaults to the case's
    path.  The result is validated (:class:`~hybridsolver.plugin.manifest.PluginError`
    naming the key otherwise).
    """
    from ..equations import make_equation

    case = case if hasattr(case, "data") else load_case(case)
    d = case.data
    equation = make_equation(d, [0], d["ensemble"]["seed"])
    if kind not in CALLSITE_OF_KIND:
        raise PluginError(f"build_manifest {name}: kind {kind!r}, expected one of {', '.join(CALLSITE_OF_KIND)}")
    sizes = list(GRID_SIZES[-len(equation.grid.shape):])
    manifest = {
        "name": name, "version": version, "kind": kind, "callsite": callsite or CALLSITE_OF_KIND[kind],
        "equation": equation.name,
        "grid": {"shape": "any", "length": "any"} if grid == "any" else {
            "shape": list(equation.grid.shape), "length": list(equation.grid.length)},
        "inputs": _entries(equation.fields if inputs is None else inputs, space),
        "outputs": _entries(equation.fields if outputs is None else outputs, space),
        "dtype": dtype, "devices": list(devices), "every": every,
        "stochastic": bool(noise),
        "noise": [dict(n) if isinstance(n, dict) else {"name": n, "shape": sizes} for n in noise],
        "sampler": dict(sampler or {}),
        "provenance": dict(provenance or {"case": case.path or "a case dict"}),
    }
    if description is not None:
        manifest["description"] = description
    if equation_parameters:
        missing = [k for k in equation_parameters if k not in d["equation"]]
        if missing:
            raise PluginError(f"build_manifest {name}: equation_parameters: equation.{missing[0]} is not in the case")
        manifest["equation_parameters"] = {k: d["equation"][k] for k in equation_parameters}
    if state is not None:
        manifest["state"] = list(state)
    return validate_manifest(manifest, f"build_manifest {name}", with_sha=False)
