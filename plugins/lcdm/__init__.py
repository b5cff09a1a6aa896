"""L-CDM: latent conditional diffusion closure for stochastic Kolmogorov flow (issue #4)."""
