from setuptools import find_packages, setup

setup(
    name="hybridsolver",
    version="0.1.0",
    description="Ensemble spectral PDE host solver with TorchScript closure plugins",
    # plugins/ installs as hybridsolver_plugins (a top-level "plugins" package would clash)
    packages=find_packages(include=["hybridsolver", "hybridsolver.*"])
    + ["hybridsolver_plugins." + p for p in find_packages("plugins")] + ["hybridsolver_plugins"],
    package_dir={"hybridsolver_plugins": "plugins"},
    package_data={"hybridsolver_plugins": ["*/artifacts/*.pt", "*/artifacts/*.npy", "*/artifacts/*.nc", "*/README.md"]},
    python_requires=">=3.11",
    install_requires=[
        "numpy>=1.24",
        "numba>=0.59",
        "pyfftw>=0.13",
        "netCDF4>=1.6",
        "xarray>=2023.1",
        "tqdm>=4.60",
        "tomli-w>=1.0",
        "torch>=2.1",  # CI pins the CPU build 2.13.0 (.ci/constraints.txt)
        "matplotlib>=3.5",  # hybridsolver report; closed-loop plots of plugins/lcdm/evaluate
        "dask[distributed]>=2024.1",  # hybridsolver run --dask: member chunks as tasks on a Dask cluster (issue #7)
    ],
    extras_require={
        # pyqg 0.7.2 builds only with Cython<3 and numpy<2: install with PIP_CONSTRAINT=.ci/constraints.txt
        # ruff: the lint .ci/run runs before the tests (pyproject.toml; pinned in .ci/constraints.txt)
        # compliance-checker, cf-xarray: the CF checks of the files we write (tests/test_cf.py);
        # mkdocs-material, mkdocstrings: the documentation site (mkdocs.yml), built with --strict
        "test": ["pytest>=7", "ruff>=0.6", "jax>=0.4.20", "jax-cfd>=0.2.1", "pyqg==0.7.2",
                 "compliance-checker>=5.1", "cf-xarray>=0.9", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.25"],
    },
    entry_points={
        "console_scripts": ["hybridsolver = hybridsolver.cli:main"],
        "hybridsolver.plugins": [f"{name} = hybridsolver_plugins.classic.registry:{name}"
                                 for name in ("smagorinsky", "leith", "backscatter")]
        + [f"{name} = hybridsolver_plugins.lcdm.registry:{name}" for name in ("lcdm", "lcdm_paper", "pcdm")]
        + [f"{name} = hybridsolver_plugins.qg_classic.registry:{name}"
           for name in ("qg_smagorinsky", "qg_zanna_bolton2020", "qg_backscatter_eddy", "qg_backscatter_jet")]
        + [f"{name} = hybridsolver_plugins.reference.registry:{name}"
           for name in ("linear_decay", "stochastic_relaxation", "band_refiner")]
        + [f"{name} = hybridsolver_plugins.latent_sde.registry:{name}"
           for name in ("latent_sde_kdv", "latent_sde_kdv_eta0", "latent_sde_burgers2d_eta0",
                         "latent_sde_cylinder_eta0")]
        + [f"{name} = hybridsolver_plugins.sns.registry:{name}"
           for name in ("sns_unet", "sns_refined", "sns_corrector")]
        + [f"{name} = hybridsolver_plugins.hine.registry:{name}"
           for name in ("hine_l1", "hine_l2", "hine_l3", "hine_history")],
    },
)
