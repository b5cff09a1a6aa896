"""Cost of hooks and plugins, as ratios measured in one process.

    python benchmarks/bench_hooks.py [--json results.json] [--repeats 7] [--device cpu|cuda]

All on cases/kolmogorov64_smagorinsky.toml (64^2 Kolmogorov flow, cn_rk4, dt 2e-3).

1. Dispatch: a no-op ``observe`` hook called every step, 16 members: ms/step with the
   hook against without it (median of paired ratios, timed in turns); and the same
   hook's cost per step in microseconds on an 8^2 one-member grid, where a step is
   cheap enough for the difference to stand out of the machine's noise.
2. Batching: the small CNN closure (plugins/classic/closures.py, float32, untrained,
   exported to a temporary artifact) for 64 members, one plugin call with
   ``max_batch = 64`` (one module call) against ``max_batch = 1`` (64 module calls);
   also the module alone on the same tensors, without the host's gather and scatter.
   On CUDA also the bytes moved per call.
3. Overhead of the shipped Smagorinsky artifact, 8 members, called every k = 1 and
   k = 5 steps: ms/step, ms per plugin call, the plugin's share of the time and the
   slowdown against the same case without the plugin.

Times are minima over ``--repeats`` (noise only adds time); ratios are medians of
ratios of timings taken back to back, because this machine's speed drifts.
"""
import argparse
import os
import tempfile

import numpy as np
import torch

from hybridsolver import Simulation
from hybridsolver.hooks import Hook
from hybridsolver.plugin import export
from hybridsolver_plugins.classic.closures import SmallCNN
from hybridsolver_plugins.classic.export import manifest as classic_manifest
from hybridsolver_plugins.classic.registry import smagorinsky
from timing import seconds, write_json

CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "cases",
                    "kolmogorov64_smagorinsky.toml")


class NoOp(Hook):
    callsite = "observe"

    def __call__(self, sim, state, previous=None):
        return None


def simulation(members, plugins=None, hooks=(), **overrides):
    """The benchmark case with ``members``; ``plugins`` replaces the case's [[plugins]]."""
    overrides = {"ensemble.members": members} | overrides
    if plugins is not None:
        overrides["plugins"] = plugins
    sim = Simulation.from_case(CASE, overrides)
    for hook in hooks:
        sim.add_hook(hook)
    sim.advance(2)  # JIT compilation, FFT planning and the plugins' dry runs stay out
    return sim



def paired(fns, repeats, calls):
    """Minimum seconds per call of each function and the medians of ratios to the first."""
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            t.append(seconds(fn, calls))
    ratios = [float(np.median(np.divide(t, times[0]))) for t in times]
    return [min(t) for t in times], ratios


def dispatch(repeats, steps=300):
    plain = simulation(16, plugins=[])
    hooked = simulation(16, plugins=[], hooks=[NoOp(every=1)])
    (t_plain, t_hook), (_, ratio) = paired([lambda: plain.advance(steps), lambda: hooked.advance(steps)],
                                           repeats, 1)
    tiny = {"grid.shape": [8, 8]}
    tiny_plain = simulation(1, plugins=[], **tiny)
    tiny_hooked = simulation(1, plugins=[], hooks=[NoOp(every=1)], **tiny)
    (u_plain, u_hook), _ = paired([lambda: tiny_plain.advance(1000), lambda: tiny_hooked.advance(1000)], repeats, 1)
    return {"ms_per_step": 1e3 * t_plain / steps, "ms_per_step_with_hook": 1e3 * t_hook / steps,
            "overhead": ratio - 1, "us_per_step_8x8": 1e3 * (u_hook - u_plain)}


def batching(repeats, device, path):
    entry = {"path": path, "device": device}
    batched = simulation(64, plugins=[entry | {"max_batch": 64}])
    single = simulation(64, plugins=[entry | {"max_batch": 1}])
    hb, hs = batched.hooks[0], single.hooks[0]
    (t_b, t_s), (_, ratio) = paired([lambda: hb(batched, batched.state), lambda: hs(single, single.state)],
                                    repeats, 3)
    module = hb.module
    x = torch.from_numpy(batched.fields()["vorticity"][:, None].astype(np.float32)).to(hb.device)
    sync = torch.cuda.synchronize if hb.device.type == "cuda" else (lambda: None)

    def module_batched():
        with torch.inference_mode():
            module(x, [], {})
        sync()

    def module_single():
        with torch.inference_mode():
            for i in range(64):
                module(x[i:i + 1], [], {})
        sync()

    (m_b, m_s), (_, m_ratio) = paired([module_batched, module_single], repeats, 3)
    moved = []
    for hook, sim in ((hb, batched), (hs, single)):  # bytes of one call
        before = (hook.stats.bytes_to_device, hook.stats.bytes_from_device)
        hook(sim, sim.state)
        moved.append((hook.stats.bytes_to_device - before[0], hook.stats.bytes_from_device - before[1]))
    return {"device": str(hb.device), "ms_batched_call": 1e3 * t_b, "ms_64_single_calls": 1e3 * t_s,
            "speedup": ratio, "module_ms_batched": 1e3 * m_b, "module_ms_single": 1e3 * m_s,
            "module_speedup": m_ratio,
            "bytes_per_call": {"batched": moved[0], "single": moved[1]}}


def smagorinsky_overhead(repeats, device, steps=100):
    plain = simulation(8, plugins=[])
    sims = {k: simulation(8, plugins=[{"path": smagorinsky, "every": k, "device": device}]) for k in (1, 5)}
    fns = [lambda: plain.advance(steps)] + [lambda s=s: s.advance(steps) for s in sims.values()]
    times, ratios = paired(fns, repeats, 1)
    out = {"ms_per_step_without": 1e3 * times[0] / steps}
    for (k, sim), t, ratio in zip(sims.items(), times[1:], ratios[1:]):
        stats = sim.hooks[0].stats
        ms_per_call = 1e3 * stats.seconds / stats.calls
        out[f"k={k}"] = {"ms_per_step": 1e3 * t / steps, "slowdown": ratio, "ms_per_call": ms_per_call,
                         "share": ms_per_call / k / (1e3 * t / steps)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {"torch_threads": torch.get_num_threads()}
    r = results["dispatch"] = dispatch(args.repeats)
    print(f"no-op observe hook every step, 64^2, M=16: {r['ms_per_step']:.3f} -> "
          f"{r['ms_per_step_with_hook']:.3f} ms/step, overhead {100 * r['overhead']:+.2f}% "
          f"({r['us_per_step_8x8']:.1f} us/step measured at 8^2)")
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        path = os.path.join(tmp, "small_cnn.pt")
        physical = [{"field": "vorticity", "space": "physical"}]
        manifest = classic_manifest("smagorinsky") | {
            "grid": {"shape": [64, 64], "length": [2 * np.pi, 2 * np.pi]}, "inputs": physical, "outputs": physical,
            "name": "small_cnn", "description": "untrained 3-layer CNN (batching benchmark)", "dtype": "float32",
            "provenance": {"trained": False, "command": "benchmarks/bench_hooks.py", "seed": 0}}
        export(SmallCNN(), manifest, path)
        r = results["batching"] = batching(args.repeats, args.device, path)
    print(f"small CNN closure, M=64 on {r['device']}: one batched call {r['ms_batched_call']:.2f} ms, "
          f"64 single-member calls {r['ms_64_single_calls']:.2f} ms: {r['speedup']:.2f}x "
          f"(module alone {r['module_ms_batched']:.2f} vs {r['module_ms_single']:.2f} ms: "
          f"{r['module_speedup']:.2f}x); bytes to/from the device per call: batched "
          f"{r['bytes_per_call']['batched']}, single {r['bytes_per_call']['single']}")
    r = results["smagorinsky"] = smagorinsky_overhead(args.repeats, args.device)
    print(f"Smagorinsky artifact, 64^2, M=8: without plugin {r['ms_per_step_without']:.3f} ms/step")
    for k in (1, 5):
        s = r[f"k={k}"]
        print(f"  every k={k}: {s['ms_per_step']:.3f} ms/step ({s['slowdown']:.2f}x), "
              f"{s['ms_per_call']:.3f} ms/call, {100 * s['share']:.1f}% of the time in the plugin")
    write_json(results, args.json)


if __name__ == "__main__":
    main()
