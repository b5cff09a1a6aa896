"""DDPM noise schedules (Ho et al. 2020) shared by the SNS, Thermalizer and ACDM models.

Levels s = 0 .. S, s = 0 the clean field.  ``beta[s]`` (s >= 1) is the variance added at
level s, ``alpha = 1 - beta`` and ``alpha_bar[s] = prod_{k<=s} alpha[k]`` (``alpha_bar[0]
= 1``), so the forward process has the marginal

    x^s = sqrt(alpha_bar_s) x + sqrt(1 - alpha_bar_s) eps,   eps ~ N(0, I),

and the reverse (ancestral) step from a noise prediction eps_hat is

    x^{s-1} = (x^s - (1 - alpha_s) / sqrt(1 - alpha_bar_s) eps_hat) / sqrt(alpha_s) + sigma_s z,

with the posterior standard deviation sigma_s^2 = beta_s (1 - alpha_bar_{s-1}) / (1 - alpha_bar_s)
(0 at s = 1: no noise at the last step).  With the exact eps_hat of a known clean x this
is the mean of q(x^{s-1} | x^s, x) plus its spread.

- :meth:`NoiseSchedule.cosine` (SNS, Thermalizer): alpha_bar_s = f(s) / f(0),
  f(s) = cos^2(((s/S + 0.008) / 1.008) pi / 2), beta_s = 1 - alpha_bar_s / alpha_bar_{s-1}
  clipped at 0.999 (which changes only the last levels), alpha_bar recomputed from the
  clipped betas.
- :meth:`NoiseSchedule.linear` (ACDM): beta linear in s from (1000 / S) 1e-4 to
  (1000 / S) 0.02, Ho et al.'s range for 1000 levels scaled to S so that alpha_bar_S is
  as small for any S (the issue gives no range).

The schedule is an ``nn.Module`` with the coefficient tables as float64 buffers, so the
exported TorchScript plugins carry it; level arguments are integer tensors (B,), one
level per batch row, and fields are (B, ...) of any float dtype.
"""
import math

import torch
from torch import nn


class NoiseSchedule(nn.Module):
    """The tables of one DDPM schedule, ``beta`` (S + 1,) with ``beta[0] = 0``."""

    def __init__(self, beta):
        super().__init__()
        beta = torch.as_tensor(beta, dtype=torch.float64)
        if beta.ndim != 1 or beta.shape[0] < 2 or float(beta[0]) != 0.0:
            raise ValueError("beta must be (S + 1,) with beta[0] = 0 (the clean level)")
        if not bool(((beta[1:] > 0) & (beta[1:] < 1)).all()):
            raise ValueError("every beta[s], s >= 1, must lie in (0, 1)")
        alpha = 1.0 - beta
        alpha_bar = torch.cumprod(alpha, 0)
        sigma2 = torch.zeros_like(beta)
        sigma2[1:] = beta[1:] * (1.0 - alpha_bar[:-1]) / (1.0 - alpha_bar[1:])
        self.levels = int(beta.shape[0] - 1)
        self.register_buffer("beta", beta)
        self.register_buffer("alpha", alpha)
        self.register_buffer("alpha_bar", alpha_bar)
        self.register_buffer("sigma", sigma2.sqrt())

    @classmethod
    def cosine(cls, levels=1000, offset=0.008, max_beta=0.999):
        """The cosine schedule of ``levels`` levels (Nichol & Dhariwal's f, offset 0.008)."""
        s = torch.arange(levels + 1, dtype=torch.float64)
        f = torch.cos((s / levels + offset) / (1.0 + offset) * math.pi / 2) ** 2
        target = f / f[0]
        beta = torch.zeros(levels + 1, dtype=torch.float64)
        beta[1:] = (1.0 - target[1:] / target[:-1]).clamp(max=max_beta)
        return cls(beta)

    @classmethod
    def linear(cls, levels=200, first=1e-4, last=0.02):
        """beta linear from ``first`` to ``last`` (given for 1000 levels), scaled by 1000 / levels."""
        scale = 1000.0 / levels
        beta = torch.zeros(levels + 1, dtype=torch.float64)
        beta[1:] = torch.linspace(scale * first, scale * last, levels, dtype=torch.float64)
        return cls(beta)

    def _at(self, table: torch.Tensor, s: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """table[s] shaped (B, 1, ...) to broadcast over ``like`` (B, ...), in its dtype."""
        shape = [s.shape[0]] + [1] * (like.dim() - 1)
        return table[s].to(like.dtype).reshape(shape)

    @torch.jit.export
    def noise(self, x: torch.Tensor, s: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x^s = sqrt(alpha_bar_s) x + sqrt(1 - alpha_bar_s) eps: (B, ...)."""
        a = self._at(self.alpha_bar, s, x)
        return a.sqrt() * x + (1.0 - a).sqrt() * eps

    @torch.jit.export
    def reverse_step(self, x: torch.Tensor, s: torch.Tensor, eps_hat: torch.Tensor,
                     z: torch.Tensor) -> torch.Tensor:
        """x^{s-1} from x^s (B, ...) at levels s >= 1 (B,), the noise prediction ``eps_hat``
        and fresh noise ``z`` (weighted by sigma_s, which is 0 at s = 1)."""
        alpha = self._at(self.alpha, s, x)
        a = self._at(self.alpha_bar, s, x)
        mean = (x - (1.0 - alpha) / (1.0 - a).sqrt() * eps_hat) / alpha.sqrt()
        return mean + self._at(self.sigma, s, x) * z
