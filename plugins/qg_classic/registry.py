"""Paths of the shipped artifacts, registered in the ``hybridsolver.plugins`` entry-point
group (setup.py), so that a case can name a plugin instead of a file."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
qg_smagorinsky = os.path.join(ARTIFACTS, "smagorinsky.pt")
qg_zanna_bolton2020 = os.path.join(ARTIFACTS, "zanna_bolton2020.pt")
qg_backscatter_eddy = os.path.join(ARTIFACTS, "backscatter_biharmonic_eddy.pt")
qg_backscatter_jet = os.path.join(ARTIFACTS, "backscatter_biharmonic_jet.pt")
