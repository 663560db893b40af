"""Sources: folder trees, file lists (stdin), manifests, symlinks, ids and labels."""

import io
import json
import os

import pytest
from imagefiles import noise_image, write_class_tree

from mmtok.errors import UsageError
from mmtok.sources import from_file_list, from_folder, from_manifest, read_path_list

EXT = (".png", ".jpg")


def test_folder_is_sorted_labelled_by_first_folder_and_skips_hidden(tmp_path):
    ids = write_class_tree(tmp_path, classes=("zebra", "ant"), per_class=2)
    (tmp_path / "ant" / "deep").mkdir()
    noise_image(tmp_path / "ant" / "deep" / "x.png")
    noise_image(tmp_path / ".hidden.png")
    noise_image(tmp_path / "loose.png")
    (tmp_path / "notes.txt").write_text("not an image")
    samples = from_folder(tmp_path, EXT)
    assert [s.id for s in samples.samples] == sorted([*ids, "ant/deep/x.png", "loose.png"])
    assert samples.class_names == ["ant", "zebra"]
    by_id = {s.id: s.label for s in samples.samples}
    assert by_id["ant/deep/x.png"] == 0 and by_id["zebra/00.png"] == 1
    assert by_id["loose.png"] == -1
    assert all(s.label == -1 for s in from_folder(tmp_path, EXT, labels="none").samples)


def test_path_lists_split_on_newlines_or_nul():
    assert read_path_list(io.BytesIO(b"a.png\nb c.png\r\n\n")) == ["a.png", "b c.png"]
    assert read_path_list(io.BytesIO(b"a\nb.png\0c.png\0")) == ["a\nb.png", "c.png"]


def test_file_list_keeps_order_and_labels_relative_to_common_root(tmp_path):
    write_class_tree(tmp_path / "data", per_class=2)
    paths = [str(tmp_path / "data/dog/01.png"), str(tmp_path / "data/cat/00.png")]
    samples = from_file_list(paths)
    assert [s.id for s in samples.samples] == ["dog/01.png", "cat/00.png"]
    assert [s.label for s in samples.samples] == [1, 0]
    rooted = from_file_list(paths, root=str(tmp_path))
    assert rooted.samples[0].id == "data/dog/01.png" and rooted.class_names == ["data"]


def test_duplicates_in_a_list_keep_their_slot_with_a_problem(tmp_path):
    write_class_tree(tmp_path, per_class=1)
    path = str(tmp_path / "cat/00.png")
    samples = from_file_list([path, path, str(tmp_path / "dog/00.png")])
    assert samples.samples[1].problem[0] == "duplicate_id"
    assert samples.samples[0].problem is None


def test_manifests_csv_and_jsonl(tmp_path):
    write_class_tree(tmp_path, per_class=2)
    (tmp_path / "m.csv").write_text("path,label\ncat/01.png,feline\ndog/00.png,canine\n"
                                    "cat/00.png,\n")
    samples = from_manifest(tmp_path / "m.csv")
    assert [s.id for s in samples.samples] == ["cat/01.png", "dog/00.png", "cat/00.png"]
    assert samples.class_names == ["canine", "feline"]
    assert [s.label for s in samples.samples] == [1, 0, -1]
    rows = [{"file": "dog/01.png", "y": 10}, {"file": "cat/01.png", "y": 2}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    samples = from_manifest(tmp_path / "m.jsonl", path_column="file", label_column="y")
    assert samples.class_names == ["2", "10"]  # integer labels sort numerically
    assert [s.label for s in samples.samples] == [1, 0]
    with pytest.raises(UsageError, match="no 'path' column"):
        from_manifest(tmp_path / "m.jsonl")


def test_symlinks_outside_the_root_are_refused_unless_allowed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    noise_image(outside / "secret.png")
    root = tmp_path / "root"
    write_class_tree(root, per_class=1)
    os.symlink(outside / "secret.png", root / "cat" / "link.png")
    os.symlink(root / "dog" / "00.png", root / "cat" / "inside.png")
    os.symlink(outside, root / "dog" / "linkdir")
    samples = {s.id: s for s in from_folder(root, EXT).samples}
    assert samples["cat/link.png"].problem[0] == "symlink_escape"
    assert samples["dog/linkdir/secret.png"].problem[0] == "symlink_escape"
    assert samples["cat/inside.png"].problem is None
    allowed = from_folder(root, EXT, allow_external_symlinks=True)
    assert all(s.problem is None for s in allowed.samples)


def test_non_utf8_names_get_printable_unique_ids(tmp_path):
    os.makedirs(tmp_path / "c")
    name = os.fsdecode(b"caf\xe9.png")
    noise_image(tmp_path / "c" / name)
    sample = from_folder(tmp_path, EXT).samples[0]
    assert sample.id == "c/caf\\xe9.png"
    assert os.path.exists(sample.path)


def test_fingerprint_changes_with_the_list(tmp_path):
    write_class_tree(tmp_path, per_class=2)
    before = from_folder(tmp_path, EXT).fingerprint()
    noise_image(tmp_path / "cat" / "new.png")
    assert from_folder(tmp_path, EXT).fingerprint() != before


def test_empty_or_missing_sources_say_so(tmp_path):
    with pytest.raises(UsageError, match="nope does not exist"):
        from_folder(tmp_path / "nope", EXT)
    with pytest.raises(UsageError, match="empty"):
        from_file_list([])


def test_multi_sample_files_expand_into_parts_with_ids(tmp_path):
    from mmtok.errors import SampleError
    from mmtok.sources import expand_parts

    for name in ("a.h5", "b.h5", "c.h5", "d.h5"):
        (tmp_path / name).write_text("x")

    def list_parts(path):
        name = os.path.basename(path)
        if name == "b.h5":
            raise SampleError("decode_error", "not HDF5")
        return {"a.h5": ["row=0", "row=1"], "c.h5": None, "d.h5": []}[name]

    samples = expand_parts(from_folder(tmp_path, (".h5",)), list_parts)
    assert [(s.id, s.part) for s in samples.samples] == [
        ("a.h5#row=0", "row=0"), ("a.h5#row=1", "row=1"), ("b.h5", None), ("c.h5", None),
        ("d.h5", None)]
    assert samples.samples[2].problem == ("decode_error", "not HDF5")
    assert samples.samples[4].problem[0] == "empty_file"
