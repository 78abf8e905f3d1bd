"""Build the Cython extensions (metadata lives in pyproject.toml).

OICORE_DEBUG=1 builds -O0 -g with Cython's bounds checks on;
OICORE_SANITIZE=1 adds ASan and UBSan (run the tests with the sanitizer runtime preloaded).
"""

import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("OICORE_DEBUG") == "1"
SANITIZE = os.environ.get("OICORE_SANITIZE") == "1"

compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]
compile_args += ["-std=c11", "-Wall", "-Wno-unused-function", "-Wno-unreachable-code"]
link_args = []
if SANITIZE:
    compile_args += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
    link_args += ["-fsanitize=address,undefined"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": True,
    "initializedcheck": DEBUG,
}


def extension(name: str) -> Extension:
    return Extension(
        f"oicore.{name}",
        [f"src/oicore/{name}.pyx"],
        include_dirs=["include", numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION"), ("_GNU_SOURCE", "1")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )


EXTENSIONS = ["_csv", "_synth", "_checksum", "_render", "_lookup", "_textcodec", "_kernels"]
# OICORE_ONLY=_synth builds one extension in place while another is being edited (development only).
if os.environ.get("OICORE_ONLY"):
    EXTENSIONS = [n for n in EXTENSIONS if n in os.environ["OICORE_ONLY"].split(",")]

setup(
    ext_modules=cythonize(
        [extension(name) for name in EXTENSIONS],
        compiler_directives=directives,
        include_path=["src/oicore"],
    ),
)
