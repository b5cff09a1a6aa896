"""The self-refining neural surrogate (SNS; Liu et al. 2025) with its baselines Thermalizer,
ACDM and a pointwise UNet, for long stable rollouts of Kolmogorov flow: so far the DDPM
noise schedules they share (:mod:`.schedule`) their residual UNet
backbone (:mod:`.unet`) and the data (:mod:`.generate`)."""
