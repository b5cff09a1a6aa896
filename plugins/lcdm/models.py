"""L-CDM and P-CDM: conditional diffusion models of the closure term H given the vorticity.

Fields are normalised by scalars fitted on the training set (``omega / omega_scale``,
``H / h_scale``; both have zero mean on the torus).  The diffusion is the
variance-exploding SDE ``dz = sigma^tau dW``, tau in [0, 1], whose marginal is
``z_tau = z_0 + std(tau) eps`` with ``std(tau)^2 = (sigma^(2 tau) - 1) / (2 ln sigma)``;
the score model is trained by denoising score matching (:func:`denoising_loss`).

- :class:`LatentCDM`: an autoencoder for omega (E_w, D_w), a variational one for H
  (E_H gives a mean and log-variance; D_H), both 64^2 -> 16^2 with one latent
  channel, and the score model on 16^2 latents conditioned on ``E_w(omega)``.  The
  diffusion runs on the posterior mean of ``E_H(H)``.  :meth:`LatentCDM.losses`
  returns the four terms of the joint loss
  ``10 |H - D_H(E_H(H))|^2 + 0.1 |w - D_w(E_w(w))|^2 + 0.1 L_score + 0.01 KL``.
- :class:`PhysicalCDM`: the same score model on the 64^2 normalised fields (P-CDM).

Both sample with :class:`Sampler`, which is also the exported plugin module.
"""
import math
from typing import Dict, List

import torch
from torch import nn

from .nets import Decoder, Encoder, ScoreFNO

TAU_MIN = 1e-3  # smallest diffusion time, in training and sampling
SAMPLER = {"steps": 10, "samples": 1, "tau_max": 0.1, "tau_min": TAU_MIN, "rho": 7.0}  # closed-loop defaults


def marginal_std(tau, sigma: float):
    """std(tau) of the VE SDE dz = sigma^tau dW started at tau = 0 (tensor in, tensor out)."""
    return torch.sqrt((sigma ** (2 * tau) - 1) / (2 * math.log(sigma)))


def denoising_loss(score, z0, cond_features, sigma, tau_min, generator=None):
    """Denoising score matching for clean latents ``z0`` (B, 1, n, n), mean over the batch.

    With the score written through the denoiser, ``s = (D - z) / std^2``, the loss
    ``lambda(tau) |s - grad log p(z_tau | z_0)|^2`` with ``lambda = std^4`` is the
    denoising error ``|D(z_0 + std eps) - z_0|^2``.  ``tau`` is log-uniform on
    [tau_min, 1], so two thirds of the samples fall below tau = 0.1, the range the
    closed loop samples from.
    """
    u = torch.rand(z0.shape[0], device=z0.device, generator=generator)
    tau = tau_min ** (1 - u)
    std = marginal_std(tau, sigma)
    eps = torch.randn(z0.shape, device=z0.device, generator=generator)
    return ((score.denoise(z0 + std[:, None, None, None] * eps, tau, cond_features) - z0) ** 2).mean()


class LatentCDM(nn.Module):
    """The joint L-CDM: two autoencoders and a latent score model (see the module docstring)."""

    def __init__(self, omega_scale, h_scale, widths=(4, 16, 32), score_width=24, modes=4, sigma=25.0):
        super().__init__()
        self.config = {"kind": "lcdm", "widths": list(widths), "score_width": score_width, "modes": modes,
                       "sigma": sigma}
        self.omega_scale, self.h_scale, self.sigma = float(omega_scale), float(h_scale), float(sigma)
        self.enc_w, self.dec_w = Encoder(widths, 1), Decoder(widths)
        self.enc_h, self.dec_h = Encoder(widths, 2), Decoder(widths)
        self.score = ScoreFNO(16, score_width, modes)

    def parts(self):
        """Parameter groups: {'autoencoders': [...], 'score': [...]}."""
        ae = [p for m in (self.enc_w, self.dec_w, self.enc_h, self.dec_h) for p in m.parameters()]
        return {"autoencoders": ae, "score": list(self.score.parameters())}

    def encode_h(self, h):
        """(mean, logvar) of the H posterior, each (B, 1, 16, 16), for normalised ``h``."""
        moments = self.enc_h(h)
        return moments[:, :1], moments[:, 1:].clamp(-20.0, 10.0)

    def losses(self, omega, h, tau_min=TAU_MIN, generator=None):
        """The loss terms on a batch of normalised fields (B, 1, 64, 64):
        {'rec_h', 'rec_w', 'score', 'kl'}, each a scalar tensor (means per element)."""
        mean, logvar = self.encode_h(h)
        z_h = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, device=h.device, generator=generator)
        z_w = self.enc_w(omega)
        kl = 0.5 * (mean**2 + torch.exp(logvar) - 1 - logvar).mean()
        return {
            "rec_h": ((self.dec_h(z_h) - h) ** 2).mean(),
            "rec_w": ((self.dec_w(z_w) - omega) ** 2).mean(),
            "score": denoising_loss(self.score, mean, self.score.condition(z_w), self.sigma, tau_min, generator),
            "kl": kl,
        }

    def sampler(self):
        return Sampler(self.enc_w, self.dec_h, self.score, self.omega_scale, self.h_scale, self.sigma, latent=16)


class PhysicalCDM(nn.Module):
    """P-CDM: the score model on the 64^2 normalised fields, conditioned on omega itself."""

    def __init__(self, omega_scale, h_scale, score_width=24, modes=8, sigma=25.0):
        super().__init__()
        self.config = {"kind": "pcdm", "score_width": score_width, "modes": modes, "sigma": sigma}
        self.omega_scale, self.h_scale, self.sigma = float(omega_scale), float(h_scale), float(sigma)
        self.score = ScoreFNO(64, score_width, modes)

    def parts(self):
        return {"score": list(self.score.parameters())}

    def losses(self, omega, h, tau_min=TAU_MIN, generator=None):
        return {"score": denoising_loss(self.score, h, self.score.condition(omega), self.sigma, tau_min, generator)}

    def sampler(self):
        return Sampler(nn.Identity(), nn.Identity(), self.score, self.omega_scale, self.h_scale, self.sigma, latent=64)


class Sampler(nn.Module):
    """The closure as a plugin module: vorticity (B, 1, 64, 64) -> H (B, 1, 64, 64).

    ``forward(x, noise, options)`` follows hybridsolver's plugin signature.
    ``noise[0]``: (B, S, 1, n, n) initial latents, ``noise[1]``: (B, S, N, 1, n, n)
    Euler-Maruyama increments (standard normal, drawn by the host), with
    ``S = options['samples']`` samples per member and ``N = options['steps']``.  Each
    sample integrates the reverse SDE ``dz = -sigma^(2 tau) s(z, tau | c) dtau +
    sigma^tau dW`` from ``tau_max`` (``z = std(tau_max) noise[0]``) down to
    ``tau_min`` on the Karras grid ``tau_i = (tau_max^(1/rho) + i/N (tau_min^(1/rho) -
    tau_max^(1/rho)))^rho``; the decoded samples are averaged over S.
    """

    def __init__(self, encoder, decoder, score, omega_scale: float, h_scale: float, sigma: float, latent: int):
        super().__init__()
        self.encoder, self.decoder, self.score = encoder, decoder, score
        self.omega_scale, self.h_scale, self.sigma, self.latent = omega_scale, h_scale, sigma, latent

    def times(self, tau_max: float, tau_min: float, steps: int, rho: float) -> List[float]:
        a, b = tau_max ** (1.0 / rho), tau_min ** (1.0 / rho)
        return [(a + i / steps * (b - a)) ** rho for i in range(steps + 1)]

    def std(self, tau: float) -> float:
        return math.sqrt((self.sigma ** (2 * tau) - 1) / (2 * math.log(self.sigma)))

    def forward(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        batch, samples = x.shape[0], noise[1].shape[1]
        h = self.decode(self.sample_latent(x, noise, options))
        return h.reshape(batch, samples, 1, x.shape[2], x.shape[3]).mean(dim=1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """H in physical units (rows, 1, 64, 64) of latents (rows, 1, n, n)."""
        return self.decoder(z) * self.h_scale

    def sample_latent(self, x: torch.Tensor, noise: List[torch.Tensor], options: Dict[str, float]) -> torch.Tensor:
        """The S samples per member of the latent (normalised) H, (B S, 1, n, n), member-major."""
        batch, samples, steps = x.shape[0], noise[1].shape[1], noise[1].shape[2]
        n = self.latent
        cond = self.score.condition(self.encoder(x / self.omega_scale))
        cond = cond.repeat_interleave(samples, dim=0)
        times = self.times(options["tau_max"], options["tau_min"], steps, options["rho"])
        z = self.std(times[0]) * noise[0].reshape(batch * samples, 1, n, n)
        increments = noise[1].reshape(batch * samples, steps, 1, n, n)
        # one diffusion time for all rows: the time embedding is computed once and
        # broadcast, so no row depends on the batch size (small elementwise kernels
        # such as SiLU on (B, width) take a scalar tail path that depends on B)
        ones = torch.ones(1, device=x.device)
        for i in range(steps):
            tau, dtau = times[i], times[i] - times[i + 1]
            g2 = self.sigma ** (2 * tau)
            s = self.score(z, tau * ones, self.std(tau) * ones, cond)
            z = z + g2 * dtau * s + math.sqrt(g2 * dtau) * increments[:, i]
        return z
