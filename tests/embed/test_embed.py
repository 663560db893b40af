"""`mmtok embed` and `mmtok export`: exactness against timm, pooling, resume, export."""

import json

import h5py
import numpy as np
import pytest
import timm
import torch
from imagefiles import write_class_tree
from killing import assert_same_store, kill_repeatedly, mmtok_command
from pointfiles import random_cloud
from safetensors.torch import save_file

import mmtok
from mmtok.embedding.pooling import pool
from mmtok.embedding.projectors import Projected, run_encoder
from mmtok.errors import ConfigMismatchError, StoreError
from mmtok.modalities import create_tokenizer

TINY = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A tiny timm ViT (32x32 input, 2 blocks) with random weights, saved to safetensors."""
    torch.manual_seed(0)
    model = timm.create_model(TINY, pretrained=False, num_classes=0, img_size=32, depth=2)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return model.eval(), path


@pytest.fixture(scope="module")
def image_tokens(tmp_path_factory):
    root = tmp_path_factory.mktemp("images")
    write_class_tree(root / "data", per_class=5, size=(48, 40))
    (root / "data" / "cat" / "zz_broken.png").write_bytes(b"nope")
    mmtok.tokenize(root / "data", root / "t.zarr", "image", size=32, patch=16, shard_size=4,
                   progress=False)
    return root


TINY_OPTIONS = {"img_size": 32, "depth": 2}


def embed_tiny(tokens, out, weights, **kwargs):
    return mmtok.embed(tokens, out, TINY, weights=weights, progress=False,
                       encoder_options=TINY_OPTIONS, **kwargs)


def test_image_features_equal_timm_forward_features(image_tokens, tiny_vit, tmp_path):
    model, weights = tiny_vit
    summary = embed_tiny(image_tokens / "t.zarr", tmp_path / "f.zarr", weights,
                         pool_how="cls+mean+max", batch_size=3)
    assert summary.status == "complete" and summary.num_invalid == 1
    feats = mmtok.open_store(tmp_path / "f.zarr")
    tokens = mmtok.open_store(image_tokens / "t.zarr")
    tokenizer = create_tokenizer("image", size=32, patch=16)
    # by default the encoder's own statistics (timm's data config: 0.5 for this model)
    data = timm.data.resolve_data_config({}, model=model)
    assert data["mean"] == (0.5, 0.5, 0.5) != tuple(tokens.config["mean"])
    mean = torch.tensor(data["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(data["std"]).view(1, 3, 1, 1)
    checked = 0
    for i in range(len(tokens)):
        item = feats[i]
        assert item["id"] == tokens[i]["id"] and item["label"] == tokens[i]["label"]
        if not item["valid"]:
            assert not item["features"].any()
            continue
        pixels, _ = tokenizer.load(str(image_tokens / "data" / item["id"]))
        image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
        with torch.no_grad():
            x = model.forward_features((image - mean) / std)
        expected = torch.cat([x[:, 0], x[:, 1:].mean(1), x[:, 1:].amax(1)], dim=1)[0]
        np.testing.assert_allclose(item["features"], expected.numpy(), atol=1e-5, rtol=0)
        checked += 1
    assert checked == 10


def test_pool_none_keeps_every_token_of_timms_forward_features(image_tokens, tiny_vit,
                                                              tmp_path):
    model, weights = tiny_vit
    embed_tiny(image_tokens / "t.zarr", tmp_path / "f.zarr", weights, pool_how="none",
               statistics="store")  # the statistics recorded at tokenize time (CLIP's)
    feats = mmtok.open_store(tmp_path / "f.zarr")
    assert feats.group["features"].shape == (11, 5, 192)  # cls + 2x2 patches, width 192
    item = next(feats[i] for i in range(len(feats)) if feats[i]["valid"])
    tokens = mmtok.open_store(image_tokens / "t.zarr")
    tokenizer = create_tokenizer("image", size=32, patch=16)
    pixels, _ = tokenizer.load(str(image_tokens / "data" / item["id"]))
    image = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 255
    mean = torch.tensor(tokens.config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(tokens.config["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.forward_features((image - mean) / std)[0]
    np.testing.assert_allclose(item["features"], expected.numpy(), atol=1e-5, rtol=0)


def test_padding_never_changes_a_pooled_feature():
    from mmtok.embedding.encoders import load_encoder

    encoder = load_encoder("metatransformer:depth=2,width=32,heads=4", seed=1)
    torch.manual_seed(2)
    content = torch.randn(1, 6, 32)
    cls = torch.randn(1, 1, 32)
    padded = torch.cat([cls, content, torch.randn(1, 5, 32) * 100], dim=1)
    short = Projected(torch.cat([cls, content], dim=1), None, 1)
    long = Projected(padded, torch.arange(11)[None] < 6, 1)
    with torch.no_grad():
        a = run_encoder(encoder, short)
        b = run_encoder(encoder, long)
    for how in ("cls", "mean", "max", "cls+mean+max"):
        np.testing.assert_allclose(pool(a, None, 1, how), pool(b, long.mask, 1, how), atol=1e-5)


def test_points_embed_through_a_metatransformer_layout(tmp_path):
    (tmp_path / "data" / "a").mkdir(parents=True)
    for i in range(4):
        np.save(tmp_path / "data" / "a" / f"{i}.npy", random_cloud(200, seed=i))
    mmtok.tokenize(tmp_path / "data", tmp_path / "p.zarr", "points", num_points=128,
                   num_groups=16, group_size=8, progress=False)
    summary = mmtok.embed(tmp_path / "p.zarr", tmp_path / "f.zarr",
                          "metatransformer:depth=2,width=32,heads=4", pool_how="cls+mean+max",
                          progress=False)
    assert summary.num_valid == 4
    features = mmtok.open_store(tmp_path / "f.zarr")[0]["features"]
    assert features.shape == (96,) and np.isfinite(features).all()
    again = mmtok.embed(tmp_path / "p.zarr", tmp_path / "g.zarr",
                        "metatransformer:depth=2,width=32,heads=4", pool_how="cls+mean+max",
                        progress=False)
    assert again.num_valid == 4
    np.testing.assert_array_equal(mmtok.open_store(tmp_path / "g.zarr")[0]["features"], features)


def test_killed_mid_run_then_rerun_equals_an_uninterrupted_run(tmp_path, tiny_vit):
    """The image projector and a timm encoder through a kill; the many-kill loop over every
    writer lives in tests/reliability/test_kill_resume.py."""
    _, weights = tiny_vit
    write_class_tree(tmp_path / "data", per_class=20, size=(40, 40))
    mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "image", size=32, patch=16,
                   shard_size=1, progress=False)
    reference = embed_tiny(tmp_path / "t.zarr", tmp_path / "ref.zarr", weights, batch_size=1)
    command = mmtok_command(
        "embed", tmp_path / "t.zarr", "-o", tmp_path / "k.zarr", "--encoder", TINY,
        "--weights", weights, "--batch-size", 1, "--no-progress",
        "--encoder-option", "img_size=32", "--encoder-option", "depth=2")
    log = kill_repeatedly(command, tmp_path / "k.zarr", np.random.default_rng(3), kills=1,
                          window=reference.seconds / 2)
    assert log.kills == 1 and log.progress[0] < 40, "the kill must land part-way"
    assert_same_store(tmp_path / "k.zarr", tmp_path / "ref.zarr")
    assert mmtok.validate_store(tmp_path / "k.zarr").ok


def test_export_round_trips(image_tokens, tiny_vit, tmp_path, cli):
    _, weights = tiny_vit
    embed_tiny(image_tokens / "t.zarr", tmp_path / "f.zarr", weights)
    store = mmtok.open_store(tmp_path / "f.zarr")
    features = store.group["features"][:]
    for name in ("out.h5", "out.npy", "out.npz"):
        result = cli("export", tmp_path / "f.zarr", tmp_path / name)
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), features)
    with h5py.File(tmp_path / "out.h5") as handle:
        np.testing.assert_array_equal(handle["features"][:], features)
        ids = [i.decode() for i in handle["id"][:]]
        assert ids == [str(i) for i in store.group["id"][:]]
        assert json.loads(handle.attrs["mmtok"])["config"]["encoder"] == TINY
    with np.load(tmp_path / "out.npz") as archive:
        np.testing.assert_array_equal(archive["valid"], store.group["valid"][:])
    parquet = cli("export", tmp_path / "f.zarr", tmp_path / "out.parquet")
    try:
        import pyarrow.parquet as pq
    except ImportError:
        assert parquet.exit_code == 2 and "needs pyarrow" in parquet.stderr
        assert not (tmp_path / "out.parquet").exists()
    else:
        table = pq.read_table(tmp_path / "out.parquet")
        np.testing.assert_allclose(np.stack(table["features"].to_numpy(zero_copy_only=False)),
                                   features.reshape(len(features), -1))
    bad = cli("export", tmp_path / "f.zarr", tmp_path / "out.csv")
    assert bad.exit_code == 2 and "choose a file ending in" in bad.stderr


def test_feature_store_records_its_origin_and_refuses_another_config(image_tokens, tiny_vit,
                                                                      tmp_path):
    _, weights = tiny_vit
    embed_tiny(image_tokens / "t.zarr", tmp_path / "f.zarr", weights)
    config = mmtok.open_store(tmp_path / "f.zarr").config
    assert config["encoder"] == TINY and len(config["weights_sha256"]) == 64
    assert config["tokens_config_hash"] == mmtok.open_store(image_tokens / "t.zarr").attrs["config_hash"]
    with pytest.raises(ConfigMismatchError, match="pool"):
        embed_tiny(image_tokens / "t.zarr", tmp_path / "f.zarr", weights, pool_how="mean")


def test_incomplete_token_store_is_refused(image_tokens, tiny_vit, tmp_path):
    import shutil
    import zarr

    shutil.copytree(image_tokens / "t.zarr", tmp_path / "t.zarr")
    zarr.open_array(tmp_path / "t.zarr" / "commits", mode="r+")[1] = ""
    with pytest.raises(StoreError, match="not complete"):
        embed_tiny(tmp_path / "t.zarr", tmp_path / "f.zarr", tiny_vit[1])


def test_audio_clips_padded_differently_give_the_same_feature(tmp_path):
    import soundfile

    import mmtok.modalities.audio  # noqa: F401

    rng = np.random.default_rng(0)
    clip = (rng.normal(size=8000) * 0.1).astype(np.float32)  # 0.5 s at 16 kHz
    (tmp_path / "data" / "a").mkdir(parents=True)
    soundfile.write(tmp_path / "data" / "a" / "clip.wav", clip, 16000)
    features = []
    for frames in (64, 96):  # the same clip padded to two lengths
        mmtok.tokenize(tmp_path / "data", tmp_path / f"t{frames}.zarr", "audio",
                       target_frames=frames, progress=False)
        mmtok.embed(tmp_path / f"t{frames}.zarr", tmp_path / f"f{frames}.zarr",
                    "metatransformer:depth=2,width=32,heads=4", pool_how="cls+mean+max",
                    progress=False)
        features.append(mmtok.open_store(tmp_path / f"f{frames}.zarr")[0]["features"])
    assert np.abs(features[0]).sum() > 0
    np.testing.assert_allclose(features[0], features[1], atol=1e-5)


def test_a_saved_projector_loads_strictly(tmp_path):
    from mmtok.embedding.encoders import EncoderWeightsError, load_encoder
    from mmtok.embedding.projectors import build_projector

    config = {"channels": []}
    encoder = load_encoder("metatransformer:depth=1,width=32,heads=4")
    projector, _ = build_projector("points", config, encoder, seed=3)
    state = {k: v.contiguous() for k, v in projector.state_dict().items()}
    save_file(state, str(tmp_path / "p.safetensors"))
    loaded, record = build_projector("points", config, encoder, seed=9,
                                     weights=tmp_path / "p.safetensors")
    assert len(record["sha256"]) == 64
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, state[key]), key
    state.pop("position.0.weight")
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(EncoderWeightsError, match="position.0.weight"):
        build_projector("points", config, encoder, seed=9, weights=tmp_path / "bad.safetensors")


@pytest.mark.slow  # a cold torch.compile of the tiny ViT takes ~45 s on 2 cores
def test_compiled_forward_equals_eager(image_tokens, tiny_vit, tmp_path, cli):
    # batch 3 over shards of 4 with one invalid sample: short batches are padded for the
    # compiled graph, so this also checks that padding rows leave the real rows alone
    _, weights = tiny_vit
    embed_tiny(image_tokens / "t.zarr", tmp_path / "eager.zarr", weights,
               pool_how="cls+mean+max", batch_size=3)
    result = cli("embed", image_tokens / "t.zarr", "-o", tmp_path / "compiled.zarr",
                 "--encoder", TINY, "--weights", weights, "--pool", "cls+mean+max",
                 "--batch-size", "3", "--encoder-option", "img_size=32",
                 "--encoder-option", "depth=2", "--no-progress", "--compile")
    assert result.exit_code == 0, result.output
    compiled = mmtok.open_store(tmp_path / "compiled.zarr")
    reference = mmtok.open_store(tmp_path / "eager.zarr")
    np.testing.assert_allclose(compiled.group["features"][:], reference.group["features"][:],
                               atol=1e-5, rtol=0)
    np.testing.assert_array_equal(compiled.group["valid"][:], reference.group["valid"][:])
    assert compiled.config == reference.config  # compile is not part of the config


def test_a_store_resumes_across_the_compile_flag(image_tokens, tiny_vit, tmp_path):
    _, weights = tiny_vit
    store = tmp_path / "f.zarr"
    first = embed_tiny(image_tokens / "t.zarr", store, weights, batch_size=3)
    config = mmtok.open_store(store).config
    assert "compile" not in json.dumps(config)
    # the finished store is taken as done, not refused as made with another config (and the
    # shape probe runs eagerly, so nothing gets compiled when there is nothing to do)
    again = embed_tiny(image_tokens / "t.zarr", store, weights, batch_size=3, compile=True)
    assert again.status == "complete" and again.num_valid == first.num_valid
    assert again.shards_skipped == again.shards_total


def test_compiled_embedder_pads_short_batches_to_one_shape(tiny_vit):
    from mmtok.embedding.pipeline import Embedder

    calls = []
    embedder = Embedder(None, None, "cls", torch.device("cpu"), "float32", batch_size=4)
    embedder.compiled = lambda batch: (calls.append(len(batch["tokens"]))
                                       or {"features": batch["tokens"].float()})
    rows = {"tokens": np.arange(6, dtype=np.float32)[:, None] + 1}
    out = embedder(rows)["features"]
    assert calls == [4, 4]  # 6 rows -> 4 + 2 padded to 4
    np.testing.assert_array_equal(out[:, 0], np.arange(6) + 1)


def test_pool_none_records_which_tokens_are_real(tmp_path):
    """Per-token features come with ``token_mask``: the projector's mask behind the prefix.
    A graph's padding is not at the end (node slots, then edge slots), so it is a mask, not
    a length; pooled features need none."""
    from mmtok.modalities.graph.demo import make_demo_graph

    make_demo_graph(tmp_path / "graphs", per_class=2)
    mmtok.tokenize(tmp_path / "graphs", tmp_path / "t.zarr", "graph", max_nodes=16,
                   max_edges=40, lap_k=4, progress=False)  # two graphs too large: invalid
    encoder = "metatransformer:depth=1,width=16,heads=2"
    mmtok.embed(tmp_path / "t.zarr", tmp_path / "f.zarr", encoder, pool_how="none",
                progress=False)
    tokens, features = (mmtok.open_store(tmp_path / n) for n in ("t.zarr", "f.zarr"))
    mask = features.group["token_mask"][:]
    assert mask.dtype == bool and mask.shape == (len(tokens), 1 + 16 + 40)
    nodes, edges = tokens.group["num_nodes"][:], tokens.group["num_edges"][:]
    valid = tokens.group["valid"][:]
    assert 0 < valid.sum() < len(tokens)
    slots = np.arange(56)
    for i in range(len(tokens)):
        real = np.concatenate([[True], np.where(slots < 16, slots < nodes[i],
                                                slots < 16 + edges[i])])
        np.testing.assert_array_equal(mask[i], real & valid[i])  # invalid: no real token
        assert features[i]["token_mask"].sum() == valid[i] * (1 + nodes[i] + edges[i])
    assert (nodes[valid] < 16).any()  # padding among the node slots, before real edges
    mmtok.embed(tmp_path / "t.zarr", tmp_path / "p.zarr", encoder, pool_how="mean",
                progress=False)
    assert "token_mask" not in mmtok.open_store(tmp_path / "p.zarr").array_names
