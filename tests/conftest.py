"""Shared test set-up: hypothesis profiles and the readers under test.

HYPOTHESIS_PROFILE=long runs the round trips with 2,000 examples each (default: ci, 50).
"""

import os
from pathlib import Path

import pytest
from hypothesis import settings

# "ci" keeps no example database, so that tests write nothing outside pytest's temporary directories.
settings.register_profile("ci", max_examples=50, deadline=None, print_blob=True, database=None)
settings.register_profile("long", max_examples=2000, deadline=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Real Open Images files, outside the repository (see its README.md).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

# Small block sizes make the fast reader cut records, fields, quotes and CRLFs between blocks.
BLOCK_SIZES = (11, 13, 37, 111, None)


def _fast_read_csv():
    from oicore import read_csv

    return read_csv


def make_reader(impl: str, block_size=None):
    """A function ``read(path, kind=None, block_size=None)`` for ``impl`` ("reference" or "fast").

    ``block_size`` given here is the default; the reference reader ignores it.
    """
    if impl == "reference":
        from oicore.reference import read_csv_reference

        def read(path, kind=None, block_size=None):
            return read_csv_reference(path, kind)

        return read
    read_csv = _fast_read_csv()
    default_bs = block_size

    def read(path, kind=None, block_size=default_bs):
        if block_size is None:
            return read_csv(path, kind=kind)
        return read_csv(path, kind=kind, block_size=block_size)

    return read


@pytest.fixture(scope="session", params=["reference", "fast"])
def reader(request):
    """Each implementation, as ``read(path, kind=None, block_size=None)``."""
    return make_reader(request.param)


@pytest.fixture(
    scope="session",
    params=[("reference", None)] + [("fast", bs) for bs in BLOCK_SIZES],
    ids=["reference"] + [f"fast-bs{bs or 'default'}" for bs in BLOCK_SIZES],
)
def blocked_reader(request):
    """The reference, and the fast reader at each block size of BLOCK_SIZES."""
    return make_reader(*request.param)


@pytest.fixture(scope="session")
def fast_reader():
    """The fast reader alone (skips while it is not built)."""
    return make_reader("fast")
