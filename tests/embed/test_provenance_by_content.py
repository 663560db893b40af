"""Provenance and resume compare file contents (sha256), never paths (issue 20): the same
weights or projector file copied elsewhere resumes a feature store, and a head trained on
features made on one machine applies to features made on another."""

import shutil

import numpy as np
import pytest
import timm
import torch
import zarr
from imagefiles import write_class_tree
from pointfiles import random_cloud
from safetensors.torch import save_file

import mmtok

TINY = "vit_tiny_patch16_224"
OPTIONS = {"img_size": 32, "depth": 1}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A token store, and the same tiny ViT weights in two folders under two names."""
    root = tmp_path_factory.mktemp("provenance")
    write_class_tree(root / "data", per_class=6, size=(40, 40))
    mmtok.tokenize(root / "data", root / "t.zarr", "image", size=32, patch=16, shard_size=4,
                   progress=False)
    torch.manual_seed(0)
    model = timm.create_model(TINY, pretrained=False, num_classes=0, **OPTIONS)
    (root / "here").mkdir()
    (root / "there").mkdir()
    first = root / "here" / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(first))
    second = root / "there" / "copy-of-vit.safetensors"
    shutil.copy(first, second)
    return root, first, second


def embed(tokens, out, weights, **kwargs):
    return mmtok.embed(tokens, out, TINY, weights=weights, encoder_options=OPTIONS,
                       progress=False, **kwargs)


def test_a_copied_weights_file_resumes_the_store(setup, tmp_path):
    root, first, second = setup
    embed(root / "t.zarr", tmp_path / "f.zarr", first)
    zarr.open_array(tmp_path / "f.zarr" / "commits", mode="r+")[1] = ""  # as if killed
    summary = embed(root / "t.zarr", tmp_path / "f.zarr", second)
    assert summary.status == "complete"
    store = mmtok.open_store(tmp_path / "f.zarr")
    assert store.config["weights_source"].startswith("sha256:")
    assert str(root) not in repr(store.config), "a path leaked into the config"
    assert store.attrs["files"]["weights"] == str(first.resolve())  # kept for information


def test_a_head_applies_to_features_made_from_a_copy_of_the_weights(setup, tmp_path):
    root, first, second = setup
    embed(root / "t.zarr", tmp_path / "a.zarr", first)
    embed(root / "t.zarr", tmp_path / "b.zarr", second)
    mmtok.train_head(tmp_path / "a.zarr", tmp_path / "head", progress=False, device="cpu")
    result = mmtok.predict(tmp_path / "head", tmp_path / "b.zarr", tmp_path / "p.csv",
                           device="cpu")
    assert result["predicted"] == 12


def test_a_copied_projector_file_resumes_the_store(tmp_path):
    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.projectors import build_projector

    (tmp_path / "data" / "a").mkdir(parents=True)
    for i in range(4):
        np.save(tmp_path / "data" / "a" / f"{i}.npy", random_cloud(200, seed=i))
    mmtok.tokenize(tmp_path / "data", tmp_path / "p.zarr", "points", num_points=64,
                   num_groups=8, group_size=8, shard_size=2, progress=False)
    encoder_name = "metatransformer:depth=1,width=32,heads=4"
    config = mmtok.open_store(tmp_path / "p.zarr").config
    projector, _ = build_projector("points", config, load_encoder(encoder_name), seed=3)
    save_file({k: v.contiguous() for k, v in projector.state_dict().items()},
              str(tmp_path / "proj.safetensors"))
    shutil.copy(tmp_path / "proj.safetensors", tmp_path / "renamed.safetensors")
    mmtok.embed(tmp_path / "p.zarr", tmp_path / "f.zarr", encoder_name,
                projector=tmp_path / "proj.safetensors", progress=False)
    zarr.open_array(tmp_path / "f.zarr" / "commits", mode="r+")[1] = ""
    summary = mmtok.embed(tmp_path / "p.zarr", tmp_path / "f.zarr", encoder_name,
                          projector=tmp_path / "renamed.safetensors", progress=False)
    assert summary.status == "complete"
    store = mmtok.open_store(tmp_path / "f.zarr")
    assert "source" not in store.config["projector"]
    assert store.attrs["files"]["projector"] == str(tmp_path / "proj.safetensors")


def test_other_weights_are_still_refused(setup, tmp_path):
    from mmtok.errors import ConfigMismatchError

    root, first, _ = setup
    embed(root / "t.zarr", tmp_path / "f.zarr", first)
    torch.manual_seed(1)
    other = timm.create_model(TINY, pretrained=False, num_classes=0, **OPTIONS)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()},
              str(tmp_path / "other.safetensors"))
    with pytest.raises(ConfigMismatchError, match="weights_sha256"):
        embed(root / "t.zarr", tmp_path / "f.zarr", tmp_path / "other.safetensors")
