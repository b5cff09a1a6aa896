"""Reading run directories in tests: every variable of a netCDF file, and the check that
two run directories hold the same records bit for bit (restart, quarantine, emulator and
run-directory tests)."""
import os

import netCDF4
import numpy as np


def read_netcdf(path):
    """{variable: numpy array} of every variable of netCDF file ``path``."""
    with netCDF4.Dataset(path) as ds:
        return {name: np.asarray(var[...]) for name, var in ds.variables.items()}


def assert_same_run_files(a, b, names=("fields.nc", "diagnostics.nc")):
    """Assert that run directories ``a`` and ``b`` hold the same variables and values in ``names``."""
    for name in names:
        x, y = read_netcdf(os.path.join(a, name)), read_netcdf(os.path.join(b, name))
        assert x.keys() == y.keys(), name
        for var in x:
            assert np.array_equal(x[var], y[var]), (name, var)
