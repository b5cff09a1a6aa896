"""Initial fields: (M, ny, nx) vorticity for ``navier_stokes2d``, (M, 2, ny, nx) PV for
``qg2layer``, u (M, n) for ``kdv`` and (M, ny, nx) for ``burgers2d``.

Random fields are drawn from each member's ``initial_condition`` stream
(``hybridsolver.rng``), so member m's field is the same in any ensemble.  White noise
``xi`` (N(0, 1) per grid point) is shaped in Fourier space; with
``F(xi)_k`` of variance N per mode, a multiplier ``c_k`` gives the covariance
``C(x - x') = (1/N) sum_k c_k^2 cos(k.(x - x'))``.  With ``dealias = "2/3"`` the
random fields are truncated to :meth:`Grid.alias_free_band` (about ``|p|, |q| < n/3``
in integer wavenumbers), so the dealiased dynamics resolve them without aliasing.

- ``gaussian_random_field``: ``omega ~ N(0, 2 sigma^2 (-lap + tau^2)^(-alpha))`` with the
  mean mode removed, i.e. ``c_k = sigma sqrt(2N) (|k|^2 + tau^2)^(-alpha/2)``: the field
  of Li et al.'s FNO Navier-Stokes data, written ``N(0, 7^(3/2) (-lap + 49 I)^(-5/2))``
  there (alpha = 2.5, tau = 7, sigma = tau^(alpha - 1) = 7^(3/2) on the unit torus).
- ``random_velocity``: a random divergence-free velocity whose amplitude spectrum is
  a log-normal in ``|k|`` peaked at ``peak_wavenumber`` (log-variance 1/4) divided by
  ``|k|`` (as jax-cfd's ``filtered_velocity_field``), scaled to ``max_velocity``.
  It is built from two white-noise velocity components; taking the curl removes the
  divergent part.
- ``taylor_green``: ``omega = A sin(kx x) sin(ky y)`` with ``k = 2 pi n / L``: the stream
  function is proportional to omega, so advection vanishes and the exact solution
  decays as ``exp(-(nu |k|^2 + mu) t)``.
- ``pyqg_random``: pyqg's ``QGModel`` start, ``q1 = amplitude r(y, x) + zonal_amplitude
  s(x)`` and ``q2 = 0`` with ``r``, ``s`` uniform on [0, 1) from the member's stream
  (pyqg draws them from numpy's global state).
- ``random_packet``: ``u = a cos(wavenumber x) exp(-|x - center|^2 / s^2)`` with
  ``a ~ N(amplitude[0], amplitude[1])`` and ``s ~ N(width[0], width[1])`` (mean and
  *variance*), drawn in that order from the member's stream; ``center`` is ``[x0]`` on 1D
  grids and ``[y0, x0]`` on 2D ones (the multiscale latent-SDE paper's KdV start
  ``a cos(pi x) exp(-(x - 7.5)^2/s^2)``, a ~ N(2, 0.01), s ~ N(1, 0.01), and Burgers start
  ``a exp(-((x - 0.3)^2 + (y - 0.3)^2)/s^2)``, a ~ N(1, 0.01), s ~ N(0.2, 1e-4)).
- ``file``: a ``.npy`` array or a netCDF variable (default: the equation's field name),
  shaped as one member's field (the same for every member), e.g. ``(ny, nx)``, or with
  a leading row axis, row m for member m.
"""
import os

import numpy as np

from . import fft, rng
from .case import CaseError, resolve_path


def _shaped_noise(grid, seed, members, multiplier, components=1):
    """Spectra of white noise times ``multiplier``: list of (M, ny, nx//2+1) arrays."""
    tr = fft.transforms(grid.shape)
    out = []
    for c in range(components):
        noise = rng.standard_normal(seed, members, f"initial_condition/{c}", 0, grid.shape)
        out.append(tr.to_spectral(noise) * (multiplier * grid.alias_free_band()))
    return out


def gaussian_random_field(grid, seed, members, alpha=2.5, tau=7.0, sigma=None):
    if sigma is None:
        sigma = tau ** (alpha - 1.0)
    c = sigma * np.sqrt(2.0 * grid.size) * (grid.k2 + tau**2) ** (-alpha / 2)
    c[0, 0] = 0.0
    (w_hat,) = _shaped_noise(grid, seed, members, c)
    return fft.transforms(grid.shape).to_physical(w_hat)


def random_velocity(grid, seed, members, peak_wavenumber=4.0, max_velocity=7.0):
    k = np.sqrt(grid.k2)
    logk = np.log(np.where(k > 0, k, 1.0))
    mean = np.log(peak_wavenumber) + 0.25
    density = np.where(k > 0, np.exp(-((logk - mean) ** 2) / 0.5 - logk) / np.where(k > 0, k, 1.0), 0.0)
    u_hat, v_hat = _shaped_noise(grid, seed, members, density, components=2)
    kx, ky = np.meshgrid(grid.kx, grid.ky)
    w_hat = 1j * kx * v_hat - 1j * ky * u_hat
    # velocity of the solenoidal part, to normalise the maximum speed per member
    psi = w_hat * grid.inv_k2
    tr = fft.transforms(grid.shape)
    u, v = tr.to_physical(1j * ky * psi), tr.to_physical(-1j * kx * psi)
    speed = np.sqrt(u**2 + v**2).max(axis=(1, 2))
    return tr.to_physical(w_hat) * (max_velocity / speed)[:, None, None]


def taylor_green(grid, members, wavenumber=1, amplitude=2.0):
    X, Y = grid.mesh()
    kx, ky = 2 * np.pi * wavenumber / grid.Lx, 2 * np.pi * wavenumber / grid.Ly
    field = amplitude * np.sin(kx * X) * np.sin(ky * Y)
    return np.broadcast_to(field, (len(members),) + grid.shape).copy()


def pyqg_random(grid, seed, members, amplitude=1e-7, zonal_amplitude=1e-6):
    out = np.zeros((len(members), 2) + grid.shape)
    for row, member in enumerate(members):
        gen = rng.generator(seed, member, "initial_condition")
        out[row, 0] = amplitude * gen.random(grid.shape) + zonal_amplitude * gen.random((1, grid.nx))
    return out


def random_packet(grid, seed, members, amplitude, width, center, wavenumber=0.0):
    """(M, *grid.shape) packets a cos(wavenumber x) exp(-|x - center|^2/s^2), a and s
    drawn as (mean, variance) normals from each member's stream."""
    coords = list(grid.coordinates().values())
    mesh = np.meshgrid(*coords, indexing="ij")  # in field axis order, (y, x) or (x,)
    r2 = sum((axis - c) ** 2 for axis, c in zip(mesh, center))
    carrier = np.cos(wavenumber * mesh[-1])
    out = np.empty((len(members),) + grid.shape)
    for row, member in enumerate(members):
        gen = rng.generator(seed, member, "initial_condition")
        a = gen.normal(amplitude[0], np.sqrt(amplitude[1]))
        s = gen.normal(width[0], np.sqrt(width[1]))
        out[row] = a * carrier * np.exp(-r2 / s**2)
    return out


def from_file(grid, members, path, variable, shape, key="initial_condition.path"):
    """Load and check an initial field of one member's ``shape``; errors name the file and key."""
    if not os.path.exists(path):
        raise CaseError(f"{key}: file '{path}' does not exist")
    try:
        if path.endswith(".npy"):
            data = np.load(path, allow_pickle=False)
        else:
            import netCDF4

            with netCDF4.Dataset(path) as ds:
                if variable not in ds.variables:
                    raise CaseError(f"{key}: '{path}' has no variable '{variable}'")
                data = np.asarray(ds.variables[variable][...])
    except CaseError:
        raise
    except Exception as exc:  # unreadable or wrong format
        raise CaseError(f"{key}: cannot read '{path}' as .npy or netCDF ({exc.__class__.__name__})") from None
    data = np.asarray(data, dtype=np.float64)
    shape = tuple(shape)
    if data.shape == shape:
        data = np.broadcast_to(data, (len(members),) + shape)
    elif data.ndim == len(shape) + 1 and data.shape[0] > max(members) and data.shape[1:] == shape:
        data = data[np.asarray(members)]  # row m is member m's field
    else:
        raise CaseError(f"{key}: '{path}' holds shape {data.shape}, expected {shape} or "
                        f"(members, {', '.join(map(str, shape))}) with a row for member {max(members)}")
    if not np.all(np.isfinite(data)):
        raise CaseError(f"{key}: '{path}' contains NaN or Inf")
    return np.array(data)


def make_initial(spec, grid, seed, members, case_dir=None, field="vorticity", shape=None):
    """The initial ``field``, (M, *shape), for the case's ``[initial_condition]`` table.

    ``shape`` is one member's field shape (default ``grid.shape``).  A relative ``file``
    path is read from the working directory, or else from the case file's folder
    ``case_dir``.
    """
    params = {k: v for k, v in spec.items() if k != "type"}
    if "path" in params:
        params["path"] = resolve_path(params["path"], case_dir)
    kind = spec["type"]
    if kind == "gaussian_random_field":
        return gaussian_random_field(grid, seed, members, **params)
    if kind == "random_velocity":
        return random_velocity(grid, seed, members, **params)
    if kind == "taylor_green":
        return taylor_green(grid, members, **params)
    if kind == "random_packet":
        return random_packet(grid, seed, members, **params)
    if kind == "pyqg_random":
        return pyqg_random(grid, seed, members, **params)
    params["variable"] = params.get("variable") or field
    return from_file(grid, members, shape=shape or grid.shape, **params)
