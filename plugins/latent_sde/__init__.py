"""The stochastic multiscale latent-SDE emulator (Ilersich & Nair, "Learning stochastic
multiscale models", NeurIPS 2025): its likelihood, time interpolation and drift residual
(README.md says what is built and what is next)."""
