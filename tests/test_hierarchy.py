"""The label hierarchy (``oicore.hierarchy``) against TensorFlow's Open Images expansion.

The reference is a verbatim port of ``_build_plain_hierarchy`` from TensorFlow's
``research/object_detection/dataset_tools/oid_hierarchical_labels_expansion.py`` (tensorflow/models, commit
1161ef509440f5b8e4426f119cbcafa6c5ef6998; ``six.iteritems`` spelled ``.items()``). With ``skip_root=True`` its
``keyed_child`` maps a label to its ancestors and ``keyed_parent`` to its descendants, along ``Subcategory``
edges only, never emitting the root ``/m/0bl9f``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import oicore
from oicore.errors import HierarchyError
from oicore.hierarchy import Hierarchy

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL_HIERARCHY = SHARED_DATA / "v4" / "bbox_labels_600_hierarchy.json"
ROOT = "/m/0bl9f"
SCALE = 0.0002
SEED = 4


# ---- TensorFlow's expansion, verbatim ---------------------------------------------------------------------


def _update_dict(initial_dict, update):
    """Updates dictionary with update content.

    Args:
     initial_dict: initial dictionary.
     update: updated dictionary.
    """

    for key, value_list in update.items():
        if key in initial_dict:
            initial_dict[key].extend(value_list)
        else:
            initial_dict[key] = value_list


def _build_plain_hierarchy(hierarchy, skip_root=False):
    """Expands tree hierarchy representation to parent-child dictionary.

    Args:
     hierarchy: labels hierarchy as JSON file.
     skip_root: if true skips root from the processing (done for the case when all
       classes under hierarchy are collected under virtual node).

    Returns:
      keyed_parent - dictionary of parent - all its children nodes.
      keyed_child  - dictionary of children - all its parent nodes
      children - all children of the current node.
    """
    all_children = []
    all_keyed_parent = {}
    all_keyed_child = {}
    if 'Subcategory' in hierarchy:
        for node in hierarchy['Subcategory']:
            keyed_parent, keyed_child, children = _build_plain_hierarchy(node)
            # Update is not done through dict.update() since some children have multi-
            # ple parents in the hiearchy.
            _update_dict(all_keyed_parent, keyed_parent)
            _update_dict(all_keyed_child, keyed_child)
            all_children.extend(children)

    if not skip_root:
        all_keyed_parent[hierarchy['LabelName']] = all_children
        all_children = [hierarchy['LabelName']] + all_children
        for child, _ in all_keyed_child.items():
            all_keyed_child[child].append(hierarchy['LabelName'])
        all_keyed_child[hierarchy['LabelName']] = []

    return all_keyed_parent, all_keyed_child, all_children


def tf_expansion(tree):
    """``(ancestors, descendants)`` by label, as TensorFlow's ``OIDHierarchicalLabelsExpansion`` builds them."""
    keyed_parent, keyed_child, _ = _build_plain_hierarchy(tree, skip_root=True)
    return keyed_child, keyed_parent


# ---- a second, plain reference for any set of edge kinds -------------------------------------------------


def json_edges(tree, edges):
    """``(parents, children)``: direct edges of the given kinds between labels, from every node occurrence."""
    parents: dict[str, set] = {}
    children: dict[str, set] = {}
    stack = [tree]
    while stack:
        node = stack.pop()
        for kind in ("Subcategory", "Part"):
            for kid in node.get(kind, []):
                stack.append(kid)
                if kind in edges:
                    parents.setdefault(kid["LabelName"], set()).add(node["LabelName"])
                    children.setdefault(node["LabelName"], set()).add(kid["LabelName"])
    return parents, children


def closure(start, step, root):
    seen, stack = set(), [start]
    while stack:
        for nxt in step.get(stack.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    seen.discard(start)
    seen.discard(root)
    return seen


def all_labels(tree):
    out, stack = set(), [tree]
    while stack:
        node = stack.pop()
        out.add(node["LabelName"])
        stack += node.get("Subcategory", []) + node.get("Part", [])
    return out


# ---- checks ---------------------------------------------------------------------------------------------


def assert_matches_tensorflow(h: Hierarchy, tree):
    ancestors, descendants = tf_expansion(tree)
    assert ancestors, "the hierarchy has no Subcategory labels"
    for mid, want in ancestors.items():
        got = h.ancestors(mid)
        assert len(got) == len(set(got)), f"repeats in ancestors({mid})"
        assert set(got) == set(want), mid
        assert ROOT not in got and tree["LabelName"] not in got
    for mid, want in descendants.items():
        got = h.descendants(mid)
        assert len(got) == len(set(got)), f"repeats in descendants({mid})"
        assert set(got) == set(want), mid
        assert tree["LabelName"] not in got
    # Labels TensorFlow never reaches (only under Part edges, or the root) have no Subcategory relatives.
    for mid in all_labels(tree) - set(ancestors):
        assert tree["LabelName"] not in h.ancestors(mid)
        if mid != tree["LabelName"]:
            assert set(h.ancestors(mid)) == closure(mid, json_edges(tree, ("Subcategory",))[0], tree["LabelName"])


def assert_matches_edges(h: Hierarchy, tree, edges):
    parents, children = json_edges(tree, edges)
    root = tree["LabelName"]
    for mid in all_labels(tree):
        p, c = h.parents(mid, edges=edges), h.children(mid, edges=edges)
        assert len(p) == len(set(p)) and len(c) == len(set(c)), mid
        assert set(p) == parents.get(mid, set()), f"parents({mid}, {edges})"
        assert set(c) == children.get(mid, set()), f"children({mid}, {edges})"
        a, d = h.ancestors(mid, edges=edges), h.descendants(mid, edges=edges)
        assert len(a) == len(set(a)) and len(d) == len(set(d)), mid
        assert set(a) == closure(mid, parents, root), f"ancestors({mid}, {edges})"
        assert set(d) == closure(mid, children, root), f"descendants({mid}, {edges})"


@pytest.fixture(scope="module")
def real_tree():
    return json.loads(REAL_HIERARCHY.read_text(encoding="utf-8-sig"))


# ---- the real hierarchy ---------------------------------------------------------------------------------


def test_real_hierarchy_file_is_what_the_readme_says(real_tree):
    assert real_tree["LabelName"] == ROOT
    assert len(all_labels(real_tree)) == 602
    ancestors, _ = tf_expansion(real_tree)
    assert len(ancestors) == 601


def test_real_hierarchy_matches_tensorflow(real_tree):
    assert_matches_tensorflow(Hierarchy(real_tree), real_tree)


@pytest.mark.parametrize("edges", [("Subcategory",), ("Subcategory", "Part"), ("Part",)], ids=str)
def test_real_hierarchy_edges(real_tree, edges):
    assert_matches_edges(Hierarchy(real_tree), real_tree, edges)


def test_parts_are_reached_only_on_request(real_tree):
    h = Hierarchy(real_tree)
    parts = {kid["LabelName"] for node in _nodes(real_tree) for kid in node.get("Part", [])}
    owners = {node["LabelName"] for node in _nodes(real_tree) if node.get("Part")}
    assert parts and owners
    for owner in owners:
        only_parts = {kid["LabelName"] for node in _nodes(real_tree) if node["LabelName"] == owner for kid in node.get("Part", [])}
        subcategories = {kid["LabelName"] for node in _nodes(real_tree) if node["LabelName"] == owner for kid in node.get("Subcategory", [])}
        assert only_parts - subcategories <= set(h.children(owner, edges=("Subcategory", "Part")))
        assert not (only_parts - subcategories) & set(h.children(owner))
    assert h.children(ROOT) and ROOT not in h.descendants(ROOT)
    assert h.ancestors(ROOT) == []
    assert h.labels[0] == ROOT and len(h.labels) == len(set(h.labels)) == 602


def test_expand(real_tree):
    h = Hierarchy(real_tree)
    ancestors, descendants = tf_expansion(real_tree)
    for mid in list(ancestors)[:100]:
        up = h.expand(mid, positive=True)
        assert up[0] == mid and set(up[1:]) == set(ancestors[mid])
        down = h.expand(mid, positive=False)
        assert down[0] == mid and set(down[1:]) == set(descendants[mid])


def test_unknown_edge_kind_raises(real_tree):
    h = Hierarchy(real_tree)
    with pytest.raises(ValueError):
        h.ancestors("/m/01g317", edges=("Subcategory", "Member"))


@pytest.mark.parametrize(
    "bad",
    [[], "x", {"Subcategory": []}, {"LabelName": 5}, {"LabelName": "/m/a", "Subcategory": {"LabelName": "/m/b"}},
     {"LabelName": "/m/a", "Subcategory": [{"Label": "/m/b"}]}, {"LabelName": "/m/a", "Part": ["/m/b"]}],
    ids=repr,
)
def test_malformed_trees_raise_hierarchy_error(bad):
    with pytest.raises(HierarchyError) as info:
        Hierarchy(bad)
    assert isinstance(info.value, ValueError)


def _nodes(tree):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        stack += node.get("Subcategory", []) + node.get("Part", [])


# ---- through converted releases -------------------------------------------------------------------------


def synthetic_release(tmp_path_factory, release: str) -> tuple[Path, Path]:
    """``(source folder, .oic file)`` of a synthetic release, made once per session (shared with test_release)."""
    from oicore.converter import convert

    root = tmp_path_factory.getbasetemp() / "synthetic-releases"
    src, out = root / release, root / f"{release}.oic"
    if not out.exists():
        if src.exists():
            shutil.rmtree(src)
        oicore.synth(src, scale=SCALE, seed=SEED, release=release)
        convert(src, out)
    return src, out


def test_real_hierarchy_in_a_converted_synthetic_release(tmp_path_factory, real_tree):
    from oicore.converter import convert

    src, _ = synthetic_release(tmp_path_factory, "v4")
    folder = tmp_path_factory.mktemp("v4-real-hierarchy")
    shutil.copytree(src, folder / "v4")
    shutil.copyfile(REAL_HIERARCHY, folder / "v4" / "bbox_labels_600_hierarchy.json")
    convert(folder / "v4", folder / "v4.oic")
    with oicore.open(folder / "v4.oic") as release:
        h = release.hierarchy
        assert h is release.hierarchy  # built once
        assert_matches_tensorflow(h, real_tree)
        assert_matches_edges(h, real_tree, ("Subcategory", "Part"))


def test_real_release_folder_v4(tmp_path_factory, real_tree):
    from oicore.converter import convert

    out = tmp_path_factory.mktemp("real-v4") / "v4.oic"
    convert(SHARED_DATA / "v4", out)
    with oicore.open(out) as release:
        assert_matches_tensorflow(release.hierarchy, real_tree)
        # Every non-root label of the hierarchy is a boxable class with a name.
        names = release.classes
        for mid in all_labels(real_tree) - {ROOT}:
            assert names.name(mid)


@pytest.mark.parametrize("name", ["v4", "v5", "v6", "v7"])
def test_synthetic_hierarchies_match_tensorflow(tmp_path_factory, name):
    src, oic = synthetic_release(tmp_path_factory, name)
    tree = json.loads((src / "bbox_labels_600_hierarchy.json").read_text(encoding="utf-8-sig"))
    with oicore.open(oic) as release:
        assert_matches_tensorflow(release.hierarchy, tree)
        assert_matches_edges(release.hierarchy, tree, ("Subcategory", "Part"))


def test_a_release_without_hierarchy(tmp_path_factory):
    _, oic = synthetic_release(tmp_path_factory, "v3")
    with oicore.open(oic) as release:
        with pytest.raises(LookupError):
            release.hierarchy
