"""Column encodings' numeric kernels against plain numpy forms of the same rule."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oicore import _kernels
from oicore import columns as C


def reference_decimal(values: np.ndarray, nulls: np.ndarray | None, hint: int | None):
    """The rule in numpy: the hint, else the smallest e <= MAX_SCALE with every non-null value finite,
    not -0.0, and rint(v * 10**e) / 10**e == v with |rint(v * 10**e)| < 2**53."""
    v = values if nulls is None else values[~nulls]
    if len(v) == 0:  # no values (or only nulls): scale 0
        return 0, np.zeros(len(values), np.int64)
    if not np.isfinite(v).all() or np.signbit(v[v == 0]).any():
        return None
    order = list(range(C.MAX_SCALE + 1))
    if hint is not None and 0 <= hint <= C.MAX_SCALE:
        order = [hint, *(e for e in order if e != hint)]
    with np.errstate(over="ignore", invalid="ignore"):  # huge values overflow: they fail the test below
        for e in order:
            k = np.rint(v * 10.0**e)
            if (np.abs(k) < 2**53).all() and np.array_equal(k / 10.0**e, v):
                full = np.rint(values * 10.0**e)
                if nulls is not None:
                    full[nulls] = 0
                return e, full.astype(np.int64)
    return None


decimals = st.one_of(
    st.integers(-(10**7), 10**7).map(lambda k: k / 10**6),  # fixed 6 decimals, as Open Images writes them
    st.integers(-1000, 1000).map(lambda k: k / 10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 2.0**53, 2.0**53 - 1, -(2.0**53 - 1), 9.765625e-05, 1e-9, 1e-10, 0.1 + 0.2]),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(decimals, max_size=40),
    hint=st.one_of(st.none(), st.integers(-1, C.MAX_SCALE + 1)),
    with_nulls=st.booleans(),
    data=st.data(),
)
def test_to_decimal_agrees_with_the_numpy_rule(values, hint, with_nulls, data):
    v = np.array(values, np.float64)
    nulls = np.array(data.draw(st.lists(st.booleans(), min_size=len(v), max_size=len(v))), bool) if with_nulls else None
    if nulls is not None:
        v[nulls] = 0.0  # the reader fills nulls with 0
    want = reference_decimal(v, nulls, hint)
    got = C.to_decimal(v, nulls, hint)
    if want is None:
        assert got is None
        return
    assert got is not None
    e, k = got
    assert e == want[0]
    assert np.array_equal(k.astype(np.int64), want[1])
    assert k.dtype == C.dtype_of(C.narrowest(min(0, int(want[1].min(initial=0))), max(0, int(want[1].max(initial=0)))))
    back = k.astype(np.float64) / 10.0**e
    keep = np.ones(len(v), bool) if nulls is None else ~nulls
    assert np.array_equal(back[keep], v[keep]) and not np.signbit(back[keep][back[keep] == 0]).any()


def test_to_decimal_in_chunks_on_a_pool_matches_one_pass(monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(7)
    v = rng.integers(0, 10**6, 5000) / 10**6
    v[123] = 3e-7  # one value needs scale 7 where the rest fit 6
    monkeypatch.setattr(C, "_SCAN_CHUNK", 64)
    with ThreadPoolExecutor(2) as pool:
        e, k = C.to_decimal(v, None, 6, pool=pool)
    assert e == 7 and k.dtype == np.uint32
    assert np.array_equal(k.astype(np.float64) / 1e7, v)


def test_decimal_kernels_refuse_bad_arguments():
    v = np.array([0.5, 1.25])
    with pytest.raises(ValueError, match="scale"):
        _kernels.decimal_check(v, 23)
    with pytest.raises(ValueError, match="null flags"):
        _kernels.decimal_check(v, 2, np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="contiguous integer array"):
        _kernels.decimal_fill(v, 2, np.zeros(2, np.float64))
    with pytest.raises(ValueError, match="contiguous integer array"):
        _kernels.decimal_fill(v, 2, np.zeros(3, np.int32))
    assert _kernels.decimal_check(v, 1) == (1, 0, 0)  # 1.25 needs two decimals
    assert _kernels.decimal_check(v, 2) == (-1, 0, 125)
    out = np.zeros(2, np.int16)
    _kernels.decimal_fill(v, 2, out)
    assert out.tolist() == [50, 125]


def test_longest_value_of_string_arrays_sliced_or_not():
    import pyarrow as pa

    from oicore.parts import _longest

    a = pa.array(["ab", "", "héllo", "xyz", "héllo"])
    assert _longest(a) == (6, 2)  # bytes, the first of equals
    assert _longest(a.slice(3)) == (6, 1)
    assert _longest(a.slice(1, 1)) == (0, 0)
    assert _longest(a.slice(5)) == (0, -1)
    assert _longest(pa.array(["a", "bcd"], pa.large_string())) == (3, 1)
    assert _kernels.longest_value(np.array([0], np.int32)) == (0, -1)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(decimals, max_size=40), hint=st.one_of(st.none(), st.integers(0, C.MAX_SCALE)), data=st.data())
def test_to_decimal_of_a_columns_chunks_equals_it_of_the_whole(values, hint, data):
    v = np.array(values, np.float64)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(v)), max_size=4)))
    pieces = np.split(v, cuts)
    whole, chunked = C.to_decimal(v, None, hint), C.to_decimal(pieces, None, hint)
    assert (whole is None) == (chunked is None)
    if whole is not None:
        assert whole[0] == chunked[0] and whole[1].dtype == chunked[1].dtype and np.array_equal(whole[1], chunked[1])


def test_to_decimal_refuses_a_null_mask_of_another_length():
    with pytest.raises(ValueError, match="null flags"):
        C.to_decimal([np.zeros(2), np.zeros(3)], np.zeros(4, bool))


@settings(max_examples=150, deadline=None)
@given(ids=st.lists(st.integers(0, 2**64 - 1) | st.sampled_from([0, 1, 2**63, 2**64 - 1]), max_size=30), sort=st.booleans())
def test_runs_of_sorted_ids_and_the_sortedness_check_agree_with_numpy(ids, sort):
    a = np.array(sorted(ids) if sort else ids, np.uint64)
    ordered = bool((a[1:] >= a[:-1]).all())
    assert _kernels.is_sorted(a) == ordered
    if not ordered:
        with pytest.raises(ValueError, match="decrease"):
            _kernels.runs(a)
        return
    unique, first, counts = _kernels.runs(a)
    want_unique, want_first, want_counts = np.unique(a, return_index=True, return_counts=True)
    assert unique.dtype == np.uint64 and np.array_equal(unique, want_unique)
    assert np.array_equal(first, want_first) and np.array_equal(counts, want_counts)


def test_sorted_positions_finds_each_id_or_says_one_is_missing():
    whole = np.array([3, 5, 9, 2**64 - 1], np.uint64)
    assert _kernels.sorted_positions(whole, np.array([5, 2**64 - 1], np.uint64)).tolist() == [1, 3]
    assert _kernels.sorted_positions(whole, np.array([], np.uint64)).tolist() == []
    assert _kernels.sorted_positions(whole, np.array([4], np.uint64)) is None
    assert _kernels.sorted_positions(whole, np.array([10], np.uint64)) is None


@settings(max_examples=150, deadline=None)
@given(parts=st.lists(st.lists(st.integers(0, 50) | st.integers(0, 2**64 - 1), max_size=20), min_size=1, max_size=5))
def test_merging_sorted_parts_is_a_stable_sort_of_them_one_after_another(parts):
    arrays = [np.sort(np.array(p, np.uint64)) for p in parts]
    whole = np.concatenate(arrays)
    order = np.argsort(whole, kind="stable")
    merged, selector = _kernels.merge_sorted(arrays)
    owner = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    assert np.array_equal(merged, whole[order]) and np.array_equal(selector, owner[order])
    for dtype in (np.uint8, np.int16, np.float32, np.int64, np.dtype("S3")):
        values = [(np.arange(len(a)) + 100 * i).astype(dtype) for i, a in enumerate(arrays)]  # S3: 3-byte items
        out = np.empty(len(whole), dtype)
        _kernels.merge_gather(selector, values, out)
        assert np.array_equal(out, np.concatenate(values)[order])
    positions = _kernels.part_positions(selector, len(arrays))
    inverse = np.empty(len(whole), np.int64)
    inverse[order] = np.arange(len(whole))
    assert all(np.array_equal(pos, inverse[owner == i]) for i, pos in enumerate(positions))


def test_merge_kernels_refuse_what_does_not_fit():
    with pytest.raises(ValueError, match="not sorted"):
        _kernels.merge_sorted([np.array([2, 1], np.uint64)])
    with pytest.raises(ValueError, match="1 to 255"):
        _kernels.merge_sorted([])
    selector = np.array([0, 1, 1], np.uint8)
    with pytest.raises(ValueError, match="rows per part"):
        _kernels.merge_gather(selector, [np.zeros(2, np.int32), np.zeros(2, np.int32)], np.empty(3, np.int32))
    with pytest.raises(ValueError, match="rows per part"):
        _kernels.merge_gather(np.array([0, 2], np.uint8), [np.zeros(1, np.int32), np.zeros(1, np.int32)], np.empty(2, np.int32))
    with pytest.raises(ValueError, match="one-dimensional"):
        _kernels.merge_gather(selector, [np.zeros(1, np.int32), np.zeros(2, np.int64)], np.empty(3, np.int32))
    with pytest.raises(ValueError, match="names part 2"):
        _kernels.part_positions(np.array([0, 2], np.uint8), 2)


@settings(max_examples=150, deadline=None)
@given(
    parts=st.lists(st.lists(st.integers(0, 40), max_size=15), min_size=1, max_size=4),
    export_only=st.integers(0, 2),
    presorted=st.booleans(),
)
def test_row_order_merges_sorted_parts_as_a_stable_sort_would(parts, export_only, presorted):
    from oicore.roworder import row_order

    ids = [np.array(sorted(p) if presorted else p, np.uint64) for p in parts]
    lookup_parts = max(len(ids) - export_only, 0)
    n_lookup = sum(len(x) for x in ids[:lookup_parts])
    joined = np.concatenate(ids)
    perm = np.concatenate([np.argsort(joined[:n_lookup], kind="stable"), np.arange(n_lookup, len(joined))])
    order, physical = row_order(ids, [bool((x[1:] >= x[:-1]).all()) for x in ids], lookup_parts)
    assert np.array_equal(physical, joined[perm])
    if order is None:
        assert np.array_equal(perm, np.arange(len(joined)))
        return
    assert (order.selector is not None) == (presorted or all((x[1:] >= x[:-1]).all() for x in ids[:lookup_parts]))
    assert np.array_equal(order.perm, perm)
    owner = np.repeat(np.arange(len(ids), dtype=np.uint8), [len(x) for x in ids])
    assert order.row_part().dtype == np.uint8 and np.array_equal(order.row_part(), owner[perm])
    values = [np.arange(len(x), dtype=np.int16) * 10 + i for i, x in enumerate(ids)]
    assert np.array_equal(order.gather(values), np.concatenate(values)[perm])
    inverse = np.empty(len(perm), np.int64)
    inverse[perm] = np.arange(len(perm))
    starts = np.cumsum([0] + [len(x) for x in ids])
    for i in range(len(ids)):
        assert np.array_equal(order.positions(i), inverse[starts[i] : starts[i + 1]])
