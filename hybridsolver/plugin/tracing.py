"""Tracing a module TorchScript cannot script (``export(..., example=...)``).

A published model's ``forward`` often takes the input tensor alone and uses Python that
``torch.jit.script`` refuses.  :func:`trace_for_export` traces it with ``torch.jit.trace``
on an example input, checks the traced module against the eager one, and wraps it in the
host's calling convention ``forward(x, noise, options)`` (:class:`TracedPlugin`, which
passes the noise list on for a stochastic manifest).
"""
from typing import Dict, List

import torch

from .manifest import PluginError


class TracedPlugin(torch.nn.Module):
    """``forward(x, noise, options) -> traced(x)``: a traced deterministic module."""

    def __init__(self, traced):
        super().__init__()
        self.traced = traced

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.traced(x)


class TracedStochasticPlugin(torch.nn.Module):
    """``forward(x, noise, options) -> traced(x, noise)``: a traced module that takes the
    noise list (one tensor per entry of the manifest's ``noise``, in its order)."""

    def __init__(self, traced):
        super().__init__()
        self.traced = traced

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        return self.traced(x, noise)


def _call(module, example):
    return module(*example) if isinstance(example, tuple) else module(example)


def _doubled(example):
    """A second input: every tensor of ``example`` with its negation appended along the batch
    (first) axis, on which a trace that baked in the batch size, or one branch of a
    data-dependent ``if``, differs from the eager module."""
    def double(t):
        return torch.cat([t, -t]) if isinstance(t, torch.Tensor) else [double(v) for v in t]
    return tuple(double(t) for t in example) if isinstance(example, tuple) else double(example)


def trace_for_export(module, example, manifest, where):
    """The ``forward(x, noise, options)`` module exported for ``module``, whose forward takes
    ``x`` (``example`` a tensor ``(M, C, ...)`` as the host passes it), or ``(x, noise)`` for
    a stochastic manifest (``example`` a tuple ``(x, [noise tensors])``).

    Traced with ``torch.jit.trace`` and checked against the eager module on ``example``
    and on a batch of twice its size, the example and its negation (to the manifest
    dtype's tolerance); a stateful
    manifest cannot be traced.  :class:`PluginError` naming ``where`` otherwise."""
    if manifest.get("state"):
        raise PluginError(f"{where}: example= traces a stateless module; a stateful one (manifest 'state') must "
                          "script (torch.jit.script)")
    stochastic = manifest["stochastic"]
    if stochastic != isinstance(example, tuple):
        wanted = "a tuple (x, [noise tensors])" if stochastic else "the input tensor x"
        raise PluginError(f"{where}: example should be {wanted} (manifest 'stochastic' is {stochastic})")
    module = module.eval()
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module, example, check_trace=False, strict=False)
    except Exception as exc:  # torch raises many kinds from the traced Python
        raise PluginError(f"{where}: torch.jit.trace failed on the example ({str(exc).splitlines()[0]})") from None
    tolerance = {"float64": 1e-10, "float32": 1e-5}[manifest["dtype"]]
    for label, inputs in (("the example", example), ("a batch of twice the example's size", _doubled(example))):
        with torch.no_grad():
            eager, got = _call(module, inputs), _call(traced, inputs)
        if not (isinstance(got, torch.Tensor) and got.shape == eager.shape
                and torch.allclose(got, eager, rtol=tolerance, atol=tolerance * eager.abs().max().item())):
            raise PluginError(f"{where}: the traced module differs from the eager one on {label} (a "
                              "data-dependent branch or a shape baked in by the trace): it cannot be exported "
                              "by tracing")
    return (TracedStochasticPlugin if stochastic else TracedPlugin)(traced)
