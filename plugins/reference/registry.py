"""Paths of the shipped reference artifacts, registered in the ``hybridsolver.plugins``
entry-point group (setup.py)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
linear_decay = os.path.join(ARTIFACTS, "linear_decay.pt")
stochastic_relaxation = os.path.join(ARTIFACTS, "stochastic_relaxation.pt")
band_refiner = os.path.join(ARTIFACTS, "band_refiner.pt")
