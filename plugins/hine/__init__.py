"""The hierarchical implicit neural emulator family (Jiang et al., NeurIPS 2025): β-plane
jet turbulence, the HINE emulators of L = 1, 2, 3 levels and the 2-step-history baseline."""
