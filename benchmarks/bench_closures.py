"""Where a closure call's time goes, and closures against pyqg with its own parameterizations.

    python benchmarks/bench_closures.py [--json results.json] [--repeats 7]

All at 64^2, every step, one process, after warm-up; times are minima over ``--repeats``
repetitions taken in turns (noise only ever adds time).

1. ``qg2layer`` on cases/qg_eddy.toml with each of pyqg's three parameterizations as our
   artifacts (``qg_smagorinsky``, ``qg_zanna_bolton2020``, ``qg_backscatter_eddy``), 1 and 16
   members: our ms/step against pyqg 0.7.2's ``QGModel._step_forward`` with its own
   parameterization (16 members: against 16 pyqg steps), and the plugin-free step.
2. ``navier_stokes2d`` on cases/kolmogorov64_smagorinsky.toml (cn_rk4, 4 explicit stages
   per step, so 4 closure calls per step) with ``smagorinsky``, ``leith`` and
   ``backscatter``, 1, 8 and 16 members: ms/step against the plugin-free step.
3. For each closure call: the whole hook call (gather, module, scatter), the module alone
   on the same input tensor, and the FFTW time of the transforms the call does (the
   host's inverse transforms of the inputs and forward transforms of the outputs, plus,
   for ``backscatter``, two transforms of its noise that the module does itself in torch),
   timed through the same plans on the same buffers.  ``ratio`` = call / FFTW.
"""
import argparse
import os

import numpy as np
import pyqg
import torch

from hybridsolver import Simulation, fft
from timing import seconds, write_json

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases")
QG = {"qg_smagorinsky": pyqg.parameterizations.Smagorinsky,
      "qg_zanna_bolton2020": pyqg.parameterizations.ZannaBolton2020,
      "qg_backscatter_eddy": pyqg.parameterizations.BackscatterBiharmonic}
NS = ("smagorinsky", "leith", "backscatter")
MODULE_TRANSFORMS = {"backscatter": 2}  # per member: the noise's forward and inverse transform


def simulation(case, members, plugin=None):
    overrides = {"ensemble.members": members, "plugins": [{"path": plugin, "every": 1}] if plugin else []}
    sim = Simulation.from_case(os.path.join(CASES, case), overrides)
    if sim.equation.name == "qg2layer":
        q = sim.fields()["q"]
        sim.set_initial({"q": q + 1e-6 * np.random.default_rng(0).standard_normal(q.shape)})
    sim.advance(3)  # JIT loading, FFT planning and the dry run stay out of the timings
    return sim


def call_parts(sim, name):
    """Functions timing one closure call of ``sim``'s hook, its module alone and the FFTW
    transforms it does, and the number of those transforms per member."""
    hook, state = sim.hooks[0], sim.state
    hook(sim, state)  # fills the buffers
    x = hook.to_tensor(hook._inputs(sim, state, state))
    options = hook.sampler | hook.lengths | {"dt": float(sim.dt), "time": 0.0, "every": 1.0, "first": 0.0}
    noise = hook._noise(sim, x.shape[0], sim.step, 0)
    members = state.shape[0]
    outputs = hook._output_shape(sim, members)[1]
    plans = hook.physical._bound_plans
    inverse = plans[False, (members, x.shape[1]) + sim.grid.spectral_shape]
    forward = plans[True, (members, outputs) + sim.grid.shape]
    extra = MODULE_TRANSFORMS.get(name, 0) * members
    extra_slabs = fft.empty((max(extra, 1),) + sim.grid.spectral_shape, np.complex128)
    extra_real = fft.empty((max(extra, 1),) + sim.grid.shape, np.float64)
    extra_real[...] = 1.0
    transforms = sim.equation.transforms
    extra_pair = (transforms.bind(True, extra_real, extra_slabs), transforms.bind(False, extra_slabs, extra_real))

    def fftw():
        inverse()
        forward()
        if extra:
            extra_pair[0]()
            extra_pair[1]()

    def module():
        with torch.inference_mode():
            hook.module(x, noise, options)

    return (lambda: hook(sim, state)), module, fftw, x.shape[1] + outputs + MODULE_TRANSFORMS.get(name, 0)


def minima(functions, repeats, calls):
    """Minimum ms per call of each function over ``repeats`` turns of ``calls`` calls."""
    best = [np.inf] * len(functions)
    for _ in range(repeats):
        for i, fn in enumerate(functions):
            best[i] = min(best[i], 1e3 * seconds(fn, calls))
    return best


def qg_rows(repeats):
    rows = {}
    for members, steps in ((1, 100), (16, 10)):
        plain = simulation("qg_eddy.toml", members)
        for name, parameterization in QG.items():
            sim = simulation("qg_eddy.toml", members, name)
            model = pyqg.QGModel(nx=64, dt=3600.0, log_level=0, parameterization=parameterization())
            model.q = sim.fields()["q"][0]
            for _ in range(3):
                model._step_forward()
            call, module, fftw, slabs = call_parts(sim, name)
            ours, theirs, free, t_call, t_module, t_fftw = minima(
                [lambda sim=sim: sim.advance(1), model._step_forward, lambda plain=plain: plain.advance(1), call,
                 module, fftw],
                repeats, steps)
            rows[f"{name}_m{members}"] = {
                "ms_per_step": ours, "ms_per_member_step": ours / members, "pyqg_ms_per_step": theirs,
                "speedup": theirs / (ours / members), "plugin_free_ms_per_step": free, "call_ms": t_call,
                "module_ms": t_module, "fftw_ms": t_fftw, "transforms_per_member": slabs,
                "glue_ms": t_call - t_module - t_fftw, "ratio_to_fftw": t_call / t_fftw}
    return rows


def ns_rows(repeats):
    rows = {}
    for members, steps in ((1, 40), (8, 10), (16, 5)):
        plain = simulation("kolmogorov64_smagorinsky.toml", members)
        for name in NS:
            sim = simulation("kolmogorov64_smagorinsky.toml", members, name)
            call, module, fftw, slabs = call_parts(sim, name)
            ours, free, t_call, t_module, t_fftw = minima(
                [lambda sim=sim: sim.advance(1), lambda plain=plain: plain.advance(1), call, module, fftw], repeats,
                steps)
            rows[f"{name}_m{members}"] = {
                "ms_per_step": ours, "plugin_free_ms_per_step": free, "slowdown": ours / free, "call_ms": t_call,
                "module_ms": t_module, "fftw_ms": t_fftw, "transforms_per_member": slabs,
                "glue_ms": t_call - t_module - t_fftw, "ratio_to_fftw": t_call / t_fftw}
    return rows


def report(key, r):
    head = f"{key}: {r['ms_per_step']:.3f} ms/step"
    if "pyqg_ms_per_step" in r:
        head += (f" ({r['ms_per_member_step']:.3f} per member) vs pyqg {r['pyqg_ms_per_step']:.3f}: "
                 f"{r['speedup']:.2f}x; plugin-free {r['plugin_free_ms_per_step']:.3f}")
    else:
        head += f", plugin-free {r['plugin_free_ms_per_step']:.3f}: {r['slowdown']:.2f}x"
    print(f"{head}\n    call {r['call_ms']:.3f} ms = module {r['module_ms']:.3f} + FFTW {r['fftw_ms']:.3f} "
          f"({r['transforms_per_member']} transforms/member) + glue {r['glue_ms']:.3f}: "
          f"{r['ratio_to_fftw']:.2f}x its FFTW time")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    results = {"torch_threads": torch.get_num_threads()}
    results["qg2layer"] = qg_rows(args.repeats)
    results["navier_stokes2d"] = ns_rows(args.repeats)
    print(f"torch threads: {results['torch_threads']}")
    for family in ("qg2layer", "navier_stokes2d"):
        for key, r in results[family].items():
            report(key, r)
    write_json(results, args.json)


if __name__ == "__main__":
    main()
