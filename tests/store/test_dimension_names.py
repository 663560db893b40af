"""Every array of a store carries Zarr v3 dimension_names, so the store opens as labelled
arrays in xarray, as Zarr users expect."""

import numpy as np
import pytest
import zarr
from imagefiles import write_class_tree

import mmtok

xarray = pytest.importorskip("xarray")


def test_a_token_store_opens_in_xarray_with_named_dimensions(tmp_path):
    write_class_tree(tmp_path / "data", per_class=2, size=(40, 36))
    mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "image", size=32, shard_size=3,
                   progress=False)
    group = zarr.open_group(tmp_path / "t.zarr", mode="r")
    for name, array in group.arrays():
        names = array.metadata.dimension_names
        assert names is not None and len(names) == array.ndim, name
    data = xarray.open_zarr(tmp_path / "t.zarr", consolidated=False)
    assert data["tokens"].dims == ("sample", "token", "value")
    assert data["label"].dims == data["valid"].dims == data["id"].dims == ("sample",)
    assert data["commits"].dims == ("shard",)
    assert dict(data.sizes)["sample"] == len(mmtok.open_store(tmp_path / "t.zarr"))
    store = mmtok.open_store(tmp_path / "t.zarr")
    np.testing.assert_array_equal(data["tokens"].values[1], store[1]["tokens"])
    assert list(data["id"].values) == [store[i]["id"] for i in range(len(store))]


def test_a_feature_store_names_its_feature_axis(tmp_path):
    write_class_tree(tmp_path / "data", per_class=1, size=(32, 32))
    mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "image", size=32, progress=False)
    for pool, dims in (("cls", ("sample", "feature")),
                       ("none", ("sample", "token", "feature"))):
        with pytest.warns(UserWarning):  # the tiny model's crop differs from timm's config
            mmtok.embed(tmp_path / "t.zarr", tmp_path / f"{pool}.zarr", "vit_tiny_patch16_224",
                        encoder_options={"img_size": 32, "depth": 1}, pool_how=pool,
                        progress=False)
        data = xarray.open_zarr(tmp_path / f"{pool}.zarr", consolidated=False)
        assert data["features"].dims == dims
