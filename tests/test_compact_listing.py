"""The compact sample list of multi-sample files (``ExpandedSamples``, ``PartRange``): the
same samples, fingerprint and store bytes as the list of one ``Sample`` per part it
replaced, for HDF5 point rows (parts as a list with label numbers) and CSV rows (a
``PartRange`` with class-name labels); slices build only the samples asked for. And a
``PartsBatch`` (a run's arrays whole) writes the same bytes as one dict per part."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from pointfiles import random_cloud, write_modelnet_h5

import mmtok
import mmtok.pipeline as pipeline
from mmtok.errors import SampleError, UsageError
from mmtok.sources import (
    UNLABELED,
    ExpandedSamples,
    PartRange,
    SampleList,
    _label_names,
    expand_parts,
    from_file_list,
    part_numbers,
)


def eager_expand_parts(samples, list_parts, part_class_names=None):
    """The expansion as it was before the compact list: one Sample object per part (a
    PartRange is turned back into the list of (name, class name) it stands for)."""
    expanded, named, labelled_file = [], [], None
    for sample in samples.samples:
        if sample.problem is not None:
            expanded.append(sample)
            named.append(None)
            continue
        try:
            parts = list_parts(sample.path)
        except SampleError as exc:
            expanded.append(replace(sample, problem=(exc.kind, exc.message)))
            named.append(None)
            continue
        if isinstance(parts, PartRange):
            names = parts.names if parts.names is not None else map(str, range(parts.count))
            if parts.labels is None:
                parts = list(names)
            elif parts.numbered:
                parts = [(name, None if code < 0 else code)
                         for name, code in zip(names, parts.labels.tolist())]
            else:
                parts = [(name, None if code < 0 else parts.class_names[code])
                         for name, code in zip(names, parts.labels.tolist())]
        if parts is None:
            expanded.append(sample)
            named.append(None)
            continue
        if not parts:
            expanded.append(replace(sample, problem=("empty_file", "the file holds no samples")))
            named.append(None)
        for part in parts:
            name, label = part if isinstance(part, tuple) else (part, None)
            class_name = None
            if isinstance(label, str):
                class_name, sample_label = label, UNLABELED
            elif label is not None:
                labelled_file = labelled_file or sample.path
                sample_label = label
            else:
                sample_label = sample.label
            expanded.append(replace(sample, id=f"{sample.id}#{name}", part=name,
                                    label=sample_label))
            named.append(class_name)
    class_names = samples.class_names
    if any(n is not None for n in named):
        if labelled_file is not None:
            raise UsageError("mixed labels")
        labels, class_names = _label_names(named)
        expanded = [replace(s, label=label) if n is not None else replace(s, label=UNLABELED)
                    for s, n, label in zip(expanded, named, labels)]
    elif labelled_file is not None:
        names = part_class_names(labelled_file) if part_class_names else None
        top = max(s.label for s in expanded)
        class_names = names if names and len(names) > top else [str(i) for i in range(top + 1)]
    return SampleList(expanded, class_names, samples.description)


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("compact")
    rng = np.random.default_rng(0)
    write_modelnet_h5(root / "a.h5", np.stack([random_cloud(16, i) for i in range(37)]),
                      list(rng.integers(0, 4, 37)))
    write_modelnet_h5(root / "b.h5", np.stack([random_cloud(16, i) for i in range(5)]),
                      [2, 0, 1, 1, 3])
    (root / "broken.h5").write_bytes(b"not hdf5")
    for name, rows in (("a.csv", 41), ("b.csv", 9)):
        with open(root / name, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["x", "colour", "label"])
            for i in range(rows):
                label = "" if i % 7 == 3 else ("dog", "cat", "10", "2")[(i * 5 + rows) % 4]
                writer.writerow([float(rng.normal()), ("red", "blue")[i % 2], label])
    (root / "c.csv").write_text("x,colour,label\n1.5,red,cat\n2.5,blue,ant\n4,red,extra,cell\n"
                                "oops,blue,cat\n3.5,red,\n")
    # recordings in class folders: windows labelled by a text column, by label numbers (a
    # missing one takes the folder's label), or by the folder alone
    (root / "walk").mkdir()
    (root / "run").mkdir()
    steps = rng.normal(size=(90, 2)).round(4)
    text = [("up", "down", "")[(i // 7) % 3] for i in range(90)]
    numbers = [str(i // 11 % 3) if i % 13 else "" for i in range(90)]
    for name, labels in (("walk/text.csv", text), ("run/numbers.csv", numbers)):
        (root / name).write_text("c0,c1,label\n" + "".join(
            f"{a},{b},{label}\n" for (a, b), label in zip(steps.tolist(), labels)))
    np.save(root / "run" / "plain.npy", steps[:61])
    return root


WINDOWS = {"window": 8, "stride": 5, "tail": "pad", "scaling": "none", "num_channels": 2,
           "row_labels": "label"}
CASES = {  # modality, files, tokenizer options, run options
    "points": ("points", ("a.h5", "broken.h5", "b.h5"),
               {"num_points": 16, "num_groups": 2, "group_size": 4}, {}),
    "tabular": ("tabular", ("a.csv", "b.csv", "c.csv"), {}, {"stats_from_data": True}),
    "windows-text": ("timeseries", ("walk/text.csv", "run/plain.npy"), WINDOWS, {}),
    "windows-numbers": ("timeseries", ("run/numbers.csv", "run/plain.npy"),
                        {**WINDOWS, "label_rule": "majority"}, {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_stores_are_byte_identical_to_the_eager_listing(sources, tmp_path, monkeypatch, case):
    modality, names, options, run = CASES[case]
    files = [str(sources / n) for n in names]
    compact = mmtok.tokenize(files, tmp_path / "compact.zarr", modality, progress=False,
                             shard_size=8, **options, **run)
    with monkeypatch.context() as patched:
        patched.setattr(pipeline, "expand_parts", eager_expand_parts)
        eager = mmtok.tokenize(files, tmp_path / "eager.zarr", modality, progress=False,
                               shard_size=8, **options, **run)
    assert compact.num_samples == eager.num_samples > 28
    assert compact.num_valid == eager.num_valid
    a, b = tree_bytes(tmp_path / "compact.zarr"), tree_bytes(tmp_path / "eager.zarr")
    assert sorted(a) == sorted(b)
    assert [name for name in a if a[name] != b[name]] == []


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_compact_list_is_the_eager_list(sources, case):
    from mmtok.modalities import create_tokenizer

    modality, names, options, _ = CASES[case]
    tokenizer = create_tokenizer(modality, **options)
    listing = from_file_list([str(sources / n) for n in names])
    lister = tokenizer.list_parts
    if tokenizer.list_parts_label_column:
        lister = lambda path: tokenizer.list_parts(path, label_column=None)  # noqa: E731
    compact = expand_parts(listing, lister, tokenizer.part_class_names)
    eager = eager_expand_parts(listing, lister, tokenizer.part_class_names)
    assert isinstance(compact.samples, ExpandedSamples)
    assert list(compact.samples) == eager.samples
    assert compact.class_names == eager.class_names
    assert compact.fingerprint() == eager.fingerprint()
    assert compact.paths() == eager.paths()
    n = len(eager.samples)
    for start, stop in ((0, 8), (8, 16), (n - 3, n), (5, 41), (n, n + 4)):
        assert compact.samples[start:stop] == eager.samples[start:stop]
    assert compact.samples[-1] == eager.samples[-1] and compact.samples[17] == eager.samples[17]
    with pytest.raises(IndexError):
        compact.samples[n]


def test_a_million_row_listing_holds_arrays_not_samples(tmp_path):
    (tmp_path / "t.csv").write_text("x\n1\n")
    big = PartRange(1_000_000, np.arange(1_000_000, dtype=np.int32) % 3, ("a", "b", "c"))
    listing = expand_parts(from_file_list([str(tmp_path / "t.csv")]), lambda path: big)
    entries = listing.samples._entries
    assert len(listing) == 1_000_000 and len(entries) == 1
    assert entries[0].names is None and entries[0].labels.dtype == np.int32
    shard = pipeline.shard_slice(listing.samples, 3, 4096)
    assert [s.id for s in shard[:2]] == ["t.csv#12288", "t.csv#12289"]
    assert [s.label for s in shard[:3]] == [0, 1, 2] and listing.class_names == ["a", "b", "c"]


@pytest.mark.parametrize("modality", ["tabular", "text"])
def test_a_parts_batch_writes_the_bytes_of_one_dict_per_part(sources, tmp_path, monkeypatch,
                                                             modality):
    from mmtok.modalities import get_modality
    from mmtok.modalities.base import PartsBatch

    if modality == "tabular":
        files = [str(sources / n) for n in ("a.csv", "c.csv")]
        options, expected = {"stats_from_data": True, "bad_cells": "error"}, ["bad_cell", "bad_row"]
    else:
        (tmp_path / "t.csv").write_bytes(b"text,label\nfirst,a\n" + b"long " * 30 + b",b\n"
                                         b"caf\xe9,a\nragged,a,b\n,b\nlast one,a\n" * 3)
        files, options = [str(tmp_path / "t.csv")], {"context_length": 8}
        expected = ["bad_row"] * 3 + ["encoding_error"] * 3
    tokenizer_class = get_modality(modality).tokenizer
    seen = []
    whole = tokenizer_class.tokenize_parts

    def counting(self, path, parts):
        outcome = whole(self, path, parts)
        seen.append(isinstance(outcome, PartsBatch))
        return outcome

    monkeypatch.setattr(tokenizer_class, "tokenize_parts", counting)
    batched = mmtok.tokenize(files, tmp_path / "batch.zarr", modality, progress=False,
                             shard_size=8, **options)
    assert seen and all(seen)  # a shard's run of rows comes back whole
    monkeypatch.setattr(tokenizer_class, "tokenize_parts",
                        lambda self, path, parts: list(whole(self, path, parts)))
    single = mmtok.tokenize(files, tmp_path / "single.zarr", modality, progress=False,
                            shard_size=8, **options)
    assert sorted(e["kind"] for e in batched.errors) == expected
    assert batched.errors == single.errors and batched.counts == single.counts
    assert tree_bytes(tmp_path / "batch.zarr") == tree_bytes(tmp_path / "single.zarr")


def test_a_shard_window_gives_the_ids_labels_runs_and_parts_of_its_samples(tmp_path):
    """``shard_slice`` of a compact list is a compact window: its ids, labels, file runs,
    part names and fingerprint are those of the Sample objects it stands for."""
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x\n1\n")
    listing = from_file_list([str(tmp_path / n) for n in ("a.csv", "b.csv", "a.csv")])
    labels = (np.arange(300, dtype=np.int32) % 4) - 1
    ranges = {"a.csv": PartRange(300, labels, ("p", "q", "r")), "b.csv": PartRange(5)}
    compact = expand_parts(listing, lambda path: ranges[Path(path).name]).samples
    every = list(compact)
    for start, stop in ((0, 64), (250, 303), (299, 306), (303, 306), (7, 8)):
        window = compact.window(start, stop)
        eager = every[start:stop]
        assert list(window) == eager
        assert pipeline.sample_ids(window) == [s.id for s in eager]
        assert pipeline.sample_labels(window).tolist() == [s.label for s in eager]
        assert pipeline.file_runs(window) == pipeline.file_runs(eager)
        for first, last in pipeline.file_runs(window):
            head, parts = pipeline.run_parts(window, first, last)
            assert head == eager[first] and parts == [s.part for s in eager[first:last]]
        assert SampleList(window, ["c"]).fingerprint() == SampleList(eager, ["c"]).fingerprint()
    numbered = compact.parts(10, 20)
    assert numbered == [str(i) for i in range(10, 20)] and numbered[-1] == "19"
    assert np.array_equal(part_numbers(numbered), np.arange(10, 20))
