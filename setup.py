from setuptools import find_packages, setup

setup(
    name="hybridsolver",
    version="0.1.0",
    description="Ensemble spectral PDE host solver with TorchScript closure plugins",
    packages=find_packages(include=["hybridsolver", "hybridsolver.*"]),
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "pyfftw>=0.13",
        "netCDF4>=1.6",
        "xarray>=2023.1",
        "tqdm>=4.60",
        "tomli-w>=1.0",
    ],
    extras_require={
        "test": ["pytest>=7", "jax>=0.4.20", "jax-cfd>=0.2.1"],
    },
    entry_points={"console_scripts": ["hybridsolver = hybridsolver.cli:main"]},
)
