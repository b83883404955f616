"""The top-level ``conf/`` folder installs as the package ``cac_lightning.conf``.

Everything else is in pyproject.toml; setuptools' package discovery cannot map a folder that
lies outside the package, so the package list is completed here.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["cac_lightning*"]) + ["cac_lightning.conf"],
    package_dir={"cac_lightning.conf": "conf"},
)
