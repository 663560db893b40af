"""Whole-shard tokenization of multi-sample files: ``Tokenizer.tokenize_parts``, the file runs
``work_shard`` hands it, HDF5 rows and audio windows read with one open per run, and pool
tasks that carry only their own shard's samples."""

import math
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from pointfiles import random_cloud, write_modelnet_h5

import mmtok
import mmtok.pipeline as pipeline
from mmtok.errors import SampleError
from mmtok.modalities import create_tokenizer
from mmtok.modalities.base import Tokenizer
from mmtok.sources import Sample

TINY_POINTS = {"num_points": 16, "num_groups": 2, "group_size": 4}
TINY_AUDIO = {"long_clips": "split", "target_frames": 128, "num_mel_bins": 32}


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file of a store, by relative path: two stores are byte-identical iff equal."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def same_outcomes(batched: list, alone: list) -> None:
    """Batched and per-sample results agree: equal arrays bit for bit, equal errors."""
    assert len(batched) == len(alone)
    for got, want in zip(batched, alone):
        if isinstance(want, SampleError):
            assert isinstance(got, SampleError)
            assert (got.kind, got.stage, got.message) == (want.kind, want.stage, want.message)
            continue
        assert sorted(got) == sorted(want)
        for name in want:
            assert np.asarray(got[name]).dtype == np.asarray(want[name]).dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name, strict=True)


def one_by_one(tokenizer: Tokenizer, path: str, parts: list) -> list:
    """The per-sample path: ``Tokenizer``'s default loop over ``tokenize_file``."""
    return Tokenizer.tokenize_parts(tokenizer, path, parts)


def per_sample_only(monkeypatch, tokenizer_class: type) -> None:
    """Make ``tokenizer_class`` use the per-sample path (the code before batching)."""
    monkeypatch.setattr(tokenizer_class, "tokenize_parts", Tokenizer.tokenize_parts)


class OpenCounter:
    """Replaces ``module.name`` (a file class such as ``h5py.File``) with a subclass that
    counts how often it is constructed; every reader that looks the name up at call time
    goes through it."""

    def __init__(self, monkeypatch, module, name: str) -> None:
        self.count = 0
        counter, real = self, getattr(module, name)

        class Counting(real):
            def __init__(self, *args, **kwargs):
                counter.count += 1
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(module, name, Counting)


# --- HDF5 rows ---------------------------------------------------------------------------


def test_20000_hdf5_rows_open_the_file_once_per_shard(tmp_path, monkeypatch):
    rows, shard_size = 20_000, 4096
    rng = np.random.default_rng(0)
    clouds = rng.standard_normal((rows, 16, 3)).astype(np.float32)
    write_modelnet_h5(tmp_path / "rows.h5", clouds, list(rng.integers(0, 5, rows)))
    opens = OpenCounter(monkeypatch, h5py, "File")
    summary = mmtok.tokenize([str(tmp_path / "rows.h5")], tmp_path / "t.zarr", "points",
                             workers=1, shard_size=shard_size, progress=False, **TINY_POINTS)
    shards = math.ceil(rows / shard_size)
    assert summary.num_valid == rows
    assert opens.count <= 1 + shards  # listing once, then once per shard's run of rows
    store = mmtok.open_store(tmp_path / "t.zarr")
    tokenizer = create_tokenizer("points", **TINY_POINTS)
    for row in (0, 4095, 4096, rows - 1):  # both sides of a shard border
        want = tokenizer.tokenize_file(str(tmp_path / "rows.h5"), str(row))
        np.testing.assert_array_equal(store[row]["tokens"], want["tokens"])
        np.testing.assert_array_equal(store[row]["centers"], want["centers"])


def test_the_open_counter_sees_the_per_sample_path_open_every_row(tmp_path, monkeypatch):
    """The check above can fail: the per-sample path opens the file once per row."""
    write_modelnet_h5(tmp_path / "rows.h5", np.stack([random_cloud(16, i) for i in range(300)]),
                      [0] * 300)
    per_sample_only(monkeypatch, type(create_tokenizer("points")))
    opens = OpenCounter(monkeypatch, h5py, "File")
    mmtok.tokenize([str(tmp_path / "rows.h5")], tmp_path / "t.zarr", "points", workers=1,
                   progress=False, **TINY_POINTS)
    assert opens.count >= 300


def bad_rows_file(path: Path) -> None:
    """12 rows: row 3 holds a NaN, row 7 is one point repeated, the rest are fine."""
    clouds = np.stack([random_cloud(24, seed=i) for i in range(12)])
    clouds[3, 5, 1] = np.nan
    clouds[7] = 0.25
    write_modelnet_h5(path, clouds, list(range(12)))


@pytest.mark.parametrize("block_bytes", [None, 24 * 3 * 4 * 2])  # one slice, or 2-row slices
def test_batched_hdf5_rows_equal_lone_reads_errors_included(tmp_path, monkeypatch, block_bytes):
    from mmtok.modalities.points import readers

    if block_bytes is not None:
        monkeypatch.setattr(readers, "HDF5_BLOCK_BYTES", block_bytes)
    bad_rows_file(tmp_path / "b.h5")
    tokenizer = create_tokenizer("points", **TINY_POINTS)
    path = str(tmp_path / "b.h5")
    for parts in ([str(r) for r in range(12)], ["9", "2", "3", "4", "11", "2"], ["7"]):
        batched = tokenizer.tokenize_parts(path, parts)
        same_outcomes(batched, one_by_one(tokenizer, path, parts))
    kinds = [getattr(r, "kind", None) for r in tokenizer.tokenize_parts(path, ["3", "7", "0"])]
    assert kinds == ["nan_points", "degenerate_cloud", None]


def test_an_unreadable_hdf5_file_fails_every_row_with_its_error(tmp_path):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5 at all" * 10)
    tokenizer = create_tokenizer("points", **TINY_POINTS)
    with pytest.raises(SampleError) as caught:
        tokenizer.tokenize_parts(str(tmp_path / "bad.h5"), ["0", "1"])
    with pytest.raises(SampleError) as alone:
        tokenizer.tokenize_file(str(tmp_path / "bad.h5"), "1")
    assert (caught.value.kind, caught.value.message) == (alone.value.kind, alone.value.message)


def test_points_stores_are_byte_identical_batched_or_per_sample(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    bad_rows_file(data / "a.h5")
    write_modelnet_h5(data / "b.h5", np.stack([random_cloud(20, i) for i in range(5)]),
                      [1] * 5)
    np.save(data / "c.npy", random_cloud(40))
    options = dict(workers=1, shard_size=8, progress=False, **TINY_POINTS)
    mmtok.tokenize(data, tmp_path / "batched.zarr", "points", **options)
    per_sample_only(monkeypatch, type(create_tokenizer("points")))
    mmtok.tokenize(data, tmp_path / "alone.zarr", "points", **options)
    assert tree_bytes(tmp_path / "batched.zarr") == tree_bytes(tmp_path / "alone.zarr")


# --- audio windows -----------------------------------------------------------------------


def long_recording(path: Path, seconds: float = 6.3, rate: int = 44100) -> None:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * (300 + 200 * t) * t)
    noise = 0.02 * np.random.default_rng(0).standard_normal(len(t))
    sf.write(path, np.stack([wave + noise, wave - noise], axis=1).astype(np.float32), rate,
             subtype="PCM_16")


def test_audio_windows_are_decoded_from_one_open_and_equal_lone_windows(tmp_path, monkeypatch):
    long_recording(tmp_path / "long.wav")
    tokenizer = create_tokenizer("audio", **TINY_AUDIO)
    path = str(tmp_path / "long.wav")
    parts = tokenizer.list_parts(path)
    assert len(parts) == 5
    alone = one_by_one(tokenizer, path, parts)
    opens = OpenCounter(monkeypatch, sf, "SoundFile")
    batched = tokenizer.tokenize_parts(path, parts)
    assert opens.count == 1
    same_outcomes(batched, alone)
    tokenizer.statistics_from([path])  # --stats-from-data: the header, then one decode pass
    assert opens.count == 1 + 2


def test_audio_stores_are_byte_identical_batched_or_per_sample(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    long_recording(data / "a.wav")
    (data / "b.wav").write_bytes(os.urandom(2000))  # every window of it is one decode_error
    long_recording(data / "c.flac", seconds=3.0, rate=16000)
    options = dict(workers=1, shard_size=4, progress=False, **TINY_AUDIO)
    mmtok.tokenize(data, tmp_path / "batched.zarr", "audio", **options)
    per_sample_only(monkeypatch, type(create_tokenizer("audio")))
    mmtok.tokenize(data, tmp_path / "alone.zarr", "audio", **options)
    assert tree_bytes(tmp_path / "batched.zarr") == tree_bytes(tmp_path / "alone.zarr")


# --- work_shard: runs of one file, errors on their own sample ------------------------------


class Recording(Tokenizer):
    """Records each ``tokenize_parts`` call; parts named ``bad`` fail, files named
    ``broken`` fail as a whole."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list]] = []

    def sample_arrays(self):
        from mmtok.store.layout import ArraySpec

        return {"value": ArraySpec((), "int32")}

    def tokenize_file(self, path, part=None):
        if part == "bad":
            raise SampleError("bad_part", f"{path}#{part}")
        return {"value": np.int32(len(part or ""))}

    def tokenize_parts(self, path, parts):
        self.calls.append((path, list(parts)))
        if path == "broken":
            raise SampleError("decode_error", "the whole file")
        return super().tokenize_parts(path, parts)


class KeepingWriter:
    """Stands in for a ShardWriter: keeps what ``work_shard`` writes."""

    def __init__(self, num_samples: int, shard_size: int) -> None:
        self.attrs = {"num_samples": num_samples, "shard_size": shard_size}

    def write(self, shard, data):
        return data


def samples_of(spec: list[tuple[str, str | None]]) -> list[Sample]:
    return [Sample(f"{path}#{part}", path, problem=("duplicate_id", "dup") if path == "dup"
                   else None, part=part) for path, part in spec]


def test_work_shard_calls_once_per_file_run_and_keeps_errors_on_their_sample():
    samples = samples_of([("a", "x"), ("a", "bad"), ("a", "zzz"), ("dup", "1"), ("a", "q"),
                          ("broken", "1"), ("broken", "2"), ("b", None)])
    assert pipeline.file_runs(samples) == [(0, 3), (3, 4), (4, 5), (5, 7), (7, 8)]
    tokenizer = Recording()
    data = pipeline.work_shard(0, samples, tokenizer, KeepingWriter(8, 8))
    assert tokenizer.calls == [("a", ["x", "bad", "zzz"]), ("a", ["q"]),
                               ("broken", ["1", "2"]), ("b", [None])]  # "dup" is never read
    assert data.valid.tolist() == [True, False, True, False, True, False, False, True]
    assert data.arrays["value"].tolist() == [1, 0, 3, 0, 1, 0, 0, 0]
    assert [(e["index"], e["kind"]) for e in data.errors] == [
        (1, "bad_part"), (3, "duplicate_id"), (5, "decode_error"), (6, "decode_error")]
    assert data.errors[1]["stage"] == "source"


def test_work_shard_takes_only_its_own_slice_and_refuses_a_short_result():
    samples = samples_of([("a", str(i)) for i in range(10)])
    writer = KeepingWriter(10, 4)
    data = pipeline.work_shard(2, pipeline.shard_slice(samples, 2, 4), Recording(), writer)
    assert data.ids == ["a#8", "a#9"]
    with pytest.raises(ValueError, match="shard 2 holds samples 8:10"):
        pipeline.work_shard(2, samples, Recording(), writer)  # the whole list: a caller bug

    class Short(Recording):
        def tokenize_parts(self, path, parts):
            return super().tokenize_parts(path, parts)[:-1]

    with pytest.raises(RuntimeError, match="returned 1 results for 2 parts"):
        pipeline.work_shard(2, pipeline.shard_slice(samples, 2, 4), Short(), writer)


def test_pool_workers_get_no_sample_list_and_each_task_its_own_slice(tmp_path, monkeypatch):
    write_modelnet_h5(tmp_path / "rows.h5", np.stack([random_cloud(16, i) for i in range(10)]),
                      [0] * 10)
    from mmtok.engines import process

    seen: dict[str, list] = {"jobs": [], "tasks": []}
    real_start, real_give = process._Worker.__init__, process._Worker.give

    def start(self, context, job, counter):
        seen["jobs"].append(job)  # what a worker is started with
        real_start(self, context, job, counter)

    def give(self, task):
        if task is not None:
            seen["tasks"].append(task)
        real_give(self, task)

    monkeypatch.setattr(process._Worker, "__init__", start)
    monkeypatch.setattr(process._Worker, "give", give)
    mmtok.tokenize([str(tmp_path / "rows.h5")], tmp_path / "two.zarr", "points", workers=2,
                   shard_size=4, progress=False, **TINY_POINTS)
    mmtok.tokenize([str(tmp_path / "rows.h5")], tmp_path / "one.zarr", "points", workers=1,
                   shard_size=4, progress=False, **TINY_POINTS)
    assert len(seen["jobs"]) == 2 and not any(
        isinstance(value, (list, tuple)) and value and isinstance(value[0], Sample)
        for job in seen["jobs"] for value in vars(job).values())
    assert sorted((shard, [s.part for s in part]) for shard, part in seen["tasks"]) == [
        (0, ["0", "1", "2", "3"]), (1, ["4", "5", "6", "7"]), (2, ["8", "9"])]
    assert tree_bytes(tmp_path / "two.zarr") == tree_bytes(tmp_path / "one.zarr")
