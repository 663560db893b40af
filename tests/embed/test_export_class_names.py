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
