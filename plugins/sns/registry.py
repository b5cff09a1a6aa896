"""Paths of the shipped SNS-family artifacts, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): ``sns_unet`` (the pointwise UNet surrogate)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
sns_unet = os.path.join(ARTIFACTS, "unet.pt")
