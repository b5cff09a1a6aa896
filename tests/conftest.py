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


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long tests, run with -m slow")


def pytest_collection_modifyitems(config, items):
    """Skip slow tests unless they are asked for with -m slow."""
    if "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
