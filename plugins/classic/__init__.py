"""Classic closures (Smagorinsky, Leith, stochastic backscatter) as TorchScript plugins.

Importing this package loads nothing heavy: the torch modules are in ``closures``,
the numpy reference hooks in ``python_hooks``, the artifact paths in ``registry``.
"""
