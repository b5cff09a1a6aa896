"""Export the classic closures as hybridsolver artifacts.

    python -m plugins.classic.export [--shape 64 64] [--length 6.283.. 6.283..] [--out DIR]

writes ``smagorinsky.pt``, ``leith.pt`` and ``backscatter.pt`` (default: the shipped
ones in ``plugins/classic/artifacts``, for the 64x64 2*pi box of
``cases/kolmogorov64_smagorinsky.toml``).  The closures are analytic: nothing is
trained, and the artifacts are deterministic functions of the arguments.
"""
import argparse
import math
import os

from hybridsolver.plugin import export

from . import closures
from .registry import ARTIFACTS

CONSTANTS = {"smagorinsky": {"cs": 0.17}, "leith": {"c_leith": 1.0}, "backscatter": {"cs": 0.17, "c_back": 0.5}}
DESCRIPTIONS = {
    "smagorinsky": "Smagorinsky eddy viscosity nu_t = (cs delta)^2 |S|",
    "leith": "Leith eddy viscosity nu_t = (c delta)^3 |grad omega|",
    "backscatter": "Smagorinsky plus stochastic backscatter c_back cs^2 |S|^2 eta (smoothed white noise)",
}


def manifest(name, shape, length, noise=()):
    """The manifest of one classic closure on a (ny, nx) grid of size (Ly, Lx)."""
    return {
        "name": name, "version": "1.0", "kind": "closure", "callsite": "tendency",
        "description": DESCRIPTIONS[name],
        "equation": "navier_stokes2d",
        "grid": {"shape": list(shape), "length": list(length)},
        "inputs": [{"field": "vorticity", "space": "spectral", "units": "1/time, unnormalised rfft2"}],
        "outputs": [{"field": "vorticity", "space": "spectral", "units": "1/time^2 (tendency), unnormalised rfft2"}],
        "dtype": "float64", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": bool(noise), "noise": [{"name": n, "shape": list(shape)} for n in noise], "sampler": {},
        "provenance": {"trained": False, "constants": CONSTANTS[name],
                       "command": f"python -m plugins.classic.export --shape {shape[0]} {shape[1]} "
                                  f"--length {length[0]!r} {length[1]!r}"},
    }


def export_all(shape, length, out):
    """Write the three artifacts into ``out``; returns their paths."""
    modules = {
        "smagorinsky": (closures.Smagorinsky(shape, length, **CONSTANTS["smagorinsky"]), ()),
        "leith": (closures.Leith(shape, length, **CONSTANTS["leith"]), ()),
        "backscatter": (closures.StochasticBackscatter(shape, length, **CONSTANTS["backscatter"]), ("eta",)),
    }
    paths = []
    for name, (module, noise) in modules.items():
        path = os.path.join(out, f"{name}.pt")
        export(module, manifest(name, shape, length, noise), path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=2, default=[64, 64], metavar=("NY", "NX"))
    parser.add_argument("--length", type=float, nargs=2, default=[2 * math.pi] * 2, metavar=("LY", "LX"))
    parser.add_argument("--out", default=ARTIFACTS)
    args = parser.parse_args(argv)
    for path in export_all(args.shape, args.length, args.out):
        print(path)


if __name__ == "__main__":
    main()
