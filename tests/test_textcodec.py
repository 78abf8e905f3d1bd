"""Text encodings of the images table (FORMAT.md, "Text encodings"): exact round trips, lookups, damage.

Every round trip goes through a real ContainerWriter and Container, and decodes from the entries as the
directory JSON gives them back, not from the objects the encoder returned.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oicore import _textcodec as tc
from oicore import textcodec as T
from oicore.columns import encode_strings
from oicore.errors import FormatError
from oicore.format import Container, ContainerWriter

IMAGE_TEXT = ["OriginalURL", "OriginalLandingURL", "AuthorProfileURL", "Author", "Title", "OriginalMD5", "Thumbnail300KURL"]
_counter = itertools.count()


def arrays(values):
    """int64 offsets and bytes of a list of str (or bytes)."""
    raw = [v.encode("utf-8") if isinstance(v, str) else v for v in values]
    offsets = np.zeros(len(raw) + 1, np.int64)
    np.cumsum([len(b) for b in raw], out=offsets[1:])
    return offsets, b"".join(raw)


def write(tmp, columns: dict, pool=None):
    """Encode each column (in order) into one file; returns (container, entries by name from the directory)."""
    path = tmp / f"t{next(_counter)}.oic"
    with ContainerWriter(path) as w:
        out = []
        for name, values in columns.items():
            offsets, data = arrays(values)
            entry, decoded = T.encode_text(w, name, offsets, data, pool=pool)
            assert decoded.encoding == "strings"
            assert np.array_equal(decoded.offsets, offsets) and bytes(decoded.data) == data
            out.append(entry)
        w.finish({"columns": out})
    c = Container(path)
    return c, {e["name"]: e for e in c.directory["columns"]}


def check_column(c, entry, values, rows_to_check=None, cache=None, pool=None):
    offsets, data = arrays(values)
    got_off, got = T.decode_text(c, entry, len(values), pool=pool)
    assert np.array_equal(got_off, offsets)
    assert got == data
    cache = {} if cache is None else cache
    rows = range(len(values)) if rows_to_check is None else rows_to_check
    for r in rows:
        want = values[r] if isinstance(values[r], str) else values[r].decode("utf-8")
        assert T.text_row(c, entry, len(values), int(r), cache) == want


# ---- synthetic-like rows -------------------------------------------------------------------------------


def images_rows(n, seed=0):
    """Columns shaped like the images file (see oicore.synthetic): shared photo IDs, users, MD5s."""
    rng = np.random.default_rng(seed)
    users = [f"{rng.integers(10_000, 160_000_000)}@N0{rng.integers(0, 9)}" if i % 3 else f"user{i}_x" for i in range(max(2, n // 7))]
    names = [f"Name {i} O&#x27;Brien" if i % 5 == 0 else f"Name {i}" for i in range(len(users))]
    cols = {k: [] for k in IMAGE_TEXT}
    for i in range(n):
        photo = int(rng.integers(1_000_000, 35_000_000_000))
        farm = 1 + photo * 9 // 36_000_000_000
        server = int(min(9999, 1 + photo // 3_700_000 + rng.integers(0, 40)))
        u = int(rng.zipf(1.5) % len(users))
        secret = f"{int(rng.integers(0, 1 << 40)):010x}"
        cols["OriginalURL"].append(f"https://farm{farm}.staticflickr.com/{server}/{photo}_{secret}_o.jpg")
        cols["OriginalLandingURL"].append(f"https://www.flickr.com/photos/{users[u]}/{photo}")
        cols["AuthorProfileURL"].append(f"https://www.flickr.com/people/{users[u]}/")
        cols["Author"].append(names[u])
        cols["Title"].append(["", "DSCN%04d" % rng.integers(0, 9999), "Tree, river", 'A "quoted" title', "Été à Paris"][i % 5])
        cols["OriginalMD5"].append(base64.b64encode(hashlib.md5(secret.encode()).digest()).decode())
        tfarm = farm if rng.random() < 0.57 else int(rng.integers(1, 10))
        tsecret = f"{int(rng.integers(0, 1 << 40)):010x}"
        zz = "?zz=1" if rng.random() < 0.14 else ""
        thumb = f"https://c{rng.integers(1, 9)}.staticflickr.com/{tfarm}/{server}/{photo}_{tsecret}_z.jpg{zz}"
        cols["Thumbnail300KURL"].append(thumb if rng.random() >= 0.03 else "")
    return cols


def test_synthetic_like_columns_round_trip_and_share_fields(tmp_path):
    cols = images_rows(3000)
    c, entries = write(tmp_path, cols)
    assert {n: entries[n]["encoding"] for n in IMAGE_TEXT} == {
        "OriginalURL": "template", "OriginalLandingURL": "template", "AuthorProfileURL": "template",
        "Author": "text_dict", "Title": "text_dict", "OriginalMD5": "md5", "Thumbnail300KURL": "template",
    }
    rng = np.random.default_rng(1)
    for name in IMAGE_TEXT:
        check_column(c, entries[name], cols[name], rng.integers(0, 3000, 200))

    def field(entry, role):
        return next(f for f in entry["fields"] if f["role"] == role)

    # The landing URL's photo and the profile URL's user come from earlier columns, at no cost.
    landing, profile = entries["OriginalLandingURL"], entries["AuthorProfileURL"]
    assert field(landing, "photo")["ints"]["ref"]["ints"] == field(entries["OriginalURL"], "photo")["ints"]
    assert field(landing, "photo")["ints"]["bits"] == 0
    assert field(profile, "user")["dictionary"] == field(landing, "user")["dictionary"]
    assert field(profile, "user")["ints"]["bits"] == 0
    # The author is a function of the user.
    assert entries["Author"]["codes"]["ref"]["ints"] == field(landing, "user")["ints"]
    assert "map" in entries["Author"]["codes"]["ref"]
    # The thumbnail's photo and server are the original's.
    assert field(entries["Thumbnail300KURL"], "photo")["ints"]["bits"] == 0


def test_real_synthetic_images_file(tmp_path):
    from oicore import read_csv
    from oicore.synthetic import synth

    synth(tmp_path / "src", scale=0.002, release="v3")
    table = read_csv(tmp_path / "src" / "train" / "images.csv")
    cols = {n: table.column(n).to_pylist() for n in IMAGE_TEXT}
    c, entries = write(tmp_path, cols)
    assert all(entries[n]["encoding"] != "strings" for n in IMAGE_TEXT)
    rows = len(cols["OriginalURL"])
    sample = np.random.default_rng(2).integers(0, rows, 300)
    for name in IMAGE_TEXT:
        check_column(c, entries[name], cols[name], sample)
    stored = sum(_segment_bytes(c, entries[n]) for n in IMAGE_TEXT)
    assert stored < 0.5 * sum(len(arrays(cols[n])[1]) for n in IMAGE_TEXT)


def _segment_bytes(c, obj, seen=None):
    seen = set() if seen is None else seen
    total = 0
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "segment" and isinstance(v, int) and v not in seen:
                seen.add(v)
                total += c.segments[v]["length"]
            else:
                total += _segment_bytes(c, v, seen)
    elif isinstance(obj, list):
        total += sum(_segment_bytes(c, v, seen) for v in obj)
    return total


def test_parallel_chunks_and_reverse_column_order(tmp_path):
    cols = images_rows(70_000, seed=3)
    order = ["AuthorProfileURL", "OriginalLandingURL", "Thumbnail300KURL", "OriginalURL", "Author", "Title", "OriginalMD5"]
    with ThreadPoolExecutor(2) as pool:
        c, entries = write(tmp_path, {n: cols[n] for n in order}, pool=pool)
        sample = np.random.default_rng(4).integers(0, 70_000, 100)
        for name in order:
            check_column(c, entries[name], cols[name], sample, pool=pool)
    # Written first, the profile URL's user is the one the landing URL refers to.
    landing_user = next(f for f in entries["OriginalLandingURL"]["fields"] if f["role"] == "user")
    assert landing_user["ints"].get("ref") is not None


# ---- URL variants and exceptions ---------------------------------------------------------------------


V3_URLS = [
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg",
    "https://c1.staticflickr.com/6/5769/21094803716_083fb31bd4_z.jpg",
    "https://c5.staticflickr.com/1/3/21094803716_083fb31bd4_z.jpg?zz=1",
    "http://farm1.staticflickr.com/2/3_0000000000_o.png",
    "https://farm66.staticflickr.com/65535/999999999999999_ffffffffff_o.gif",
    "https://live.staticflickr.com/65535/51234567890_abcdef0123_b.jpg",
    "https://farm3.staticflickr.com/2075/2220326009_7d2d0f7c5c.jpg",
    "",
]
HOSTILE = [
    "https://farm7.staticflickr.com/5769/21094803716_DA3CEA21B8_o.jpg",  # upper-case hex
    "https://farm7.staticflickr.com/05769/21094803716_da3cea21b8_o.jpg",  # leading zero
    "https://farm7.staticflickr.com/5769/1234567890123456_da3cea21b8_o.jpg",  # 16 digits
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b_o.jpg",  # 9 hex digits
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg?zz=2",
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg ",
    "https://farm٧.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg",  # Arabic-Indic digit
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg\u202e",
    "ｈｔｔｐｓ://farm7.staticflickr.com/1/2_0123456789_o.jpg",
    "https://farm7.staticflickr.com/5769/21094803716_da3cea21b8_o.jpg\x00",
    "🙂" * 40,
    "https://",
    "https://farm.staticflickr.com//_o.jpg",
]


V3_SHAPES = [
    "https://farm{farm}.staticflickr.com/{server}/{photo}_{secret}_o.jpg",
    "https://c{c}.staticflickr.com/{farm}/{server}/{photo}_{secret}_z.jpg",
    "https://c{c}.staticflickr.com/{farm}/{server}/{photo}_{secret}_z.jpg?zz=1",
    "http://farm{farm}.staticflickr.com/{server}/{photo}_{secret}_o.png",
    "https://live.staticflickr.com/{server}/{photo}_{secret}_b.jpg",
    "https://farm{farm}.staticflickr.com/{server}/{photo}_{secret}.jpg",
    "",
]


def v3_variants(n, seed=0):
    """Real V3 URL shapes (farm and c hosts, http, ?zz=1, no size suffix, empty) with random numbers."""
    rng = np.random.default_rng(seed)
    return [V3_SHAPES[i % len(V3_SHAPES)].format(
        farm=int(rng.integers(1, 70)), c=int(rng.integers(1, 9)), server=int(rng.integers(1, 65536)),
        photo=int(rng.integers(1, 10**15)), secret=f"{int(rng.integers(0, 1 << 40)):010x}") for i in range(n)]


def test_url_variants_and_hostile_rows_are_exact(tmp_path):
    values = v3_variants(1000) + HOSTILE + V3_URLS
    rng = np.random.default_rng(8)
    users = [f"{int(u)}@N0{int(u) % 9}" for u in rng.integers(10_000, 10**9, 150)] + ["ünï", "a_b-c"]
    n = len(values)
    picks = rng.integers(0, len(users), n)
    landing = [f"https://www.flickr.com/photos/{users[k]}/{int(p)}" for k, p in zip(picks, rng.integers(1, 10**12, n))]
    profile = [f"https://www.flickr.com/people/{users[k]}/" for k in picks]
    odd_landing = ["http://flickr.com/photos/a/1/", "https://www.flickr.com/photos/x\x00y/5",
                   "https://www.flickr.com/photos//7", "", "https://www.flickr.com/photos/a/01"]
    odd_profile = ["https://www.flickr.com/people/deniwlp84", "https://www.flickr.com/people/a/b/",
                   "https://www.flickr.com/people/not-a-landing-user/", ""]
    landing[3 : 3 + len(odd_landing)] = odd_landing
    profile[50 : 50 + len(odd_profile)] = odd_profile
    c, entries = write(tmp_path, {"OriginalURL": values, "OriginalLandingURL": landing, "AuthorProfileURL": profile})
    e = entries["OriginalURL"]
    assert e["encoding"] == "template"
    assert sum(e["exceptions"]["block_rows"]) == len(HOSTILE)
    assert entries["OriginalLandingURL"]["encoding"] == "template"
    for name, vals in (("OriginalURL", values), ("OriginalLandingURL", landing), ("AuthorProfileURL", profile)):
        check_column(c, entries[name], vals)


def test_mostly_unmatched_urls_fall_back_to_strings(tmp_path):
    values = [f"ftp://example.org/{i}" for i in range(300)]
    c, entries = write(tmp_path, {"OriginalURL": values})
    assert entries["OriginalURL"]["encoding"] == "strings"
    check_column(c, entries["OriginalURL"], values)


# ---- MD5 -----------------------------------------------------------------------------------------------


def test_md5_good_and_bad(tmp_path):
    good = [base64.b64encode(hashlib.md5(str(i).encode()).digest()).decode() for i in range(500)]
    bad = ["", "lK2C/HzckeMY5C4qL4YVcR==", "lK2C/HzckeMY5C4qL4YVcQ=", "lK2C/HzckeMY5C4qL4YVcQ", "lK2C/HzckeMY5C4qL4YVc=Q=",
           "lK2C-HzckeMY5C4qL4YVcQ==", "lK2C/HzckeMY5C4qL4YVcQ==\n", "ÿ" * 24, "lK2C/HzckeMY5C4qL4YVcQ==="]
    values = good[:250] + bad + good[250:]
    c, entries = write(tmp_path, {"OriginalMD5": values})
    e = entries["OriginalMD5"]
    assert e["encoding"] == "md5"
    assert sum(e["exceptions"]["block_rows"]) == len(bad)
    assert c.segments[e["segment"]]["length"] == 16 * len(values)
    check_column(c, e, values)


def test_md5_parse_is_canonical():
    for i in range(2000):
        digest = hashlib.md5(i.to_bytes(4, "little")).digest()
        text = base64.b64encode(digest)
        offsets = np.array([0, 24], np.int64)
        out, exc = np.zeros(16, np.uint8), np.zeros(1, np.uint8)
        assert tc.md5_encode(np.frombuffer(text, np.uint8), offsets, 0, 1, out, exc) == 0
        assert out.tobytes() == digest
    # Every other last character before "==" decodes to the same bytes with nonzero spare bits: rejected.
    text = bytearray(base64.b64encode(bytes(16)))
    for ch in b"BCDEFGHIJKLMNOP":
        text[21] = ch
        out, exc = np.zeros(16, np.uint8), np.zeros(1, np.uint8)
        assert tc.md5_encode(np.frombuffer(bytes(text), np.uint8), np.array([0, 24], np.int64), 0, 1, out, exc) == 1


# ---- dictionaries and plain text -----------------------------------------------------------------------


def test_repeated_text_uses_a_dictionary_and_unique_text_stays_strings(tmp_path):
    rng = np.random.default_rng(5)
    authors = [f"Author {int(i)}" for i in rng.integers(0, 40, 2000)]
    authors[7] = "with\x00nul"  # cannot be a dictionary entry: an exception
    unique = [hashlib.sha256(str(i).encode()).hexdigest() + " é" for i in range(2000)]
    c, entries = write(tmp_path, {"Author": authors, "Title": unique})
    assert entries["Author"]["encoding"] == "text_dict"
    assert sum(entries["Author"]["exceptions"]["block_rows"]) == 1
    assert entries["Title"]["encoding"] == "strings"
    check_column(c, entries["Author"], authors)
    check_column(c, entries["Title"], unique, range(0, 2000, 37))


def test_text_row_of_a_plain_strings_column_and_a_bounded_cache(tmp_path):
    class Bounded(OrderedDict):
        def __setitem__(self, key, value):
            super().__setitem__(key, value)
            while len(self) > 2:
                self.popitem(last=False)

    values = [f"row {i} " + "x" * (i % 300) for i in range(3000)]
    path = tmp_path / "s.oic"
    with ContainerWriter(path) as w:
        offsets, data = arrays(values)
        entry, _ = encode_strings(w, "Title", offsets, data)
        w.finish({"columns": [entry]})
    c = Container(path)
    entry = c.directory["columns"][0]
    cache = Bounded()
    for r in np.random.default_rng(6).integers(0, 3000, 300):
        assert T.text_row(c, entry, 3000, int(r), cache) == values[r]
    cols = images_rows(500, seed=9)
    c, entries = write(tmp_path, cols)
    for r in np.random.default_rng(7).integers(0, 500, 300):
        for name in IMAGE_TEXT:
            assert T.text_row(c, entries[name], 500, int(r), cache) == cols[name][r]
    with pytest.raises(IndexError):
        T.text_row(c, entries["OriginalURL"], 500, 500, cache)


def test_lookups_from_threads_sharing_readers_and_an_evicting_cache(tmp_path):
    import threading

    class Bounded(OrderedDict):  # evicts while other threads may still read what it held
        lock = threading.Lock()

        def __setitem__(self, key, value):
            with self.lock:
                super().__setitem__(key, value)
                while len(self) > 12:
                    self.popitem(last=False)

        def get(self, key, default=None):
            with self.lock:
                return super().get(key, default)

    cols = images_rows(6000, seed=13)
    c, entries = write(tmp_path, cols)
    cache = Bounded()
    errors = []

    def work(seed):
        try:
            for r in np.random.default_rng(seed).integers(0, 6000, 120):
                for name in IMAGE_TEXT:
                    assert T.text_row(c, entries[name], 6000, int(r), cache) == cols[name][r]
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]


# ---- random text: round trip or fall back -------------------------------------------------------------

texts = st.lists(st.one_of(st.text(max_size=30), st.sampled_from(V3_URLS + HOSTILE + ["a", "b", ""])), min_size=1, max_size=60)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], deadline=None)
@given(name=st.sampled_from(IMAGE_TEXT + ["Other"]), values=texts)
def test_random_text_round_trips_exactly(tmp_path_factory, name, values):
    tmp = tmp_path_factory.mktemp("h")
    c, entries = write(tmp, {name: values})
    check_column(c, entries[name], values)


@settings(deadline=None)
@given(values=st.lists(st.binary(max_size=24).filter(lambda b: b"\0" not in b), max_size=300))
def test_group_numbers_distinct_strings_in_bytewise_order(values):
    offsets, data = arrays(values)
    codes, first = tc.group(np.frombuffer(data, np.uint8), offsets, None, len(values), 1 << 20)
    distinct = sorted(set(values))
    assert [values[i] for i in first] == distinct
    assert [distinct[k] for k in codes] == values


def test_group_long_common_prefixes_and_skips():
    values = [b"https://www.flickr.com/people/" + str(i % 700).encode() + b"/" for i in range(5000)]
    values += [b"x\x00y", b"z" * 50]
    offsets, data = arrays(values)
    codes, first = tc.group(np.frombuffer(data, np.uint8), offsets, None, len(values), 40)
    assert codes[-2] == -1 and codes[-1] == -1  # a NUL, and longer than max_len
    kept = values[:-2]
    distinct = sorted(set(kept))
    assert [values[i] for i in first] == distinct
    assert [distinct[k] for k in codes[:-2]] == kept


@settings(deadline=None)
@given(bits=st.integers(0, 56), data=st.data())
def test_pack_unpack(bits, data):
    n = data.draw(st.integers(0, 200))
    base = data.draw(st.integers(-(1 << 40), 1 << 40))
    top = (1 << bits) - 1
    values = np.array(data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), np.int64) + base
    stream = tc.pack(values, base, bits)
    assert len(stream) == (n * bits + 7) // 8
    assert np.array_equal(tc.unpack(stream, n, bits, base), values)


def test_a_wrong_encoding_is_caught_before_writing(tmp_path, monkeypatch):
    real = tc.pack

    def flip(values, base, bits):  # a bug that changes one bit of every large packed array
        out = real(values, base, bits).copy()
        if len(out) > 100:
            out[len(out) // 2] ^= 1
        return out

    monkeypatch.setattr(tc, "pack", flip)
    cols = images_rows(2000, seed=11)
    c, entries = write(tmp_path, {"OriginalURL": cols["OriginalURL"], "Author": cols["Author"]})
    assert entries["OriginalURL"]["encoding"] == "strings"
    check_column(c, entries["OriginalURL"], cols["OriginalURL"], range(0, 2000, 50))
    check_column(c, entries["Author"], cols["Author"], range(0, 2000, 50))


# ---- damaged entries ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoded(tmp_path_factory):
    cols = images_rows(1500, seed=12)
    cols["OriginalMD5"][3] = "not an md5"
    cols["OriginalURL"][5] = "odd"
    c, entries = write(tmp_path_factory.mktemp("damage"), cols)
    return c, entries, cols


def _raises(c, entry, rows, row=0):
    """Both readers reject the entry (the row reader when it reads ``row``; None: not tried)."""
    with pytest.raises(FormatError) as e1:
        T.decode_text(c, entry, rows)
    assert e1.value.path == c.path
    if row is not None:
        with pytest.raises(FormatError):
            T.text_row(c, entry, rows, row, {})
    return e1.value


@pytest.mark.parametrize("name", IMAGE_TEXT)
def test_wrong_row_count_is_a_format_error(encoded, name):
    c, entries, _ = encoded
    _raises(c, entries[name], 1499)
    with pytest.raises(FormatError):
        T.decode_text(c, entries[name], 1501)


def _mutations():
    def templ(e):
        e["templates"] = e["templates"] + [["x"]]  # the exception code now names a template

    def field_index(e):
        e["templates"][0] = e["templates"][0] + [len(e["fields"])]

    def bits(e):
        e["fields"][0]["ints"] = {"bits": 60, "base": 0, "segment": 0}

    def segment(e):
        e["template"] = {"bits": 3, "base": 0, "segment": 10_000}

    def choice(e):
        f = next(f for f in e["fields"] if f["kind"] == "choice" and f["ints"]["bits"] == 0)
        f["ints"]["base"] = len(f["values"])

    def dec_negative(e):
        f = next(f for f in e["fields"] if f["kind"] == "dec")
        f["ints"]["base"] = -(1 << 40)

    def exceptions(e):
        e["exceptions"] = None

    def kind(e):
        e["fields"][0]["kind"] = "float"

    def width(e):
        f = next(f for f in e["fields"] if f["kind"] == "hex")
        f["width"] = 2

    return [templ, field_index, bits, segment, choice, dec_negative, exceptions, kind, width]


@pytest.mark.parametrize("mutate", _mutations(), ids=lambda f: f.__name__)
def test_damaged_template_entry(encoded, mutate):
    c, entries, _ = encoded
    e = copy.deepcopy(entries["OriginalURL"])
    mutate(e)
    _raises(c, e, 1500, row=5 if mutate.__name__ in ("exceptions", "templ") else 0)


def test_damaged_dictionary_entries(encoded):
    c, entries, _ = encoded
    e = copy.deepcopy(entries["Author"])
    e["dictionary"]["count"] += 1
    _raises(c, e, 1500)
    e = copy.deepcopy(entries["Author"])
    e["dictionary"]["block_rows"][0] -= 1
    e["dictionary"]["count"] -= 1
    _raises(c, e, 1500, row=None)  # a lookup notices when it reads the first frame
    e = copy.deepcopy(entries["Author"])
    e["codes"]["ref"]["count"] = 1
    _raises(c, e, 1500)
    e = copy.deepcopy(entries["Author"])
    e["codes"]["ref"]["ints"]["ref"] = {"ints": e["codes"]["ref"]["ints"]}
    _raises(c, e, 1500)
    e = copy.deepcopy(entries["OriginalLandingURL"])
    user = next(f for f in e["fields"] if f["kind"] == "dict")
    user["dictionary"] = {"count": 1, "segment": None, "block_rows": []}
    _raises(c, e, 1500)


def test_damaged_md5_entries(encoded):
    c, entries, _ = encoded
    e = copy.deepcopy(entries["OriginalMD5"])
    e["exceptions"]["rows"]["base"] = 1500
    _raises(c, e, 1500, row=3)
    e = copy.deepcopy(entries["OriginalMD5"])
    e["rows"] = 1400
    _raises(c, e, 1500)
    e = copy.deepcopy(entries["OriginalMD5"])
    e["segment"] = entries["OriginalURL"]["exceptions"]["segment"]
    _raises(c, e, 1500)


def test_unknown_encoding(encoded):
    c, entries, _ = encoded
    e = dict(entries["Title"], encoding="rle")
    _raises(c, e, 1500)


@settings(deadline=None, max_examples=50)
@given(bits=st.integers(0, 30), n=st.integers(0, 700), dtype=st.sampled_from(["u1", "u2", "u4", "i4", "i8"]), data=st.data())
def test_pack_ints_in_chunks_matches_one_pack(bits, n, dtype, data):
    """columns.pack_ints converts narrow integers to int64 a chunk at a time; the chunks' streams join
    into the one stream a single pack makes (chunk sizes of 64 and 128 values here)."""
    import oicore.columns as C

    dt = np.dtype(C.dtype_of(dtype))
    top = min((1 << bits) - 1, int(np.iinfo(dt).max))
    values = np.array(data.draw(st.lists(st.integers(0, top), min_size=n, max_size=n)), dt)
    want = tc.pack(values.astype(np.int64), 0, bits)
    for chunk in (64, 128):
        old, C._PACK_CHUNK = C._PACK_CHUNK, chunk
        try:
            got = C.pack_ints(values, 0, bits)
        finally:
            C._PACK_CHUNK = old
        assert bytes(got) == bytes(want)


class _Writer:
    """Stands in for the container writer: keeps each raw segment."""

    def __init__(self):
        self.segments: list[np.ndarray] = []

    def add_raw(self, array) -> int:
        self.segments.append(np.ascontiguousarray(array).view(np.uint8))
        return len(self.segments) - 1


@settings(deadline=None, max_examples=60)
@given(widths=st.lists(st.integers(0, 30), min_size=1, max_size=4), n=st.integers(0, 300), chunk=st.sampled_from([64, 128, 1 << 20]), data=st.data())
def test_records_interleave_columns_exactly(widths, n, chunk, data):
    """columns.Records packs columns as records (FORMAT.md: ``stride``, ``shift``): each column reads back its
    values, with the bit layout FORMAT.md gives; records wider than 56 bits leave their widest columns alone."""
    import oicore.columns as C

    columns = [np.array(data.draw(st.lists(st.integers(-5, (1 << w) - 6), min_size=n, max_size=n)), np.int64) for w in widths]
    writer, records, entries = _Writer(), C.Records(), []
    for values in columns:
        entry = {}
        lo = int(values.min()) if n else 0
        records.add(entry, values, lo, (int(values.max()) - lo).bit_length() if n else 0)
        entries.append(entry)
    old, C._PACK_CHUNK = C._PACK_CHUNK, chunk
    try:
        records.write(writer)
    finally:
        C._PACK_CHUNK = old
    shared = [e["ints"] for e in entries if "stride" in e["ints"]]
    assert len(shared) != 1 and sum(i["bits"] for i in shared) <= 56
    for values, entry in zip(columns, entries):
        ints = entry["ints"]
        bits, base = ints["bits"], ints["base"]
        if not bits:
            assert ints["segment"] is None and (values == base).all()
            continue
        stream = writer.segments[ints["segment"]]
        stride, shift = ints.get("stride", bits), ints.get("shift", 0)
        assert len(stream) == (n * stride + 7) // 8
        assert tc.unpack_at(stream, shift, n, bits, base, stride).tolist() == values.tolist()
        whole = int.from_bytes(bytes(stream), "little")  # FORMAT.md: value i is bits [i*s + h, i*s + h + w)
        assert [base + (whole >> (i * stride + shift) & ((1 << bits) - 1)) for i in range(n)] == values.tolist()
        assert whole >> (n * stride) == 0  # unused high bits are zero
