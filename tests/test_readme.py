"""The README's examples run as written, on a synthetic release."""

import re
from pathlib import Path

import numpy as np
import pytest

import oicore
from oicore.converter import convert

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README, flags=re.S)


@pytest.fixture(scope="module")
def release_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    oicore.synth(root / "src", scale=0.0002, seed=3, release="v3")
    return convert(root / "src", root / "release.oic", progress=False).path


def test_dataset_and_sampler_example(release_path):
    block = next(b for b in python_blocks() if "class OpenImagesLabels" in b)
    scope = {}
    exec(compile(block, "README.md", "exec"), scope)
    ds = scope["OpenImagesLabels"](release_path)
    assert len(ds) == len(ds.release.image_ids("train")) > 0
    image_id, target = ds[0]
    assert len(image_id) == 16 and target.shape == (len(ds.vocab),)
    assert set(np.unique(target)) <= {-1, 0, 1}
    weights = scope["class_balanced_weights"](ds.release)
    assert weights.shape == (len(ds),) and (weights >= 0).all()
    boxed = set(ds.release.table("boxes", split="train").column("ImageID").to_pylist())
    has_box = np.array([int(i) in boxed for i in ds.ids])
    assert (weights[has_box] > 0).all() and (weights[~has_box] == 0).all()


def test_quick_example_calls_exist(release_path):
    block = next(b for b in python_blocks() if "oicore.open(" in b and "labels(" in b)
    with oicore.open(release_path) as release:
        image_id = f"{int(release.image_ids()[0]):016x}"
        mid = release.mids[int(release.labels(image_id).label[0])] if len(release.labels(image_id)) else release.mids[0]
    # The quick example names a real release file; run it on the synthetic one with its own IDs and labels.
    code = block.split("boxes = oicore.read_csv")[0]
    code = code.replace('"openimages-v3.oic"', repr(str(release_path))).replace('"000002b66c9c498e"', repr(image_id))
    code = code.replace('"Person"', repr(mid)).replace('"/m/0dzct"', repr(mid))
    exec(compile(code, "README.md", "exec"), {})


def test_lookups_load_neither_pandas_nor_pyarrow(release_path):
    """DataLoader workers pay for every import: open and per-image lookups stay on numpy."""
    import subprocess
    import sys

    code = f"""
import sys, oicore
with oicore.open({str(release_path)!r}) as r:
    i = r.image_ids()[0]
    r.labels(i); r.boxes_for_image(i); r.labels_many(r.image_ids()[:10]); r.image(i) if i in r else None
assert "pyarrow" not in sys.modules and "pandas" not in sys.modules, sorted(m for m in sys.modules if m.startswith(("pyarrow", "pandas")))
"""
    subprocess.run([sys.executable, "-c", code], check=True)


def test_convert_export_and_verify_do_not_load_pandas(release_path, tmp_path):
    """pyarrow's numpy bridges import pandas (half a second); convert and export avoid them."""
    import subprocess
    import sys

    src = release_path.parent / "src"
    code = f"""
import sys
from oicore.converter import convert
from oicore.exporter import export
from oicore.inspection import verify
convert({str(src)!r}, {str(tmp_path / "again.oic")!r}, progress=False)
export({str(tmp_path / "again.oic")!r}, {str(tmp_path / "out")!r})
verify({str(tmp_path / "again.oic")!r}, against=[{str(src)!r}])
assert "pandas" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
