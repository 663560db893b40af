"""Every export format that can hold them carries the class names, and Parquet works out of
the box: pyarrow is a dependency (issue 20)."""

import tomllib
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from featurestores import gaussian_classes, write_feature_store

CLASSES = ["airplane", "bathtub", "bed"]


@pytest.fixture(scope="module")
def features(tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    values, labels = gaussian_classes(12, 4, 3, 1.0, seed=0)
    labels[5] = -1  # one unlabelled sample
    return write_feature_store(folder / "f.zarr", values, labels, CLASSES, shard_size=8), labels


def test_hdf5_and_npz_carry_the_class_names(features, tmp_path, cli):
    store, _ = features
    assert cli("export", store, tmp_path / "f.h5").exit_code == 0
    with h5py.File(tmp_path / "f.h5") as handle:
        assert [n.decode() for n in handle["class_names"][:]] == CLASSES
    assert cli("export", store, tmp_path / "f.npz").exit_code == 0
    with np.load(tmp_path / "f.npz") as archive:
        assert archive["class_names"].tolist() == CLASSES


def test_parquet_has_a_class_name_column(features, tmp_path, cli):
    store, labels = features
    result = cli("export", store, tmp_path / "f.parquet")
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "f.parquet")
    expected = [CLASSES[i] if i >= 0 else "" for i in labels.tolist()]
    assert table["class_name"].to_pylist() == expected
    assert b"class_names" in table.schema.metadata[b"mmtok"]


def test_pyarrow_is_a_dependency():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert any(d.replace(" ", "").startswith("pyarrow") for d in pyproject["project"]["dependencies"])


def test_every_format_but_npy_carries_a_per_token_stores_token_mask(tmp_path, cli):
    rng = np.random.default_rng(0)
    values = rng.standard_normal((6, 5, 3)).astype(np.float32)
    mask = np.arange(5)[None] < np.array([5, 1, 3, 0, 2, 4])[:, None]
    store = write_feature_store(tmp_path / "tokens.zarr", values, np.arange(6) % 3, CLASSES,
                                shard_size=4, extra={"token_mask": mask})
    for suffix in (".h5", ".npz", ".parquet"):
        result = cli("export", store, tmp_path / f"f{suffix}")
        assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "f.h5") as handle:
        np.testing.assert_array_equal(handle["token_mask"][:], mask)
        np.testing.assert_array_equal(handle["features"][:], values)
    with np.load(tmp_path / "f.npz") as archive:
        np.testing.assert_array_equal(archive["token_mask"], mask)
    table = pq.read_table(tmp_path / "f.parquet")
    assert table["token_mask"].to_pylist() == mask.tolist()
    pooled, _ = gaussian_classes(6, 4, 3, 1.0, seed=1)
    plain = write_feature_store(tmp_path / "pooled.zarr", pooled, np.arange(6) % 3, CLASSES)
    assert cli("export", plain, tmp_path / "p.npz").exit_code == 0
    with np.load(tmp_path / "p.npz") as archive:
        assert "token_mask" not in archive.files  # pooled features have no padding
