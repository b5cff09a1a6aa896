"""The Smagorinsky closure written as a Python hook (numpy), for prototyping and as an
independent check of the TorchScript artifact (tests/test_plugins.py).

Same closure as :class:`closures.Smagorinsky`, computed from the spectral state with
numpy's FFTs: ``nu_t = (cs delta)^2 |S|`` and the vorticity tendency is the curl of
``div(2 nu_t S)``, returned as an unnormalised rfft2 like the state.
"""
import numpy as np

from hybridsolver.hooks import Hook


class SmagorinskyHook(Hook):
    """Tendency hook: Smagorinsky eddy viscosity with constant ``cs`` (default 0.17)."""

    callsite = "tendency"

    def __init__(self, cs=0.17, **schedule):
        super().__init__(**schedule)
        self.cs = cs

    def start(self, sim):
        g = sim.grid
        ny, nx = g.shape
        self.shape = g.shape
        kx, ky = g.kx.copy(), g.ky.copy()
        if nx % 2 == 0:
            kx[nx // 2] = 0.0  # Nyquist: derivatives of real fields stay real
        if ny % 2 == 0:
            ky[ny // 2] = 0.0
        self.kx, self.ky = kx[None, :], ky[:, None]
        self.inv_k2 = g.inv_k2
        self.delta = np.sqrt(g.dx * g.dy)

    def _real(self, f_hat):
        return np.fft.irfft2(f_hat, s=self.shape)

    def __call__(self, sim, state, previous=None):
        psi = state * self.inv_k2
        u_hat, v_hat = 1j * self.ky * psi, -1j * self.kx * psi
        s11 = self._real(1j * self.kx * u_hat)
        s12 = 0.5 * self._real(1j * self.ky * u_hat + 1j * self.kx * v_hat)
        nu = (self.cs * self.delta) ** 2 * 2.0 * np.sqrt(s11**2 + s12**2)
        t11_hat, t12_hat = np.fft.rfft2(2 * nu * s11), np.fft.rfft2(2 * nu * s12)
        return 2.0 * self.kx * self.ky * t11_hat + (self.ky**2 - self.kx**2) * t12_hat
