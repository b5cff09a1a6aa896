import copy
import math
import os
import tempfile

import pytest

# One FFTW wisdom file per test session, shared with the CLI subprocesses it starts.
os.environ.setdefault("HYBRIDSOLVER_FFTW_WISDOM", os.path.join(tempfile.mkdtemp(), "fftw_wisdom"))

BASE_CASE = {
    "equation": {"name": "navier_stokes2d", "viscosity": 1e-3, "drag": 0.1,
                 "forcing": {"type": "kolmogorov", "wavenumber": 4, "amplitude": 1.0}},
    "grid": {"shape": [32, 32], "length": [2 * math.pi, 2 * math.pi], "dealias": "2/3"},
    "initial_condition": {"type": "random_velocity", "peak_wavenumber": 4.0, "max_velocity": 7.0},
    "time": {"scheme": "cn_rk4", "dt": 1e-3, "steps": 10},
    "ensemble": {"members": 1, "seed": 0},
    "output": {"fields_every": 5, "diagnostics_every": 5},
}


@pytest.fixture
def case():
    """A fresh raw case dict (32^2 Kolmogorov flow) to modify per test."""
    return copy.deepcopy(BASE_CASE)
