"""Where one closure call of the main job goes: the L-CDM sampler profiled part by part.

    python benchmarks/profile_lcdm.py [--json results.json] [--repeats 20] [--threads 2]
                                      [--plugin lcdm] [--ops 12] [--steps 250] [--rounds 3]

Builds ``cases/kolmogorov64_lcdm.toml`` (16 members) and times, for one closure call
as the host makes it (medians of ``--repeats`` calls, the parts called in turn, one
process, after warm-up):

- the host's side: the physical vorticity from the state (``inputs``), the members'
  noise from their streams (``noise``), and the output back into the state (``output``);
- the module, whole (``module``), and its parts called one by one on the same tensors:
  the encoder ``E_w`` (``encoder``), the score's condition branch (``condition``), one
  score evaluation (``score``, times N = 10 in a call) and the decoder ``D_H``
  (``decoder``); ``module - parts`` is the sampler's own glue (reshapes, the
  Euler-Maruyama updates);
- torch's profiler over one module call: the number of aten operations and the self
  CPU time of the ``--ops`` costliest kinds, so per-op overhead shows beside arithmetic;
- the closed loop as the main job runs it (the case's torch threads): ms per closure call
  with ``workers = 1`` (one 16-member call on ``--threads`` torch threads) and ``workers =
  2`` (two 8-member calls at once, one torch thread each), over ``--steps`` steps,
  alternated ``--rounds`` times, medians.
"""
import argparse
import os
import time

import numpy as np
import torch

from hybridsolver import Simulation
from hybridsolver.plugin import resolve
from hybridsolver_plugins.lcdm.evaluate import reduced_case
from hybridsolver_plugins.lcdm.registry import ARTIFACTS
from timing import write_json


def interleaved_medians(functions, repeats):
    """{name: median wall seconds} of ``functions`` ({name: callable}), called in turn
    ``repeats`` times after one warm-up call each (so a slow period of the machine
    slows every one alike)."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: float(np.median(t)) for name, t in times.items()}


def call_arguments(sim):
    """(x, noise, options) of the next closure call of ``sim``'s first hook, as the host
    passes them to the module (all members in one call, not the first call)."""
    hook = sim.hooks[0]
    x = hook.to_tensor(hook._inputs(sim, sim.state, None))
    noise = hook._noise(sim, x.shape[0], sim.step, 0)
    options = hook.sampler | hook.lengths | {"dt": float(sim.dt), "time": float(sim.time),
                                             "every": float(hook.schedule.every or 0), "first": 0.0}
    return x, noise, options


def closure_call_parts(sim, repeats):
    """{part: median seconds} of one closure call of ``sim``'s first hook (see the module docstring)."""
    hook, state, step = sim.hooks[0], sim.state, sim.step
    module = hook.module
    x, noise, options = call_arguments(sim)
    with torch.inference_mode():
        out = hook.from_tensor(module(x, noise, options))
    tau, std = torch.full((1,), 0.05), torch.full((1,), 0.3)
    with torch.inference_mode():
        latent_x = module.encoder(x / module.omega_scale)
        cond = module.score.condition(latent_x)
        z = noise[0].reshape(cond.shape[0], 1, cond.shape[2], cond.shape[3])
        parts = {
            "inputs": lambda: hook._inputs(sim, state, None),
            "noise": lambda: hook._noise(sim, x.shape[0], step, 0),
            "output": lambda: hook.to_state(sim, out),
            "module": lambda: module(x, noise, options),
            "encoder": lambda: module.encoder(x / module.omega_scale),
            "condition": lambda: module.score.condition(latent_x),
            "score": lambda: module.score(z, tau, std, cond),
            "decoder": lambda: module.decoder(z),
        }
        return interleaved_medians(parts, repeats)


def operator_profile(sim, top):
    """(number of aten operations in one module call, [(op, calls, self CPU ms)] of the ``top`` costliest)."""
    hook = sim.hooks[0]
    x, noise, options = call_arguments(sim)
    with torch.inference_mode():
        hook.module(x, noise, options)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            hook.module(x, noise, options)
    events = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    calls = sum(e.count for e in events)
    costliest = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
    return calls, [(e.key, e.count, e.self_cpu_time_total / 1e3) for e in costliest]


def closed_loop_call_seconds(plugin, steps, rounds):
    """{workers: median seconds per closure call} of the main job's 16 members advanced
    ``steps`` steps with ``workers`` = 1 and 2, alternated ``rounds`` times."""
    sims = {}
    for workers in (1, 2):
        case = reduced_case(16, os.path.join(ARTIFACTS, "initial_t30.npy"), plugin)
        case["plugins"][0]["workers"] = workers
        sims[workers] = Simulation.from_case(case)
        sims[workers].advance(5)  # JIT and the dry run
    times = {workers: [] for workers in sims}
    for _ in range(rounds):
        for workers, sim in sims.items():
            stats = sim.hooks[0].stats
            seconds, calls = stats.seconds, stats.calls
            sim.advance(steps)
            times[workers].append((stats.seconds - seconds) / (stats.calls - calls))
    return {workers: float(np.median(t)) for workers, t in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--plugin", default="lcdm", help="L-CDM artifact: registered name or path")
    parser.add_argument("--ops", type=int, default=12, help="operator kinds listed")
    parser.add_argument("--steps", type=int, default=250, help="closed-loop steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    case = reduced_case(16, os.path.join(ARTIFACTS, "initial_t30.npy"), resolve(args.plugin))
    sim = Simulation.from_case(case)
    sim.advance(5)  # JIT and the dry run
    parts = closure_call_parts(sim, args.repeats)
    steps = int(sim.hooks[0].sampler["steps"])
    named = parts["encoder"] + parts["condition"] + steps * parts["score"] + parts["decoder"]
    parts["glue"] = parts["module"] - named
    host = parts["inputs"] + parts["noise"] + parts["output"]
    print(f"one 16-member call: module {1e3 * parts['module']:.2f} ms, host side {1e3 * host:.2f} ms")
    for name in ("inputs", "noise", "output", "encoder", "condition", "score", "decoder", "glue"):
        times = f" x {steps} = {1e3 * steps * parts[name]:.2f} ms" if name == "score" else ""
        print(f"  {name:<10} {1e3 * parts[name]:8.3f} ms{times}")
    calls, costliest = operator_profile(sim, args.ops)
    print(f"aten operations in one module call: {calls}")
    for key, count, ms in costliest:
        print(f"  {key:<36} {count:6d} calls {ms:8.3f} ms self")
    per_call = closed_loop_call_seconds(resolve(args.plugin), args.steps, args.rounds)
    print(f"closed loop, ms per closure call: workers = 1 {1e3 * per_call[1]:.2f}, workers = 2 "
          f"{1e3 * per_call[2]:.2f} ({per_call[1] / per_call[2]:.2f}x)")
    write_json({"threads": args.threads, "plugin": args.plugin, "seconds": parts, "aten_calls": calls,
                "costliest": costliest, "closed_loop_seconds_per_call": per_call}, args.json)


if __name__ == "__main__":
    main()
