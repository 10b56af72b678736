"""Packaging shim: the metadata lives in pyproject.toml; this file stays because the layout names it."""

from setuptools import setup

setup()
