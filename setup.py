"""The one thing pyproject.toml cannot say: Strom's optional C module.

``strom._speedups`` (the hash partitioner's per-record loop, strom/_speedups.c) is built where
a C compiler and Python's headers are found; where they are not, the install goes on without
it (``optional=True``) and Strom runs the same loop in Python, placing every key the same way.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("strom._speedups", ["strom/_speedups.c"], optional=True)])
