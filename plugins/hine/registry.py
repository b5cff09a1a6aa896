"""Paths of the shipped HINE-family artifacts, registered in the ``hybridsolver.plugins``
entry-point group (setup.py): ``hine_l1``, ``hine_l2``, ``hine_l3`` (the hierarchical
implicit emulators of 1, 2 and 3 levels) and ``hine_history`` (the 2-step-history
baseline)."""
import os

ARTIFACTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "artifacts")
hine_l1 = os.path.join(ARTIFACTS, "L1.pt")
hine_l2 = os.path.join(ARTIFACTS, "L2.pt")
hine_l3 = os.path.join(ARTIFACTS, "L3.pt")
hine_history = os.path.join(ARTIFACTS, "history.pt")
