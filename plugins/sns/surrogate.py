"""The pointwise UNet surrogate of the SNS family: x_{t+1} = x_t + Psi(x_t), the baseline
emulator and the model that Thermalizer and SNS refine.

Fields are the vorticity divided by the training data's std (``scale``; the paper's is
4.44), (B, 1, n, n).  One emulator step (Delta t = 0.002, two DNS steps) changes the
normalised field by about 1% of its size, so the network predicts the increment in units
of its own std (``increment_scale``): x_{t+1} = x_t + increment_scale * UNet(x_t).

Training (:func:`unrolled_loss`, the paper's Appendix B.2 after Pedersen et al.): the
first frame of a window gets Gaussian input noise of std ``sigma`` (1e-4), the model is
unrolled over ``unroll`` steps on its own predictions, and the loss is the mean over the
unrolled steps of the squared error against the true frames, in units of the
increment's variance (so that 1 is the error of predicting no change).
"""
import torch
from torch import nn

from .unet import UNet

INPUT_NOISE = 1e-4


class Surrogate(nn.Module):
    """Psi and the step x -> x + increment_scale * Psi(x) on normalised fields (B, 1, n, n)."""

    def __init__(self, scale, increment_scale, widths, blocks):
        super().__init__()
        self.net = UNet(1, 1, widths, blocks)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("increment_scale", torch.tensor(float(increment_scale)))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """The next normalised frame (B, 1, n, n)."""
        return x + self.increment_scale * self.net(x)


def unrolled_loss(model, frames, unroll, sigma=INPUT_NOISE, generator=None):
    """The multi-step loss of a window: ``frames`` (B, >= unroll + 1, n, n) normalised;
    returns the mean over ``unroll`` steps of mean((x_hat_t - x_t)^2) / increment_scale^2."""
    x = frames[:, :1]
    x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype).to(x.device)
    total = frames.new_zeros(())
    for t in range(1, unroll + 1):
        x = model.step(x)
        total = total + ((x - frames[:, t:t + 1]) ** 2).mean()
    return total / (unroll * model.increment_scale ** 2)


def curriculum(step, steps, longest=4):
    """The unroll length at optimizer step ``step`` of ``steps``: 1, 2, ..., ``longest`` in
    equal parts of the training."""
    return min(longest, 1 + step * longest // steps)
