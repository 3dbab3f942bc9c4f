"""Build hook: cffi compiles csrc/ into the extension module vecdb._core (see vecdb/_ffi_build.py)."""

from setuptools import setup

setup(cffi_modules=["vecdb/_ffi_build.py:ffibuilder"])
