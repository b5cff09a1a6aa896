"""One of our closures inside pyqg: the QG Smagorinsky artifact as a pyqg parameterization.

    python examples/closure_in_pyqg.py [--days 60]

``ArtifactParameterization`` wraps an artifact (a file or a registered name) as a
``pyqg.QParameterization``; pyqg calls it every step and adds its PV tendency.  The same
artifact runs in hybridsolver's host from a case file (``plugins = [{path = "qg_smagorinsky"}]``).
"""
import argparse

import numpy as np
import pyqg

from hybridsolver.interop.pyqg import ArtifactParameterization


def kinetic_energy(model):
    """Height-weighted mean kinetic energy of a pyqg model (m^2/s^2)."""
    ke = 0.5 * (model.u**2 + model.v**2).mean(axis=(1, 2))
    return float((model.Hi * ke).sum() / model.H)


def main(argv=None):
    """Run pyqg's defaults at 64^2 with and without the closure; returns {label: kinetic energy}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=60.0)
    parser.add_argument("--artifact", default="qg_smagorinsky")
    args = parser.parse_args(argv)
    energies = {}
    for label, param in (("pyqg alone", None), (args.artifact, ArtifactParameterization(args.artifact))):
        model = pyqg.QGModel(nx=64, dt=3600.0, tmax=args.days * 86400.0, twrite=10**9, log_level=0,
                             q_parameterization=param)
        np.random.seed(0)
        model.set_q1q2(*(1e-7 * np.random.randn(2, 64, 64)))
        model.run()
        energies[label] = kinetic_energy(model)
        print(f"{label:>15}: kinetic energy {energies[label]:.3e} m^2/s^2 after {args.days:g} days")
    return energies


if __name__ == "__main__":
    main()
