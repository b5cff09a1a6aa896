"""CF-convention metadata (CF-1.10) of the netCDF files hybridsolver writes.

Every file gets the global attributes of :func:`global_attributes` (``Conventions``,
``title``, ``source``, ``history``, ``units_system``); coordinates get ``axis``,
``units`` and ``standard_name`` where CF has one; data variables get ``long_name`` and
``units``.  ``qg2layer`` works in SI units; the other equations are nondimensional,
their quantities have ``units = "1"`` and the file's ``units_system`` says so.

Time is a CF time coordinate: ``seconds since 2000-01-01`` (:data:`TIME_UNITS`).  For a
nondimensional equation one model time unit is written as one second (CF has no
nondimensional time); ``xarray.open_dataset(path, decode_times=False)`` gives the model
time as floats.
"""
import datetime
import os
import sys

import numpy as np

CONVENTIONS = "CF-1.10"
TIME_UNITS = "seconds since 2000-01-01 00:00:00"
SI_EQUATIONS = ("qg2layer",)

# name: (long name, SI units).  The SI units are written for qg2layer, "1" for the others.
VARIABLES = {
    "vorticity": ("relative vorticity", "s-1"),
    "psi": ("streamfunction", "m2 s-1"),
    "u": ("x component of velocity", "m s-1"),
    "v": ("y component of velocity", "m s-1"),
    "q": ("potential vorticity anomaly", "s-1"),
    "S_q": ("subgrid potential vorticity forcing bar(N_fine(q)) - N_coarse(bar(q))", "s-2"),
    "energy": ("energy: domain mean per unit mass", "m2 s-2"),
    "enstrophy": ("enstrophy: domain mean of vorticity^2 / 2", "s-2"),
    "palinstrophy": ("palinstrophy: domain mean of |grad vorticity|^2 / 2", "m-2 s-2"),
    "max_vorticity": ("maximum of |vorticity|", "s-1"),
    "cfl": ("advective CFL number dt max(|u|/dx + |v|/dy)", "1"),
    "ke_1": ("kinetic energy of the upper layer", "m2 s-2"),
    "ke_2": ("kinetic energy of the lower layer", "m2 s-2"),
    "ke": ("kinetic energy, height-weighted mean of the layers", "m2 s-2"),
    "ape": ("available potential energy", "m2 s-2"),
    "energy_spectrum": ("kinetic energy in each isotropic wavenumber shell", "m2 s-2"),
    "enstrophy_spectrum": ("enstrophy in each isotropic wavenumber shell", "s-2"),
    "ke_spectrum_1": ("kinetic energy of the upper layer in each isotropic wavenumber shell", "m2 s-2"),
    "ke_spectrum_2": ("kinetic energy of the lower layer in each isotropic wavenumber shell", "m2 s-2"),
    "mean": ("domain mean of u", "1"),
    "max_abs": ("maximum of |u| over the domain", "1"),
    "drag_coefficient": ("drag coefficient C_D from the penalization force", "1"),
    "lift_coefficient": ("lift coefficient C_L from the penalization force", "1"),
}
# Where an equation's variable means something else than VARIABLES says.
EQUATION_VARIABLES = {
    ("navier_stokes2d", "psi"): ("streamfunction of the periodic part of the flow", "m2 s-1"),
    ("navier_stokes2d", "energy"): ("kinetic energy: domain mean of |u|^2 / 2", "m2 s-2"),
    ("qg2layer", "u"): ("x component of the velocity anomaly (without the mean flow U_j)", "m s-1"),
    ("qg2layer", "v"): ("y component of the velocity", "m s-1"),
    ("qg2layer", "energy"): ("total energy ke + ape per unit mass", "m2 s-2"),
    ("qg2layer", "cfl"): ("advective CFL number dt max(|u + U_j|, |v|) / dx", "1"),
    ("kdv", "u"): ("KdV field u", "1"),
    ("kdv", "mass"): ("mass: integral of u over the domain", "1"),
    ("kdv", "energy"): ("energy: integral of u^2 over the domain", "1"),
    ("kdv", "hamiltonian"): ("Hamiltonian: integral of u^3 / 6 - viscosity u_x^2 / 2 over the domain", "1"),
    ("burgers2d", "u"): ("Burgers field u", "1"),
    ("burgers2d", "energy"): ("energy: domain mean of u^2 / 2", "1"),
    ("observed", "energy"): ("energy: domain mean of the summed squares of the fields / 2", "1"),
    ("observed", "max_abs"): ("maximum of |field| over the fields and the domain", "1"),
}


def units_system(equation):
    """``"SI"`` for ``qg2layer``, ``"nondimensional"`` for the other equations."""
    return "SI" if equation in SI_EQUATIONS else "nondimensional"


def units(system, si_units):
    """``si_units`` in an SI file, ``"1"`` in a nondimensional one."""
    return si_units if system == "SI" else "1"


def global_attributes(title, system):
    """The global attributes of a file in units ``system`` (``"SI"`` or ``"nondimensional"``):
    ``Conventions``, ``title``, ``source`` (the package and its version), ``history`` (UTC
    time and the command line), ``units_system``."""
    from . import __version__

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    command = " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) if sys.argv and sys.argv[0] else "python"
    return {"Conventions": CONVENTIONS, "title": title, "source": f"hybridsolver {__version__}",
            "history": f"{now}: {command}", "units_system": system}


def model_time_attributes(long_name):
    """Attributes of a variable of model times (``units`` :data:`TIME_UNITS`, ``calendar``)."""
    return {"long_name": long_name, "units": TIME_UNITS, "calendar": "proleptic_gregorian"}


def time_attributes(system):
    """The ``time`` coordinate's attributes (model time; see the module docstring)."""
    long_name = "model time" if system == "SI" else "model time (nondimensional, one unit written as one second)"
    return {"standard_name": "time", "axis": "T"} | model_time_attributes(long_name)


def duration_units(system):
    """Units of a time interval (a lag): ``"s"`` or ``"1"``."""
    return units(system, "s")


def axis_attributes(axis, system):
    """Attributes of the grid coordinate ``axis`` (``"x"``, ``"y"`` or ``"layer"``)."""
    if axis == "layer":
        return {"long_name": "layer index, 1 the upper layer", "units": "1", "axis": "Z", "positive": "down"}
    attrs = {"long_name": f"{axis} coordinate of the grid point", "units": units(system, "m"), "axis": axis.upper()}
    if system == "SI":
        attrs["standard_name"] = f"projection_{axis}_coordinate"
    return attrs


def coordinate_attributes(name, system):
    """Attributes of the coordinates every record file has: ``member``, ``time``, ``step``,
    ``k`` and the mask ``valid``."""
    if name == "time":
        return time_attributes(system)
    return {
        "member": {"standard_name": "realization", "long_name": "ensemble member", "units": "1"},
        "step": {"long_name": "solver steps taken", "units": "1"},
        "k": {"long_name": "wavenumber magnitude of the isotropic shell", "units": units(system, "rad m-1")},
        "valid": {"long_name": "member running (1) or quarantined (0, its values are NaN)",
                  "flag_values": np.array([0, 1], np.int8), "flag_meanings": "quarantined running"},
    }[name]


def variable_attributes(equation, name):
    """``long_name`` and ``units`` of field or diagnostic ``name`` of ``equation``; KeyError
    for a name this module does not know (``observed``'s fields are taken as nondimensional
    fields of their own names)."""
    system = units_system(equation)
    key = (equation, name)
    if key in EQUATION_VARIABLES:
        long_name, si = EQUATION_VARIABLES[key]
    elif equation == "observed" and name.startswith("mean_"):
        long_name, si = f"domain mean of {name[5:]}", "1"
    elif equation == "observed" and name not in VARIABLES:
        long_name, si = f"observed field {name}", "1"
    else:
        long_name, si = VARIABLES[name]
    return {"long_name": long_name, "units": units(system, si)}
