"""--tune tokenizer: projector + head trained through a frozen encoder, reused by embed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import mmtok
from mmtok.modalities.points.demo import make_demo_points

ENCODER = "metatransformer:depth=1,width=32,heads=4"


@pytest.fixture(scope="module")
def clouds(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tune")
    make_demo_points(folder / "data", per_class=8, count=256)
    mmtok.tokenize(folder / "data", folder / "tokens.zarr", "points", num_points=128,
                   num_groups=16, group_size=8, shard_size=8, progress=False)
    return folder


def test_tuning_lowers_the_loss_and_leaves_the_encoder_bit_identical(clouds, tmp_path, cli):
    from mmtok.embedding.encoders import load_encoder
    from mmtok.heads.tune import state_digest

    before = state_digest(load_encoder(ENCODER, seed=0).module)
    result = cli("train-head", clouds / "tokens.zarr", "-o", tmp_path / "tuned", "--tune",
                 "tokenizer", "--encoder", ENCODER, "--epochs", "8", "--batch-size", "8",
                 "--lr", "3e-3", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    losses = [epoch["train_loss"] for epoch in run["extra"]["history"]]
    assert len(losses) == 8
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    assert run["extra"]["encoder_unchanged"] is True
    # The encoder the run used is rebuilt from the same seed: its weights must be the ones
    # the run started from, bit for bit (the run also checks this itself).
    assert state_digest(load_encoder(ENCODER, seed=0).module) == before
    record = json.loads((tmp_path / "tuned" / "projector.json").read_text())
    assert record["kind"] == "mini-pointnet" and record["trained_on"]["encoder"] == ENCODER
    for name in ("projector.safetensors", "head.safetensors", "head.json", "metrics.json",
                 "confusion.png", "learning_curve.png"):
        assert (tmp_path / "tuned" / name).is_file(), name


def test_encoder_weights_are_not_touched_by_the_optimiser(clouds, tmp_path, monkeypatch):
    """Spy on the encoder the run loads: its tensors after training equal a copy taken
    before, and none of them is in the optimiser."""
    import torch

    from mmtok.embedding import encoders
    from mmtok.heads import tune

    seen = {}
    original_load = encoders.load_encoder

    def spying_load(*args, **kwargs):
        encoder = original_load(*args, **kwargs)
        seen["encoder"] = encoder
        seen["before"] = {k: v.clone() for k, v in encoder.module.state_dict().items()}
        return encoder

    original_adamw = torch.optim.AdamW

    def spying_adamw(params, **kwargs):
        params = list(params)
        seen["optimised"] = {id(p) for p in params}
        return original_adamw(params, **kwargs)

    monkeypatch.setattr(encoders, "load_encoder", spying_load)
    monkeypatch.setattr(torch.optim, "AdamW", spying_adamw)
    tune.tune_tokenizer(clouds / "tokens.zarr", tmp_path / "t", encoder=ENCODER,
                        settings=tune.TuneSettings(epochs=2, batch_size=8), progress=False)
    encoder = seen["encoder"]
    assert not seen["optimised"] & {id(p) for p in encoder.module.parameters()}
    for name, tensor in encoder.module.state_dict().items():
        assert torch.equal(tensor, seen["before"][name]), name


def test_embed_with_the_tuned_projector_feeds_the_tuned_head(clouds, tmp_path, cli):
    tuned = tmp_path / "tuned"
    assert cli("train-head", clouds / "tokens.zarr", "-o", tuned, "--tune", "tokenizer",
               "--encoder", ENCODER, "--epochs", "3", "--batch-size", "8",
               "--no-progress").exit_code == 0
    result = cli("embed", clouds / "tokens.zarr", "-o", tmp_path / "f.zarr", "--encoder", ENCODER,
                 "--projector", tuned / "projector.safetensors", "--pool", "cls+mean+max",
                 "--no-progress")
    assert result.exit_code == 0, result.output
    predicted = cli("predict", tuned, tmp_path / "f.zarr")
    assert predicted.exit_code == 0, predicted.output
    # The same head applied to features made with the untuned projector is refused.
    assert cli("embed", clouds / "tokens.zarr", "-o", tmp_path / "g.zarr", "--encoder", ENCODER,
               "--pool", "cls+mean+max", "--no-progress").exit_code == 0
    refused = cli("predict", tuned, tmp_path / "g.zarr")
    assert refused.exit_code == 2 and "projector" in refused.stderr


def test_image_tokens_cannot_be_tuned(tmp_path, cli):
    from imagefiles import write_class_tree

    write_class_tree(tmp_path / "images", per_class=2)
    assert cli("tokenize", tmp_path / "images", "-o", tmp_path / "t.zarr",
               "--no-progress").exit_code == 0
    result = cli("train-head", tmp_path / "t.zarr", "-o", tmp_path / "h", "--tune", "tokenizer",
                 "--encoder", "vit_tiny_patch16_224", "--encoder-option", "depth=1",
                 "--no-progress")
    assert result.exit_code == 2 and "patch embedding" in result.stderr


def test_a_damaged_token_store_is_refused_before_training(clouds, tmp_path, cli):
    import shutil

    import zarr

    damaged = tmp_path / "damaged.zarr"
    shutil.copytree(clouds / "tokens.zarr", damaged)
    tokens = zarr.open_array(damaged / "tokens", mode="r+")
    tokens[0] = tokens[0] + 1  # the data changes, its commit marker's checksum does not
    result = cli("train-head", damaged, "-o", tmp_path / "h", "--tune", "tokenizer",
                 "--encoder", ENCODER, "--epochs", "1", "--no-progress")
    assert result.exit_code == 2, result.output
    assert "damaged" in result.stderr and "--repair" in result.stderr
    assert not (tmp_path / "h" / "head.json").exists()


def test_each_epoch_reads_each_token_shard_once(clouds, tmp_path, monkeypatch):
    """Training and scoring validation must share one read of each shard per epoch: the
    validation rows come from the train store (--val-split), so a separate scoring pass
    would read every shard a second time."""
    from collections import Counter

    import zarr

    from mmtok.heads import tune

    shard_size = tune.Store(clouds / "tokens.zarr").attrs["shard_size"]
    reads: Counter[int] = Counter()
    training = False
    original_getitem = zarr.Array.__getitem__

    def counting_getitem(array, key):
        if training and array.basename == "tokens" and isinstance(key, slice):
            reads[key.start // shard_size] += 1
        return original_getitem(array, key)

    original_train = tune._train

    def counting_train(*args, **kwargs):
        nonlocal training
        training = True
        try:
            return original_train(*args, **kwargs)
        finally:
            training = False

    monkeypatch.setattr(zarr.Array, "__getitem__", counting_getitem)
    monkeypatch.setattr(tune, "_train", counting_train)
    epochs = 3
    tune.tune_tokenizer(clouds / "tokens.zarr", tmp_path / "t", encoder=ENCODER,
                        settings=tune.TuneSettings(epochs=epochs, batch_size=8), progress=False)
    num_shards = tune.Store(clouds / "tokens.zarr").attrs["num_shards"]
    assert reads == {shard: epochs for shard in range(num_shards)}


def test_a_validation_split_over_the_memory_limit_is_streamed_with_the_same_results(
        clouds, tmp_path, monkeypatch):
    from mmtok.heads import tune

    def tune_run(name: str) -> list[dict]:
        run = tune.tune_tokenizer(clouds / "tokens.zarr", tmp_path / name, encoder=ENCODER,
                                  settings=tune.TuneSettings(epochs=3, batch_size=8),
                                  progress=False)
        return run.extra["history"]

    kept = []
    original_init = tune.ScoringSplit.__init__

    def recording_init(self, split):
        original_init(self, split)
        kept.append(self._held is not None)

    monkeypatch.setattr(tune.ScoringSplit, "__init__", recording_init)
    held = tune_run("held")
    monkeypatch.setattr(tune, "HELD_BYTES_LIMIT", 0)
    streamed = tune_run("streamed")
    assert kept == [True, False]
    for mine, theirs in zip(held, streamed, strict=True):
        assert mine["train_loss"] == theirs["train_loss"]
        assert mine["val_loss"] == pytest.approx(theirs["val_loss"], rel=1e-6)
        assert mine["val_top1"] == theirs["val_top1"]
