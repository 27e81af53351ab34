"""The one thing pyproject.toml cannot say: Strom's optional C modules.

``strom._speedups`` (the hash partitioner's per-record loop, strom/_speedups.c) and
``strom._records`` (record batches on the wire, strom/_records.c) are built where a C compiler
and Python's headers are found; where they are not, the install goes on without them
(``optional=True``) and Strom does the same work in Python: every key is placed the same way,
and batches are pickled (a frame in ``_records``' layout from another host is still read).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("strom._speedups", ["strom/_speedups.c"], optional=True),
        Extension("strom._records", ["strom/_records.c"], optional=True),
    ]
)
