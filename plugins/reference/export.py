"""Export the reference emulators and refiner as hybridsolver artifacts.

    python -m plugins.reference.export [--case cases/linear_decay64.toml] [--out DIR]

writes ``linear_decay.pt``, ``stochastic_relaxation.pt`` and ``band_refiner.pt``
(default: the shipped ones in ``plugins/reference/artifacts``) for the grid of the case
file, the linear emulator for its ``equation.viscosity`` and ``equation.drag``.  Nothing
is trained: the artifacts are deterministic functions of the case.
"""
import argparse
import os

from hybridsolver.case import load_case
from hybridsolver.plugin import export

from . import models
from .registry import ARTIFACTS

DEFAULT_CASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "cases", "linear_decay64.toml")
SPECTRAL = {"field": "vorticity", "space": "spectral", "units": "1/time, unnormalised rfft2"}


def _manifest(name, kind, callsite, case, description, **keys):
    grid = case.data["grid"]
    return {
        "name": name, "version": "1.0", "kind": kind, "callsite": callsite, "description": description,
        "equation": "navier_stokes2d", "grid": {"shape": list(grid["shape"]), "length": list(grid["length"])},
        "dtype": "float64", "devices": ["cpu", "cuda"], "every": 1, "stochastic": False, "noise": [],
        "sampler": {}, "provenance": {"trained": False, "case": case.path,
                                      "command": f"python -m plugins.reference.export --case {case.path}"},
    } | keys


def manifests(case):
    """{name: (module, manifest)} of the three reference artifacts for a loaded case."""
    grid, eq = case.data["grid"], case.data["equation"]
    shape, length = grid["shape"], grid["length"]
    shape1 = [1] + list(shape)
    physical = {"field": "vorticity", "space": "physical", "units": "1/time"}
    return {
        "linear_decay": (models.LinearDecay(shape, length, eq["viscosity"], eq["drag"]), _manifest(
            "linear_decay", "emulator", "replace", case,
            "exact emulator of the linear part of navier_stokes2d: w_hat *= exp(-(nu k^2 + mu) every dt)",
            inputs=[SPECTRAL], outputs=[SPECTRAL],
            equation_parameters={"viscosity": eq["viscosity"], "drag": eq["drag"]})),
        "stochastic_relaxation": (models.StochasticRelaxation(), _manifest(
            "stochastic_relaxation", "emulator", "replace", case,
            "stateful stochastic emulator: w' = exp(-drag h) w + h m', m an Ornstein-Uhlenbeck forcing per point "
            "carried as state (reference model of the runtime)",
            inputs=[physical], outputs=[physical], stochastic=True, noise=[{"name": "xi", "shape": shape1}],
            sampler={"tau": 0.5, "sigma": 1.0, "drag": 0.1},
            state=[{"name": "memory", "shape": shape1, "dtype": "float64"},
                   {"name": "calls", "shape": [1], "dtype": "float64"}])),
        "band_refiner": (models.BandRefiner(shape, length), _manifest(
            "band_refiner", "refiner", "post_step", case,
            "refiner projecting each step's update onto the band k_min <= |k| < k_max: w = w_prev + P(w - w_prev)",
            inputs=[SPECTRAL, SPECTRAL | {"at": "previous"}], outputs=[SPECTRAL],
            sampler={"k_min": 0.0, "k_max": 8.0})),
    }


def export_all(case_path, out):
    """Write the three artifacts for ``case_path`` into ``out``; returns their paths."""
    case = load_case(case_path)
    paths = []
    for name, (module, manifest) in manifests(case).items():
        path = os.path.join(out, f"{name}.pt")
        export(module, manifest, path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=os.path.relpath(DEFAULT_CASE))
    parser.add_argument("--out", default=ARTIFACTS)
    args = parser.parse_args(argv)
    for path in export_all(args.case, args.out):
        print(path)


if __name__ == "__main__":
    main()
