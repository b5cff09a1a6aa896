"""Paths of the shipped latent-SDE emulators, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): ``latent_sde_kdv`` (the multiscale KdV model, n_eta = 5),
``latent_sde_kdv_eta0`` (its implicit-scale model, n_eta = 0) and
``latent_sde_burgers2d_eta0`` (the implicit-scale 2D Burgers model) and
``latent_sde_cylinder_eta0`` (the implicit-scale model of the cylinder wake's window)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
latent_sde_kdv_eta0 = os.path.join(ARTIFACTS, "kdv_eta0.pt")
latent_sde_kdv = os.path.join(ARTIFACTS, "kdv_eta5.pt")
latent_sde_burgers2d_eta0 = os.path.join(ARTIFACTS, "burgers2d_eta0.pt")
latent_sde_cylinder_eta0 = os.path.join(ARTIFACTS, "cylinder_eta0.pt")
