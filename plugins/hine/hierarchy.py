"""The HINE models: the hierarchy of pooled future frames, the four variants of one
backbone (:class:`~.network.HierarchicalUNet`) and their training loss.

Fields are normalised vorticity (the vorticity / 10), u (B, 1, n, n).  Level l's latent
is the fixed average pooling z^(l) = AvgPool(u, r_l) with r = (1, 2, 8) at 64² (latents
32² and 8², as the paper's r = (1, 8, 32) at 256²).  Variants (:data:`VARIANTS`):

- ``L1``: u_{n+1} = f(u_n);
- ``L2``: (u_{n+1}, z1_{n+2}) = f(u_n, z1_{n+1});
- ``L3``: (u_{n+1}, z1_{n+2}, z2_{n+3}) = f(u_n, z1_{n+1}, z2_{n+2}), the paper's HINE;
- ``history``: u_{n+1} = f(u_{n-1}, u_n), the 2-step-history baseline.

Every output is the input's counterpart plus the network's: u_{n+1} = u_n + out,
z^(l) = AvgPool(u_n, r_l) + head_l.  The case (:data:`A`, :data:`B`, :data:`C`) is embedded
and conditions every block.  Training samples (windows of 4 frames; the authors' code):
case A (7.5%) has the latents zero and supervises the z1 head against z1_{n+1}; case B
(7.5%, L3 only) has z1_{n+1} in and supervises the z2 head against z2_{n+2}; case C (the
rest) has every latent in and supervises every output.  The history baseline's case A
(7.5%) has the previous frame zero, which is how its rollout starts.  The loss per pixel
is d^2 + |d|, the full-resolution term weighted 2, averaged over the samples.
"""
import torch
from torch import nn
from torch.nn import functional as F

from .network import CPU, HierarchicalUNet

A, B, C = 0, 1, 2  # start-up cases: no latents, z1 only, all
VARIANTS = {"L1": 1, "L2": 2, "L3": 3, "history": 1}  # variant -> levels
RATIOS = (2, 8)  # pooling of z1 and z2 at 64^2
START_FRACTION = 0.075  # of each start-up case in training
FULL_WEIGHT = 2.0


def pool(u: torch.Tensor, ratio: int) -> torch.Tensor:
    """AvgPool(u, ratio): (B, 1, n / ratio, n / ratio)."""
    return F.avg_pool2d(u, [ratio, ratio])


class Emulator(nn.Module):
    """One variant: :meth:`step` (u_n, previous frame, z1, z2, case) -> (u_{n+1}, z1 out,
    z2 out), the outputs of levels the variant does not have left as the network gives
    them (unused)."""

    def __init__(self, variant, n=64, widths=CPU["widths"], modes=CPU["modes"], embedding=CPU["embedding"]):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant: expected one of {sorted(VARIANTS)}, got {variant!r}")
        self.variant = variant
        self.levels = VARIANTS[variant]
        self.history = variant == "history"
        self.n = int(n)
        self.ratios = [int(r) for r in RATIOS]
        self.net = HierarchicalUNet(2 if self.history else 1, 1, 3, n, widths, modes, embedding)

    def step(self, u: torch.Tensor, prev: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor,
             case: torch.Tensor):
        x = torch.cat([u, prev], dim=1) if self.history else u
        out, head1, head2 = self.net(x, z1, z2, case)
        return u + out, pool(u, self.ratios[0]) + head1, pool(u, self.ratios[1]) + head2

    def latent_shapes(self):
        """The (n1, n2) sizes of z1 and z2."""
        return self.n // RATIOS[0], self.n // RATIOS[1]


def draw_cases(model, count, generator):
    """The training cases of ``count`` samples (count,) int64."""
    r = torch.rand(count, generator=generator)
    case = torch.full((count,), C, dtype=torch.long)
    if model.levels >= 2 or model.history:
        case[r < START_FRACTION] = A
    if model.levels == 3:
        case[(r >= START_FRACTION) & (r < 2 * START_FRACTION)] = B
    return case


def pixel_loss(prediction, target):
    """Per sample mean of d^2 + |d|: (B,)."""
    d = prediction - target
    return (d * d + d.abs()).flatten(1).mean(dim=1)


def hine_loss(model, frames, generator):
    """The loss of windows ``frames`` (B, 4, n, n) normalised: frames 0..3 are u_n .. u_{n+3}
    (the history baseline: u_{n-1}, u_n, u_{n+1})."""
    b = frames.shape[0]
    case = draw_cases(model, b, generator).to(frames.device)
    f = frames[:, :, None]  # (B, 4, 1, n, n)
    n1, n2 = model.latent_shapes()
    zero1, zero2 = frames.new_zeros(b, 1, n1, n1), frames.new_zeros(b, 1, n2, n2)
    c = (case == C).to(frames.dtype)
    if model.history:
        u, target, prev = f[:, 1], f[:, 2], f[:, 0] * c[:, None, None, None]
        u_hat, _, _ = model.step(u, prev, zero1, zero2, case)
        return (FULL_WEIGHT * pixel_loss(u_hat, target)).mean()
    u = f[:, 0]
    z1_in = pool(f[:, 1], RATIOS[0]) * (case != A).to(frames.dtype)[:, None, None, None] if model.levels >= 2 else zero1
    z2_in = pool(f[:, 2], RATIOS[1]) * c[:, None, None, None] if model.levels == 3 else zero2
    u_hat, z1_hat, z2_hat = model.step(u, torch.zeros_like(u), z1_in, z2_in, case)
    loss = c * FULL_WEIGHT * pixel_loss(u_hat, f[:, 1])
    if model.levels >= 2:  # z1 of the next frame (case A) or of the one after (case C)
        a = (case == A).to(frames.dtype)
        z1 = [pool(f[:, k], RATIOS[0]) for k in (1, 2)]
        loss = loss + a * pixel_loss(z1_hat, z1[0]) + c * pixel_loss(z1_hat, z1[1])
    if model.levels == 3:  # z2 two frames on (case B) or three (case C)
        b_ = (case == B).to(frames.dtype)
        z2 = [pool(f[:, k], RATIOS[1]) for k in (2, 3)]
        loss = loss + b_ * pixel_loss(z2_hat, z2[0]) + c * pixel_loss(z2_hat, z2[1])
    return loss.mean()
