"""Paths of the shipped latent-SDE emulators, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): ``latent_sde_kdv_eta0`` (the implicit-scale KdV model)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
latent_sde_kdv_eta0 = os.path.join(ARTIFACTS, "kdv_eta0.pt")
