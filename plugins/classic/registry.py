"""Paths of the shipped artifacts, registered in the ``hybridsolver.plugins`` entry-point
group (setup.py), so that a case can name a plugin instead of a file."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
smagorinsky = os.path.join(ARTIFACTS, "smagorinsky.pt")
leith = os.path.join(ARTIFACTS, "leith.pt")
backscatter = os.path.join(ARTIFACTS, "backscatter.pt")
