"""Export the classic closures as hybridsolver artifacts.

    python -m plugins.classic.export [--out DIR]

writes ``smagorinsky.pt``, ``leith.pt`` and ``backscatter.pt`` (default: the shipped
ones in ``plugins/classic/artifacts``).  They run on any grid (manifest ``grid`` ``"any"``):
the host hands them derivatives of its fields in physical space and takes the
derivatives of their outputs (``hybridsolver.plugin.operators``).  The closures are
analytic: nothing is trained, and the artifacts are deterministic.
"""
import argparse
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


# physical inputs the host computes (derivatives of psi, u = psi_y, v = -psi_x) and the
# derivatives it takes of the outputs: the strain in, the stress's curl-divergence out
STRAIN = [{"field": "psi", "space": "physical", "derivative": "xy", "units": "S11 = u_x (1/time)"},
          {"field": "psi", "space": "physical", "derivative": {"yy": 0.5, "xx": -0.5},
           "units": "S12 = (u_y + v_x)/2 (1/time)"}]
STRESS = [{"field": "vorticity", "space": "physical", "derivative": {"xy": -2.0}, "units": "T11 (length^2/time^2)"},
          {"field": "vorticity", "space": "physical", "derivative": {"xx": 1.0, "yy": -1.0},
           "units": "T12 (length^2/time^2)"}]
FIELDS = {
    "smagorinsky": (STRAIN, STRESS),
    "leith": ([{"field": "vorticity", "space": "physical", "derivative": d, "units": f"omega_{d} (1/(length time))"}
               for d in "xy"],
              [{"field": "vorticity", "space": "physical", "derivative": d,
                "units": f"flux nu_t omega_{d} (1/time^2 length)"} for d in "xy"]),
    "backscatter": (STRAIN, STRESS + [{"field": "vorticity", "space": "physical",
                                       "units": "backscatter forcing (1/time^2)"}]),
}


def manifest(name, noise=()):
    """The manifest of one classic closure (any grid)."""
    inputs, outputs = FIELDS[name]
    return {
        "name": name, "version": "2.0", "kind": "closure", "callsite": "tendency",
        "description": DESCRIPTIONS[name],
        "equation": "navier_stokes2d",
        "grid": {"shape": "any", "length": "any"},
        "inputs": inputs, "outputs": outputs,
        "dtype": "float64", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": bool(noise), "noise": [{"name": n, "shape": ["ny", "nx"]} for n in noise], "sampler": {},
        "provenance": {"trained": False, "constants": CONSTANTS[name], "command": "python -m plugins.classic.export"},
    }


def export_all(out):
    """Write the three artifacts into ``out``; returns their paths."""
    modules = {
        "smagorinsky": (closures.Smagorinsky(**CONSTANTS["smagorinsky"]), ()),
        "leith": (closures.Leith(**CONSTANTS["leith"]), ()),
        "backscatter": (closures.StochasticBackscatter(**CONSTANTS["backscatter"]), ("eta",)),
    }
    paths = []
    for name, (module, noise) in modules.items():
        path = os.path.join(out, f"{name}.pt")
        export(module, manifest(name, noise), path)
        paths.append(path)
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=ARTIFACTS)
    args = parser.parse_args(argv)
    for path in export_all(args.out):
        print(path)


if __name__ == "__main__":
    main()
