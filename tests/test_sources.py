"""Which table, split and kind each file of a release is (oicore.sources)."""

import pytest

from oicore import schema
from oicore.errors import OicoreWarning
from oicore.reader import read_csv
from oicore.sources import UnsupportedFileError, classify, find_sources
from oicore.synthetic import synth


@pytest.mark.parametrize("release", ["v3", "v4", "v5", "v6", "v7"])
def test_every_synthetic_file_is_classified_and_reads_as_its_kind(tmp_path, release):
    paths = synth(tmp_path, scale=0.00005, seed=2, release=release)
    sources = find_sources([tmp_path])
    assert sorted(s.path for s in sources) == sorted(paths)
    for s in sources:
        if s.kind is None:
            assert s.table == "hierarchy"
            continue
        table = read_csv(s.path, kind=s.kind)
        if schema.KINDS[s.kind].sniffable:  # the name and the header agree
            assert read_csv(s.path).schema.metadata[b"oicore.kind"] == s.kind.encode()
        if s.kind in ("image_labels", "boxes", "points", "vrd", "segmentation"):
            assert s.split in ("train", "validation", "test"), s.name
        if s.table == "images" and s.split is None:  # an images file of every split: its Subset column says
            assert set(table.column("Subset").to_pylist()) <= {"train", "validation", "test"}
        if s.table == "images" and "Subset" in table.column_names and s.split is not None:
            assert set(table.column("Subset").to_pylist()) <= {s.split}, s.name
    tables = {s.table for s in sources}
    assert {"images", "human_labels", "boxes", "class_descriptions", "class_lists"} <= tables


@pytest.mark.parametrize(
    "name, table, split",
    [
        ("train/annotations-human-bbox.csv", "boxes", "train"),
        ("validation/annotations-machine.csv", "machine_labels", "validation"),
        ("oidv7-val-annotations-human-imagelabels.csv", "human_labels", "validation"),
        ("oidv6-train-annotations-bbox.csv", "boxes", "train"),
        ("test-images-with-rotation.csv", "images", "test"),
        ("image_ids_and_rotation.csv", "images", None),
        ("human_ann_2016_08/validation/labels.csv", "human_labels", "validation"),
        ("machine_ann_2016_08/train/labels.csv", "machine_labels", "train"),
        ("class-descriptions.csv", "class_descriptions", None),
        ("dict.csv", "class_descriptions", None),
        ("oidv6-relationship-triplets.csv", "relationship_triplets", None),
        ("bbox_labels_600_hierarchy.json", "hierarchy", None),
        ("v5/validation-annotations-object-segmentation.csv", "segmentation", "validation"),
    ],
)
def test_names(tmp_path, name, table, split):
    s = classify(tmp_path / name, tmp_path)
    assert (s.table, s.split) == (table, split)


def test_class_list_names_and_boxable_subsets(tmp_path):
    assert classify(tmp_path / "classes.txt", tmp_path).list_name == "all"
    assert classify(tmp_path / "oidv6-classes-trainable.txt", tmp_path).list_name == "trainable"
    assert classify(tmp_path / "classes-bbox-trainable.txt", tmp_path).list_name == "bbox-trainable"
    boxable = classify(tmp_path / "train-annotations-human-imagelabels-boxable.csv", tmp_path)
    assert boxable.table == "human_labels" and boxable.export_only
    assert not classify(tmp_path / "train-annotations-human-imagelabels.csv", tmp_path).export_only


def test_unsupported_files_are_skipped_with_a_warning_or_rejected_when_strict(tmp_path):
    (tmp_path / "open_images_train_v6_captions.jsonl").write_text("{}\n")
    (tmp_path / "classes.txt").write_text("/m/01\n")
    with pytest.warns(OicoreWarning, match="captions.jsonl: an unsupported format"):
        sources = find_sources([tmp_path])
    assert [s.name for s in sources] == ["classes.txt"]
    with pytest.raises(UnsupportedFileError, match="captions.jsonl"):
        find_sources([tmp_path], strict=True)
    with pytest.raises(FileNotFoundError):
        find_sources([tmp_path / "missing"])


def _labels_file(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ImageID,Source,LabelName,Confidence\n000026e7ee790996,verification,/m/01g317,1\n")
    return path


def test_a_file_given_alone_keeps_its_split_folder_in_its_name(tmp_path):
    """As when its release folder is given: ``train/annotations-human.csv`` (split train), so two files of the
    same name from two split folders can be given together, and verify --against one file finds it."""
    train = _labels_file(tmp_path / "train" / "annotations-human.csv")
    val = _labels_file(tmp_path / "validation" / "annotations-human.csv")
    found = find_sources([train, val])
    assert [(s.name, s.split) for s in found] == [("train/annotations-human.csv", "train"), ("validation/annotations-human.csv", "validation")]
    assert [s.name for s in find_sources([tmp_path])] == [s.name for s in found]
    v1 = _labels_file(tmp_path / "machine_ann_2016_08" / "test" / "labels.csv")
    (s,) = find_sources([v1])
    assert (s.name, s.table, s.split) == ("machine_ann_2016_08/test/labels.csv", "machine_labels", "test")
    other = _labels_file(tmp_path / "mine" / "annotations-human.csv")
    assert find_sources([other])[0].name == "annotations-human.csv"


def test_two_sources_with_one_name_are_a_usage_error(tmp_path):
    import subprocess
    import sys

    from oicore.sources import SourceNameError
    from test_convert import cli_env

    paths = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "class-descriptions.csv")
        paths[-1].write_bytes(b"/m/01g317,Person\n")
    with pytest.raises(SourceNameError, match="class-descriptions.csv"):
        find_sources(paths)
    p = subprocess.run([sys.executable, "-m", "oicore", "convert", *map(str, paths), "-o", str(tmp_path / "o.oic"), "--quiet"],
                       capture_output=True, text=True, env=cli_env())
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "would be stored as 'class-descriptions.csv'" in p.stderr
    assert not (tmp_path / "o.oic").exists()


@pytest.mark.parametrize("member", ["../escaped/train/annotations-human.csv", "/abs/train/annotations-human.csv"])
def test_archive_members_named_outside_the_release_are_rejected(tmp_path, member):
    import io
    import tarfile

    data = b"ImageID,Source,LabelName,Confidence\n000026e7ee790996,verification,/m/01g317,1\n"
    path = tmp_path / "a.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name in (member, "../README.md"):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(UnsupportedFileError, match="outside the release folder"):
        find_sources([path])
    with tarfile.open(tmp_path / "b.tar", "w") as tar:  # an unknown file so named is only skipped
        info = tarfile.TarInfo("../README.md")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.warns(OicoreWarning, match="README"):
        assert find_sources([tmp_path / "b.tar"]) == []
