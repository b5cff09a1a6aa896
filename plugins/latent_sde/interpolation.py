"""Deep kernel interpolation in time (Course & Nair's amortised SVI, as the latent-SDE
paper uses it): the encoder's means at the snapshot times of a segment
become smooth functions of time with time derivatives, so the drift residual can be
evaluated at any time of the segment.

A value v_j (..., n) known at times tau_j (T,) is interpolated as

    v(t) = k(h(t), h(tau)) (K + eps I)^-1 v,    K = k(h(tau), h(tau)),

with the RBF kernel k(a, b) = exp(-(a - b)^2 / (2 l^2)) on a learned warping of time
h(tau) = tau + MLP(tau) (one tanh hidden layer), and

    dv/dt = dk/dt (K + eps I)^-1 v,    dk(h(t), h_j)/dt = -(h(t) - h_j) / l^2 k h'(t),

h'(t) taken analytically.  Times are those of the segment shifted and scaled to [0, 1].
"""
import torch
from torch import nn


class TimeWarp(nn.Module):
    """h(tau) = tau + w2 . tanh(w1 tau + b1) + b2 and its derivative (scalar tau)."""

    def __init__(self, width=16):
        super().__init__()
        self.inner = nn.Linear(1, width)
        self.outer = nn.Linear(width, 1)
        nn.init.zeros_(self.outer.weight)  # the identity warp at the start
        nn.init.zeros_(self.outer.bias)

    def forward(self, tau):
        """``(h, dh/dtau)``, each of ``tau``'s shape (times, any shape)."""
        a = torch.tanh(self.inner(tau.unsqueeze(-1)))  # (..., width)
        h = tau + self.outer(a).squeeze(-1)
        slope = 1.0 + ((1.0 - a * a) * self.inner.weight[:, 0] * self.outer.weight[0]).sum(-1)
        return h, slope


class KernelInterpolator(nn.Module):
    """RBF interpolation of snapshot values on a learned time warping.

    ``length`` the kernel's length scale in units of the segment (learned through its
    log), ``jitter`` eps added to K's diagonal."""

    def __init__(self, length=0.05, jitter=1e-6, width=16):
        super().__init__()
        self.warp = TimeWarp(width)
        self.log_length = nn.Parameter(torch.tensor(float(length)).log())
        self.jitter = jitter

    def weights(self, tau, t):
        """``(W, dW/dt)``, each (len(t), len(tau)): v(t) = W v(tau) and dv/dt = dW/dt v(tau)."""
        length2 = torch.exp(2 * self.log_length)
        h_tau, _ = self.warp(tau)
        h_t, slope = self.warp(t)
        gram = torch.exp(-(h_tau[:, None] - h_tau[None, :]) ** 2 / (2 * length2))
        gram = gram + self.jitter * torch.eye(len(tau), dtype=gram.dtype, device=gram.device)
        diff = h_t[:, None] - h_tau[None, :]
        cross = torch.exp(-diff ** 2 / (2 * length2))
        d_cross = -diff / length2 * cross * slope[:, None]
        solve = torch.linalg.solve(gram, torch.cat([cross, d_cross]).T).T  # K is symmetric
        return solve[:len(t)], solve[len(t):]

    def forward(self, tau, values, t):
        """``(v(t), dv/dt)`` of ``values`` (..., T, n) known at ``tau`` (T,), at times
        ``t`` (S,): each (..., S, n)."""
        w, dw = self.weights(tau, t)
        return w @ values, dw @ values
