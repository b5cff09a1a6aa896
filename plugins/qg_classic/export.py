"""Export pyqg's parameterizations for qg2layer as hybridsolver artifacts.

    python -m plugins.qg_classic.export [--nx 64] [--L 1e6] [--out DIR]

writes ``smagorinsky.pt``, ``zanna_bolton2020.pt`` and one ``backscatter_biharmonic_*.pt``
per layer configuration of :data:`CONFIGS` (the backscatter weights the layers by their
thicknesses; the artifact pins ``H1`` and ``delta`` through its ``equation_parameters``).
The defaults write the shipped artifacts in ``plugins/qg_classic/artifacts`` for the
64x64, L = 1e6 m low-resolution grid of ``cases/qg_eddy.toml`` and ``cases/qg_jet.toml``.
The parameterizations are analytic: nothing is trained, and the artifacts are
deterministic functions of the arguments.
"""
import argparse
import os

from hybridsolver.plugin import export

from . import closures
from .registry import ARTIFACTS

# pyqg 0.7.2's default constants
CONSTANTS = {"smagorinsky": {"constant": 0.1},
             "zanna_bolton2020": {"constant": -46761284.0},
             "backscatter_biharmonic": {"smag_constant": 0.08, "back_constant": 0.99, "eps": 1e-32}}
# the layer configurations of cases/qg_eddy.toml and cases/qg_jet.toml (tests check they agree)
CONFIGS = {"eddy": {"H1": 500.0, "delta": 0.25}, "jet": {"H1": 500.0, "delta": 0.1}}
DESCRIPTIONS = {
    "smagorinsky": "pyqg Smagorinsky (velocity): nu = (C dx)^2 sqrt(2 S_ij S_ij), forcing 2 div(nu S), as a PV tendency",
    "zanna_bolton2020": "pyqg ZannaBolton2020 (velocity): Zanna & Bolton 2020 Eq. 6, as a PV tendency",
    "backscatter_biharmonic": "pyqg BackscatterBiharmonic (PV): biharmonic Smagorinsky dissipation plus "
                              "energy-consistent backscatter (Jansen & Held 2014)",
}


def manifest(name, shape, length, parameters=None):
    """The manifest of one parameterization on an (ny, nx) grid of side lengths (Ly, Lx) in m."""
    family = name if name in CONSTANTS else "backscatter_biharmonic"
    command = f"python -m plugins.qg_classic.export --nx {shape[1]} --L {length[1]!r}"
    return {
        "name": name, "version": "1.0", "kind": "closure", "callsite": "tendency",
        "description": DESCRIPTIONS[family],
        "equation": "qg2layer",
        "grid": {"shape": list(shape), "length": list(length)},
        "equation_parameters": parameters or {},
        "inputs": [{"field": "psi", "space": "spectral", "units": "m^2/s, unnormalised rfft2 (pyqg ph)"}],
        "outputs": [{"field": "q", "space": "spectral", "units": "1/s^2 (PV tendency), unnormalised rfft2"}],
        "dtype": "float64", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": False, "noise": [], "sampler": {},
        "provenance": {"trained": False, "reference": "pyqg 0.7.2 pyqg/parameterizations.py",
                       "constants": CONSTANTS[family], "command": command},
    }


def export_all(nx, L, out):
    """Write the artifacts for an nx x nx grid of side L (m) into ``out``; returns their paths."""
    shape, length = (nx, nx), (L, L)
    modules = {
        "smagorinsky": (closures.Smagorinsky(shape, length, **CONSTANTS["smagorinsky"]), None),
        "zanna_bolton2020": (closures.ZannaBolton2020(shape, length, **CONSTANTS["zanna_bolton2020"]), None),
    }
    for config, layers in CONFIGS.items():
        module = closures.BackscatterBiharmonic(shape, length, **layers, **CONSTANTS["backscatter_biharmonic"])
        modules[f"backscatter_biharmonic_{config}"] = (module, layers)
    paths = []
    for name, (module, parameters) in modules.items():
        path = os.path.join(out, f"{name}.pt")
        export(module, manifest(name, shape, length, parameters), path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nx", type=int, default=64, help="grid points per side (default 64)")
    parser.add_argument("--L", type=float, default=1e6, help="domain side in m (default 1e6)")
    parser.add_argument("--out", default=ARTIFACTS)
    args = parser.parse_args(argv)
    for path in export_all(args.nx, args.L, args.out):
        print(path)


if __name__ == "__main__":
    main()
