"""Export pyqg's parameterizations for qg2layer as hybridsolver artifacts.

    python -m plugins.qg_classic.export [--out DIR]

writes ``smagorinsky.pt``, ``zanna_bolton2020.pt`` and one ``backscatter_biharmonic_*.pt``
per layer configuration of :data:`CONFIGS` (the backscatter weights the layers by their
thicknesses; the artifact pins ``H1`` and ``delta`` through its ``equation_parameters``),
by default the shipped artifacts in ``plugins/qg_classic/artifacts``.  They run on any
grid (manifest ``grid`` ``"any"``): the host hands them derivatives of ``psi``, ``u``, ``v``
in physical space and finishes their outputs (``hybridsolver.plugin.operators``).  The
parameterizations are analytic: nothing is trained, and the artifacts are deterministic.
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
    "smagorinsky": "pyqg Smagorinsky (velocity): nu = (C dx)^2 sqrt(2 S_ij S_ij), forcing 2 div(nu S), "
                   "as a PV tendency",
    "zanna_bolton2020": "pyqg ZannaBolton2020 (velocity): Zanna & Bolton 2020 Eq. 6, as a PV tendency",
    "backscatter_biharmonic": "pyqg BackscatterBiharmonic (PV): biharmonic Smagorinsky dissipation plus "
                              "energy-consistent backscatter (Jansen & Held 2014)",
}




def _gradient(field, derivative):
    return {"field": field, "space": "physical", "derivative": derivative,
            "units": f"d{field}/d{derivative} (1/s), layers 1 and 2"}


STRAIN = [_gradient("u", "x"), _gradient("v", "y"), _gradient("u", "y"), _gradient("v", "x")]
STRESS = [{"field": "q", "space": "physical", "form": "stress",
           "units": "Txx, Txy, Tyy (m^2/s^2), layers 1 and 2 each: PV tendency curl(div T) (1/s^2)"}]
FIELDS = {
    "smagorinsky": (STRAIN, STRESS),
    "zanna_bolton2020": ([_gradient("u", "x"), _gradient("u", "y"), _gradient("v", "x"), _gradient("v", "y")], STRESS),
    "backscatter_biharmonic": (
        [{"field": "psi", "space": "physical", "units": "m^2/s"},
         {"field": "psi", "space": "physical", "derivative": {"xx": 1.0, "yy": 1.0}, "units": "lap psi (1/s)"},
         {"field": "psi", "space": "physical", "derivative": {"xxxx": 1.0, "xxyy": 2.0, "yyyy": 1.0},
          "units": "lap^2 psi (1/(m^2 s))"}] + STRAIN,
        [{"field": "q", "space": "physical", "derivative": {"xx": -1.0, "yy": -1.0},
          "units": "F = dx^2 nu lap^2 psi (m^2/s^2): PV tendency -lap F (1/s^2)"},
         {"field": "q", "space": "physical", "units": "backscatter PV tendency (1/s^2)"}]),
}


def manifest(name, parameters=None):
    """The manifest of one parameterization (any grid)."""
    family = name if name in CONSTANTS else "backscatter_biharmonic"
    inputs, outputs = FIELDS[family]
    return {
        "name": name, "version": "2.0", "kind": "closure", "callsite": "tendency",
        "description": DESCRIPTIONS[family],
        "equation": "qg2layer",
        "grid": {"shape": "any", "length": "any"},
        "equation_parameters": parameters or {},
        "inputs": inputs, "outputs": outputs,
        "dtype": "float64", "devices": ["cpu", "cuda"], "every": 1,
        "stochastic": False, "noise": [], "sampler": {},
        "provenance": {"trained": False, "reference": "pyqg 0.7.2 pyqg/parameterizations.py",
                       "constants": CONSTANTS[family], "command": "python -m plugins.qg_classic.export"},
    }


def export_all(out):
    """Write the artifacts into ``out``; returns their paths."""
    modules = {
        "smagorinsky": (closures.Smagorinsky(**CONSTANTS["smagorinsky"]), None),
        "zanna_bolton2020": (closures.ZannaBolton2020(**CONSTANTS["zanna_bolton2020"]), None),
    }
    for config, layers in CONFIGS.items():
        module = closures.BackscatterBiharmonic(**layers, **CONSTANTS["backscatter_biharmonic"])
        modules[f"backscatter_biharmonic_{config}"] = (module, layers)
    paths = []
    for name, (module, parameters) in modules.items():
        path = os.path.join(out, f"{name}.pt")
        export(module, manifest(name, parameters), path)
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
