"""The multiscale latent-SDE model: encoder, latent drift and diffusion, and the
product-of-experts decoder, with its amortised ELBO on a segment of snapshots.

Latent z = [zeta; eta]: zeta (channels, *coarse grid) the macroscale field, eta (n_eta,)
the microscale latent.  The encoder gives z's mean, mu_zeta = T_r S y and
mu_eta = E(y - S y), and a constant diagonal variance; the SDE is dz = gamma(z, t) dt
+ L dbeta with gamma = [f(zeta, phi(eta)); g(eta, psi(zeta), t)], L diagonal and
constant (softplus); the likelihood is the product of N(y | T_p zeta, Sigma_zeta) and
N(y - T_p zeta | D(eta), Sigma_eta) (:mod:`likelihood`).

The macroscale drift is local and shared by the nodes: node j's tendency is an MLP of the
(2q + 1)^d stencil of zeta around it (periodic wrap, every channel) and phi_j(eta) (the
identity for KdV and Burgers; for the cylinder, ``coupling``, phi_j = eta + MLP(eta,
cos t, sin t, x_j, y_j) with the node's coordinates scaled to [0, 1), so that the drift
knows where the body is).  The microscale drift g is an MLP of
[sin t, cos t, psi(zeta), eta] (psi the identity for KdV, a learned linear map to n_eta
values otherwise).
"""
import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from .interpolation import KernelInterpolator
from .likelihood import combine, gaussian_log_density
from .networks import MicroDecoder, MicroEncoder, mlp
from .operators import ScaleOperators
from .residual import drift_residual, residual_energy


@dataclass
class Config:
    """One problem's architecture (the paper's appendix G.4)."""
    grid: tuple                     # (n,) or (ny, nx) fine points
    channels: int                   # d_u
    stride: int                     # sigma per axis
    kernel: int                     # smoothing kernel points per axis (6 sigma + 1 or 4 sigma + 1)
    n_eta: int = 0                  # microscale latent size (0: the implicit-scale model)
    micro_widths: tuple = (4, 16, 64)
    micro_kernel: int = 25
    micro_stride: int = 2
    stencil: int = 2                # q: the macro drift sees 2 q + 1 nodes per axis
    macro_hidden: tuple = (128, 128)
    micro_hidden: tuple = (128, 512, 128)
    psi_linear: bool = False        # psi(zeta): a linear map to n_eta values (else the identity)
    coupling: bool = False          # phi_j(eta) = eta + MLP(eta, cos t, sin t, node coordinates) (else eta)
    coupling_hidden: tuple = (128, 128)

    @property
    def coarse(self):
        return tuple(n // self.stride for n in self.grid)

    @property
    def n_zeta(self):
        return self.channels * math.prod(self.coarse)


KDV = Config(grid=(1000,), channels=1, stride=50, kernel=301)
BURGERS = Config(grid=(128, 128), channels=1, stride=16, kernel=97, micro_widths=(16, 32, 64), micro_kernel=9,
                 micro_stride=4, macro_hidden=(128, 512, 128), micro_hidden=(512, 256, 128), psi_linear=True)
CYLINDER = Config(grid=(80, 320), channels=2, stride=10, kernel=41, micro_widths=(16, 32, 64), micro_kernel=9,
                  micro_stride=4, macro_hidden=(128, 512, 128), micro_hidden=(128, 256, 128), psi_linear=True,
                  coupling=True)


def node_coordinates(coarse):
    """(nodes, d) coordinates in [0, 1) of the coarse grid's nodes, in :func:`stencils`'
    order (row-major), x first: (i_x / n_x, i_y / n_y) in 2D, (i / n,) in 1D."""
    axes = [torch.arange(n, dtype=torch.float64) / n for n in coarse]
    if len(coarse) == 1:
        return axes[0][:, None]
    y, x = torch.meshgrid(axes[0], axes[1], indexing="ij")
    return torch.stack([x.flatten(), y.flatten()], dim=1)


def stencils(zeta, q):
    """The (2q+1)^d periodic neighbourhoods of every node of ``zeta`` (B, C, *coarse):
    (B, nodes, C (2q+1)^d)."""
    dims = zeta.dim() - 2
    padded = F.pad(zeta, (q, q) * dims, mode="circular")
    size = 2 * q + 1
    if dims == 1:
        patches = padded.unfold(2, size, 1)  # (B, C, n, size)
        return patches.permute(0, 2, 1, 3).flatten(2)
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # (B, C, ny, nx, size, size)
    return patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)


class LatentSDE(nn.Module):
    """The model of one :class:`Config`, its parameters of ``dtype`` (float32 trains several
    times faster on the CPU: torch's float64 convolutions have no fast path)."""

    def __init__(self, config, dtype=torch.float64):
        super().__init__()
        c = self.config = config
        self.ops = ScaleOperators(c.grid, c.channels, c.stride, c.kernel)
        n_y = c.channels * math.prod(c.grid)
        self.log_var_zeta = nn.Parameter(torch.full((c.channels,) + c.grid, math.log(1e-2), dtype=torch.float64))
        self.log_var_z = nn.Parameter(torch.full((c.n_zeta + c.n_eta,), math.log(1e-2), dtype=torch.float64))
        self.raw_diffusion = nn.Parameter(torch.full((c.n_zeta + c.n_eta,), -3.0, dtype=torch.float64))
        stencil_inputs = c.channels * (2 * c.stencil + 1) ** len(c.grid)
        self.macro_drift = mlp((stencil_inputs + c.n_eta,) + tuple(c.macro_hidden) + (c.channels,))
        if c.n_eta:
            args = (c.grid, c.channels, c.micro_widths, c.micro_kernel, c.micro_stride, c.n_eta)
            self.encoder, self.decoder = MicroEncoder(*args), MicroDecoder(*args)
            self.log_var_eta = nn.Parameter(torch.full((c.channels,) + c.grid, math.log(1e-2), dtype=torch.float64))
            self.psi = nn.Linear(c.n_zeta, c.n_eta) if c.psi_linear else nn.Identity()
            coupled = c.n_eta if c.psi_linear else c.n_zeta
            self.micro_drift = mlp((2 + coupled + c.n_eta,) + tuple(c.micro_hidden) + (c.n_eta,))
            if c.coupling:
                self.coupling = mlp((c.n_eta + 2 + len(c.grid),) + tuple(c.coupling_hidden) + (c.n_eta,))
        self.register_buffer("coordinates", node_coordinates(c.coarse), persistent=False)
        self.interpolator = KernelInterpolator()
        self.n_y = n_y
        self.to(dtype)

    # -- latent layout
    def split(self, z):
        """(zeta (B, C, *coarse), eta (B, n_eta)) of z (B, n_z)."""
        c = self.config
        return z[:, :c.n_zeta].reshape((-1, c.channels) + c.coarse), z[:, c.n_zeta:]

    def diffusion_var(self):
        """L^2, (n_z,)."""
        return F.softplus(self.raw_diffusion) ** 2

    # -- encoder, drift, decoder
    def encode(self, y):
        """Mean (B, n_z) of z given y (B, C, *grid); the variance is exp(log_var_z)."""
        zeta = self.ops.restrict(y).flatten(1)
        if not self.config.n_eta:
            return zeta
        return torch.cat([zeta, self.encoder(y - self.ops.smooth(y))], dim=1)

    def drift(self, z, t):
        """gamma(z, t), (B, n_z); ``t`` (B,) times."""
        zeta, eta = self.split(z)
        local = stencils(zeta, self.config.stencil)  # (B, nodes, inputs)
        if self.config.n_eta:
            phi = eta[:, None, :].expand(-1, local.shape[1], -1)
            if self.config.coupling:
                clock = torch.stack([torch.cos(t), torch.sin(t)], dim=1)[:, None, :].expand(-1, local.shape[1], -1)
                where = self.coordinates.to(z.dtype)[None].expand(z.shape[0], -1, -1)
                phi = phi + self.coupling(torch.cat([phi, clock, where], dim=2))
            local = torch.cat([local, phi], dim=2)
        f = self.macro_drift(local)  # (B, nodes, C)
        f = f.permute(0, 2, 1).flatten(1)  # the (C, *coarse) layout of zeta
        if not self.config.n_eta:
            return f
        inputs = torch.cat([torch.sin(t)[:, None], torch.cos(t)[:, None], self.psi(zeta.flatten(1)), eta], dim=1)
        return torch.cat([f, self.micro_drift(inputs)], dim=1)

    def decode(self, z):
        """(mu_y (B, C, *grid), var_y (C, *grid)) of the product of experts."""
        zeta, eta = self.split(z)
        m = self.ops.prolong(zeta)
        var_zeta = torch.exp(self.log_var_zeta)
        if not self.config.n_eta:
            return combine(m, var_zeta)[0], var_zeta
        mean, var = combine(m, var_zeta, self.decoder(eta), torch.exp(self.log_var_eta))
        return mean, var

    # -- training objective
    def elbo(self, y, t, generator=None, quadrature=None, residual_weight=1.0):
        """The segment's ELBO per snapshot and observed value, and its two terms.

        ``y`` (T, C, *grid) consecutive snapshots at times ``t`` (T,); one sample of z per
        expectation; the path integral by ``quadrature`` (default T) uniform times over the
        segment.  Returns ``(elbo, log_likelihood, residual)`` (scalars; elbo =
        (log_likelihood - residual_weight * residual) / (T n_y))."""
        T = y.shape[0]
        mean = self.encode(y)  # (T, n_z)
        var = torch.exp(self.log_var_z)
        z = mean + var.sqrt() * torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        mu_y, var_y = self.decode(z)
        log_likelihood = gaussian_log_density(y.flatten(1), mu_y.flatten(1), var_y.flatten()[None]).sum()
        span = t[-1] - t[0]
        tau = (t - t[0]) / span
        q = quadrature or T
        s = torch.rand(q, generator=generator, dtype=t.dtype)
        m_s, m_dot = self.interpolator(tau, mean, s)  # per unit tau
        m_dot = m_dot / span
        z_s = m_s + var.sqrt() * torch.randn(m_s.shape, generator=generator, dtype=m_s.dtype)
        times = t[0] + s * span
        r = drift_residual(z_s, m_s, m_dot, var, torch.zeros_like(var), self.drift(z_s, times), self.diffusion_var())
        residual = 0.5 * span * residual_energy(r, self.diffusion_var()).mean()
        elbo = (log_likelihood - residual_weight * residual) / (T * self.n_y)
        return elbo, log_likelihood, residual
