"""What equations with a real, physical-space state share (``burgers2d``, ``observed``).

Their state is real ``(M, ...)`` on the grid's points, stepped by the explicit schemes
only: no linear operator, spectral filter or FFT transforms, no stochastic forcing,
derived fields or spectra.  :class:`PhysicalState` gives the equation protocol's
attributes and methods those values; a subclass sets ``name`` and ``fields`` and writes
the rest (``explicit``, ``to_fields``, ``from_fields``, ``diagnostics``).
"""
import numpy as np


class PhysicalState:
    """Defaults of the equation protocol for a real physical-space state."""

    field_layers = {}
    derived_fields = {}
    state_dtype = np.float64
    linear = None
    state_filter = None
    stochastic = False
    transforms = None

    def add_noise(self, state, step, dt):
        """No stochastic forcing in this model."""

    def derived_spectra(self, state, names):
        """No derived fields: {}."""
        return {}

    def spectra(self, state):
        """No spectra (the state is not on a periodic spectral grid): {}."""
        return {}
