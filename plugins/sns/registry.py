"""Paths of the shipped SNS-family artifacts, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): ``sns_unet`` (the pointwise UNet surrogate), ``sns_refined``
(the surrogate refined by SNS, an emulator) and ``sns_corrector`` (SNS refining a
solver's steps, a post_step refiner)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
sns_unet = os.path.join(ARTIFACTS, "unet.pt")
sns_refined = os.path.join(ARTIFACTS, "sns.pt")
sns_corrector = os.path.join(ARTIFACTS, "corrector.pt")
