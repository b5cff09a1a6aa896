"""Paths of the shipped L-CDM artifacts, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): cases name them ``lcdm``, ``lcdm_paper`` (the joint
L-CDM of the paper-scale configuration, trained on a GPU) and ``pcdm``."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
lcdm = os.path.join(ARTIFACTS, "lcdm.pt")
lcdm_paper = os.path.join(ARTIFACTS, "lcdm_paper.pt")
pcdm = os.path.join(ARTIFACTS, "pcdm.pt")
