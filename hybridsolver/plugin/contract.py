"""Checks of an artifact against a case and of what its module returns (before step 0).

The manifest is checked against the case (:func:`check_contract`), the device chosen
(:func:`pick_device`), the module's ``forward`` against the manifest's ``state``
(:func:`check_signature`) and the dry run's state against the manifest
(:func:`check_returned_state`); each mismatch is one :class:`PluginError` naming both
sides.
"""
import math

import numpy as np

from .manifest import PluginError
from .operators import check_operators, is_operator_output


def check_contract(manifest, sim, where):
    """Check an artifact's manifest against a simulation's case (before step 0)."""
    eq, grid = sim.equation, sim.grid
    if manifest["equation"] != eq.name:
        raise PluginError(f"{where}: artifact equation '{manifest['equation']}', case equation.name '{eq.name}'")
    if manifest["grid"]["shape"] != "any":
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
    check_operators(manifest, eq, where)
    outputs = [e["field"] for e in manifest["outputs"]]
    if any(is_operator_output(e) for e in manifest["outputs"]):
        outputs = list(dict.fromkeys(outputs))  # entries of one field add up
    if outputs != list(eq.fields):
        raise PluginError(f"{where}: artifact outputs {outputs}, {eq.name} state fields {list(eq.fields)}")


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


def check_signature(module, manifest, where):
    """A stateful manifest (``state`` listed) needs ``forward(x, noise, options, state)``
    returning ``(out, state)``; a stateless one ``forward(x, noise, options)``."""
    arguments = [a.name for a in module.forward.schema.arguments][1:]
    names = [e["name"] for e in manifest.get("state", [])]
    if names and len(arguments) != 4:
        raise PluginError(f"{where}: manifest 'state' lists {names} but the module's forward takes "
                          f"({', '.join(arguments)}); a stateful forward takes (x, noise, options, state) and "
                          "returns (out, state)")
    if not names and len(arguments) != 3:
        raise PluginError(f"{where}: the module's forward takes ({', '.join(arguments)}) but the manifest lists no "
                          "'state'; a stateless forward takes (x, noise, options)")


def check_returned_state(state, specs, rows, where):
    """The state list a stateful module returned in its dry run: one tensor per manifest
    entry ``specs`` [(name, shape per member, torch dtype)], of shape ``(rows, *shape)``,
    that dtype, and finite."""
    import torch

    if not isinstance(state, list) or len(state) != len(specs):
        raise PluginError(f"{where}: dry run returned {len(state) if isinstance(state, list) else type(state)} "
                          f"state tensors, manifest 'state' lists {len(specs)}")
    for tensor, (name, shape, dtype) in zip(state, specs):
        if tuple(tensor.shape) != (rows,) + shape:
            raise PluginError(f"{where}: dry run returned state '{name}' of shape {tuple(tensor.shape)}, manifest "
                              f"expects {(rows,) + shape}")
        if tensor.dtype != dtype:
            raise PluginError(f"{where}: dry run returned state '{name}' of dtype {str(tensor.dtype)[6:]}, manifest "
                              f"expects {str(dtype)[6:]}")
        if not bool(torch.isfinite(tensor).all()):
            raise PluginError(f"{where}: dry run returned state '{name}' with non-finite values")


def check_output(out, expected, space, where):
    """The dry run's output (numpy): shape ``expected``, complex iff ``space`` is spectral, finite."""
    if tuple(out.shape) != expected:
        raise PluginError(f"{where}: dry run returned shape {tuple(out.shape)}, manifest and case expect {expected}")
    if np.iscomplexobj(out) != (space == "spectral"):
        raise PluginError(f"{where}: dry run returned {out.dtype} values, manifest outputs are {space}")
    if not np.isfinite(out).all():
        raise PluginError(f"{where}: dry run returned non-finite values")
