"""The warm allocator a convert's arrays come from (include/oic_warm.h, oicore/warm.py)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oicore import warm

MB = 1 << 20


try:
    from numpy._core.multiarray import get_handler_name
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import get_handler_name


def handler_name(array=None) -> str:
    return get_handler_name() if array is None else get_handler_name(array)


def test_arrays_come_from_the_warm_allocator_only_inside():
    before = handler_name()
    with warm.warm_arrays():
        assert handler_name() == "oicore_warm"
        assert handler_name(np.empty(3)) == "oicore_warm"
    assert handler_name() == before
    # Another thread's arrays are numpy's own unless it asks.
    seen = []
    with warm.warm_arrays():
        t = threading.Thread(target=lambda: seen.append(handler_name()))
        t.start()
        t.join()
    assert seen == [before]


def test_a_freed_block_is_reused_and_zeros_are_zeros():
    with warm.converting(64 * MB), warm.warm_arrays():
        a = np.full(3 * MB, 0xAB, np.uint8)
        del a
        hits = warm.stats()["hits"]
        assert warm.stats()["waiting_bytes"] >= 3 * MB
        b = np.zeros(3 * MB, np.uint8)  # calloc from the block that held 0xAB
        assert warm.stats()["hits"] == hits + 1
        assert not b.any()
        c = np.empty(3 * MB // 8, np.int64)
        c[:] = np.arange(len(c))
        assert (c == np.arange(len(c))).all()
    assert warm.stats()["waiting_bytes"] == 0  # the last convert out unmaps what waits
    # Arrays made inside and freed outside are unmapped, not kept.
    del b, c
    assert warm.stats()["waiting_bytes"] == 0


def test_outside_a_convert_nothing_waits():
    with warm.warm_arrays():
        a = np.ones(4 * MB, np.uint8)
        del a
    assert warm.stats()["waiting_bytes"] == 0


def test_waiting_bytes_stay_under_the_limit():
    limit = 16 * MB
    with warm.converting(limit), warm.warm_arrays():
        arrays = [np.ones(5 * MB, np.uint8) for _ in range(8)]
        for a in arrays:
            a[::4096] = 7
        del a
        while arrays:
            arrays.pop()
            assert warm.stats()["waiting_bytes"] <= limit
        big = np.ones(2 * limit, np.uint8)  # larger than the limit: unmapped at once when freed
        del big
        assert warm.stats()["waiting_bytes"] <= limit


@pytest.mark.parametrize("sizes", [(10, 5 * MB), (5 * MB, 10), (2 * MB, 9 * MB), (9 * MB, 5 * MB), (0, 3 * MB), (3 * MB, 0)])
def test_resize_keeps_the_values(sizes):
    old, new = sizes
    with warm.converting(), warm.warm_arrays():
        a = np.arange(old, dtype=np.uint8)  # wraps every 256
        a.resize(new, refcheck=False)
        keep = min(old, new)
        assert (a[:keep] == np.arange(keep, dtype=np.uint8)).all()
        if new > old:
            assert not a[old:].any()  # numpy zeroes what a resize adds


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["new", "drop", "grow"]), st.integers(0, 6 * MB)), max_size=25), st.integers(2, 40))
def test_random_sequences_keep_every_array_intact(ops, limit_mb):
    with warm.converting(limit_mb * MB), warm.warm_arrays():
        alive: list[tuple[np.ndarray, int]] = []
        for k, (op, size) in enumerate(ops):
            if op == "new" or not alive:
                a = np.full(size, k % 251, np.uint8) if k % 2 else np.zeros(size, np.uint8) + k % 251
                alive.append((a, k % 251))
            elif op == "drop":
                alive.pop(size % len(alive))
            else:
                i = size % len(alive)
                a, fill = alive[i]
                old = len(a)
                a = np.resize(a, size)  # a new array: numpy repeats the values, or gives zeros for none
                fill = fill if old else 0
                alive[i] = (a, fill)
                assert (a == fill).all()
            assert warm.stats()["waiting_bytes"] <= limit_mb * MB
            for a, fill in alive:
                assert a.size == 0 or (a[0] == fill and a[-1] == fill and a[len(a) // 2] == fill)
        for a, fill in alive:
            assert (a == fill).all()


def test_threads_share_the_waiting_blocks():
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        with warm.warm_arrays():
            for _ in range(60):
                n = int(rng.integers(MB, 4 * MB))
                a = np.full(n, seed, np.uint8)
                if not (a[:: 4096] == seed).all():
                    errors.append(seed)

    with warm.converting(32 * MB):
        threads = [threading.Thread(target=work, args=(s,)) for s in range(1, 5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert warm.stats()["waiting_bytes"] <= 32 * MB
    assert errors == []
    assert warm.stats()["waiting_bytes"] == 0


def test_convert_leaves_nothing_waiting(tmp_path):
    from oicore import convert, synth

    synth(tmp_path / "src", scale=0.005, seed=3, release="v3")  # some arrays of a MiB and more
    before = warm.stats()
    convert(tmp_path / "src", tmp_path / "out.oic", progress=False)
    after = warm.stats()
    assert after["waiting_bytes"] == 0 and after["active"] == 0
    assert after["hits"] + after["misses"] > before["hits"] + before["misses"]  # its arrays came from here
