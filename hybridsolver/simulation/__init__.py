"""The step loop of an ensemble (:class:`Simulation`), by concern: the state, clock and
solver step (:mod:`.core`), hooks (:mod:`.hooked`), monitors and quarantine
(:mod:`.monitoring`), a run with its outputs and checkpoints (:mod:`.running`) and its
signal handling (:mod:`.signals`)."""
from .core import Simulation

__all__ = ["Simulation"]
