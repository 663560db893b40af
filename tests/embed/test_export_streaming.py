"""export copies the features a shard at a time: every format holds exactly the store's
rows, and the peak memory does not grow with the store."""

import sys

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from conformance.bounded import run_bounded
from featurestores import write_feature_store

FORMATS = (".h5", ".npz", ".npy", ".parquet")


def per_token_store(path, num, tokens=5, dim=3, shard_size=4, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((num, tokens, dim)).astype(np.float32)
    mask = np.arange(tokens)[None] < rng.integers(0, tokens + 1, num)[:, None]
    labels = rng.integers(-1, 3, num)
    valid = np.ones(num, bool)
    valid[num // 2] = False
    values[~valid] = 0
    ids = [f"clip-{i:04d}.wav" for i in range(num)]
    write_feature_store(path, values, labels, ["a", "b", "c"], valid=valid, ids=ids,
                        shard_size=shard_size, extra={"token_mask": mask})
    return values, mask, labels, valid, ids


def test_every_format_holds_the_stores_rows_across_shards(tmp_path, cli):
    values, mask, labels, valid, ids = per_token_store(tmp_path / "f.zarr", 11)  # 3 shards
    for suffix in FORMATS:
        result = cli("export", tmp_path / "f.zarr", tmp_path / f"out{suffix}")
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "out.h5") as handle:
        np.testing.assert_array_equal(handle["features"][:], values)
        np.testing.assert_array_equal(handle["token_mask"][:], mask)
        np.testing.assert_array_equal(handle["label"][:], labels)
        np.testing.assert_array_equal(handle["valid"][:], valid)
        assert [i.decode() for i in handle["id"][:]] == ids
    with np.load(tmp_path / "out.npz") as archive:
        assert sorted(archive.files) == ["class_names", "features", "id", "label",
                                         "token_mask", "valid"]
        np.testing.assert_array_equal(archive["features"], values)
        np.testing.assert_array_equal(archive["token_mask"], mask)
        assert archive["id"].tolist() == ids and archive["class_names"].tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), values)
    file = pq.ParquetFile(tmp_path / "out.parquet")
    assert file.metadata.num_row_groups == 3  # one per shard
    table = file.read()
    assert table.column_names == ["id", "label", "class_name", "valid", "features", "token_mask"]
    np.testing.assert_array_equal(np.array(table["features"].to_pylist(), np.float32),
                                  values.reshape(11, -1))
    assert table["token_mask"].to_pylist() == mask.reshape(11, -1).tolist()
    assert table["id"].to_pylist() == ids
    assert table["label"].to_pylist() == labels.tolist()
    assert not list((tmp_path).glob("*.partial*"))  # written under a temporary name, renamed


@pytest.fixture(scope="module")
def sized_stores(tmp_path_factory):
    """48 KB of features per sample in shards of 64 (3 MB): 16 shards (48 MB) and 64 shards
    (192 MB); the large one held whole would add 144 MB."""
    folder = tmp_path_factory.mktemp("sized")
    for shards in (16, 64):
        per_token_store(folder / f"s{shards}.zarr", 64 * shards, tokens=48, dim=256,
                        shard_size=64)
    return folder


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".parquet"])  # .npy: as a .npz member
def test_the_peak_memory_of_an_export_does_not_grow_with_the_store(sized_stores, tmp_path,
                                                                   suffix):
    peaks = {}
    for shards in (16, 64):
        _, peaks[shards] = run_bounded(sys.executable,
                                       ["export", str(sized_stores / f"s{shards}.zarr"),
                                        str(tmp_path / f"s{shards}{suffix}")],
                                       tmp_path / f"s{shards}.out", time_limit=300)
    grown = (peaks[64] - peaks[16]) / 2**20
    assert grown < 40, f"{suffix}: the peak grew by {grown:.0f} MiB from 48 to 192 MB of features"
