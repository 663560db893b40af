"""Fusion heads over paired feature stores: pairing (and its errors), late and token fusion,
distillation, multitask heads, and predict with a subset of the modalities.

The data (tests/pairedstores.py): four classes, each modality tells only one bit of the
class, the pair tells both; so a unimodal head is capped near 50 % top-1 and a fusion head
can reach near 100 %."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from featurestores import write_feature_store
from pairedstores import CLASSES, THREE, paired_features, write_paired, write_pairs, write_three

from mmtok.errors import UsageError
from mmtok.heads.fusion import (
    FUSION,
    FusionSettings,
    TokenFusion,
    distill_loss,
    new_head,
    step_loss,
)
from mmtok.heads.fusion_train import train_fusion_head
from mmtok.heads.pairing import pair_stores


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These heads are tiny: on a shared 2-core machine one thread is several times faster
    than two competing ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    folder = tmp_path_factory.mktemp("paired")
    return {"train": write_paired(folder / "train", 600, 12, seed=0),
            "test": write_paired(folder / "test", 300, 12, seed=1), "folder": folder}


def named(split: dict, *names: str) -> list[str]:
    return [f"{name}={split[name]}" for name in names or ("image", "audio")]


# -- pairing ------------------------------------------------------------------------------


def test_pairs_file_and_stems_pair_the_same_samples(paired):
    train = paired["train"]
    by_file = pair_stores({"image": train["image"], "audio": train["audio"]}, pairs=train["pairs"])
    by_stem = pair_stores({"image": train["image"], "audio": train["audio"]}, pair_by="stem")
    assert len(by_file) == len(by_stem) == 600
    image_ids = by_file.modalities["image"].store.group["id"][:]
    audio_ids = by_file.modalities["audio"].store.group["id"][:]
    for paired_set in (by_file, by_stem):
        rows_i, rows_a = paired_set.modalities["image"].rows, paired_set.modalities["audio"].rows
        assert [str(image_ids[r])[:-4] for r in rows_i] == [str(audio_ids[r])[:-4] for r in rows_a]
    # the audio store is in reverse order, so the pairing really had to look ids up
    assert by_file.modalities["audio"].rows[0] == 599
    assert by_file.labels["label"].tolist() == train["labels"].tolist()
    assert by_file.class_names["label"] == CLASSES


def test_missing_and_invalid_samples_are_dropped_or_kept_absent(tmp_path):
    data = paired_features(40, 4, seed=3)
    y = data["labels"]
    valid = np.ones(40, bool)
    valid[5] = False
    image = write_feature_store(tmp_path / "i.zarr", data["image"], y, CLASSES,
                                ids=[f"s{i}.png" for i in range(40)], valid=valid)
    audio = write_feature_store(tmp_path / "a.zarr", data["audio"][:30], y[:30], CLASSES,
                                ids=[f"s{i}.wav" for i in range(30)])
    rows = [{"image": f"s{i}.png", "audio": f"s{i}.wav" if i < 30 else "", "label": CLASSES[y[i]]}
            for i in range(40)]
    pairs = write_pairs(tmp_path / "p.csv", rows)
    stores = {"image": image, "audio": audio}
    dropped = pair_stores(stores, pairs=pairs, missing="drop")
    assert len(dropped) == 29 and dropped.dropped == {
        "audio missing": 10, "image invalid": 1, "dropped rows": 11}
    kept = pair_stores(stores, pairs=pairs, missing="absent")
    assert len(kept) == 40 and kept.dropped["dropped rows"] == 0
    assert kept.modalities["audio"].present.sum() == 30
    assert kept.modalities["image"].present.sum() == 39 and not kept.modalities["image"].present[5]
    by_stem = pair_stores(stores, pair_by="stem", missing="absent")
    assert len(by_stem) == 40 and by_stem.modalities["audio"].present.sum() == 30


def test_pairing_errors_are_clear_and_come_before_training(paired, tmp_path, cli):
    train = paired["train"]
    rows = list(csv.DictReader(open(train["pairs"])))

    def refused(pairs_rows, *extra, stores=None):
        pairs = write_pairs(tmp_path / "bad.csv", pairs_rows)
        result = cli("train-head", *(stores or named(train)), "--pairs", pairs, "-o",
                     tmp_path / "never", *extra)
        assert result.exit_code == 2, result.output
        assert not (tmp_path / "never").exists()
        return result.stderr

    unknown = [dict(rows[0], audio="nosuch.wav"), *rows[1:]]
    assert "not in store 'audio'" in refused(unknown) and "'nosuch.wav'" in refused(unknown)
    assert "row 601 repeats row 1" in refused([*rows, rows[0]])
    assert "no column for store 'audio'" in refused([{"image": r["image"]} for r in rows])
    assert "no task column 'colour'" in refused(rows, "--task", "colour")
    other = write_feature_store(tmp_path / "other.zarr", np.zeros((600, 12), np.float32),
                                train["labels"], CLASSES, ids=[f"{i}.wav" for i in train["ids"]],
                                encoder="another-encoder")
    message = refused(rows, "--test", f"image={paired['test']['image']}", "--test",
                      f"audio={other}", "--test-pairs", paired["test"]["pairs"])
    assert "made differently" in message and "another-encoder" in message
    single = cli("train-head", f"image={train['image']}", "--pairs", train["pairs"], "-o",
                 tmp_path / "never")
    assert single.exit_code == 2 and "two or more named stores" in single.stderr
    with pytest.raises(UsageError, match="--pairs FILE or --pair-by stem"):
        pair_stores({"image": train["image"], "audio": train["audio"]})


# -- fusion beats each modality alone -------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_late_fusion_probe_beats_each_modality_alone(paired, tmp_path, seed):
    run = train_fusion_head(named(paired["train"]), tmp_path / "head",
                            pairs=paired["train"]["pairs"],
                            test=named(paired["test"]), test_pairs=paired["test"]["pairs"],
                            seed=seed, device="cpu")
    top1 = {name: run.test[name]["label"]["top1"] for name in (FUSION, "image", "audio")}
    assert top1[FUSION] > 0.9, top1
    assert max(top1["image"], top1["audio"]) < 0.6, top1  # one bit of two: capped near 50 %
    assert top1[FUSION] - max(top1["image"], top1["audio"]) > 0.3, top1


def test_token_fusion_over_per_token_features_beats_each_modality(tmp_path, cli):
    train = write_paired(tmp_path / "train", 240, 8, seed=0, tokens=4, separation=0.8)
    test = write_paired(tmp_path / "test", 120, 8, seed=1, tokens=4, separation=0.8)
    result = cli("train-head", *named(train), "--pair-by", "stem", "--fusion", "tokens",
                 "--width", "16", "--depth", "1", "--attention-heads", "2", "--epochs", "10",
                 "--lr", "3e-3", "--test", f"image={test['image']}", "--test",
                 f"audio={test['audio']}", "-o", tmp_path / "tokens", "--json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    top1 = {name: run["test"][name]["label"]["top1"] for name in (FUSION, "image", "audio")}
    assert top1[FUSION] > 0.85 and top1[FUSION] - max(top1["image"], top1["audio"]) > 0.25, top1
    config = json.loads((tmp_path / "tokens" / "head.json").read_text())
    assert config["fusion"] == "tokens" and config["modalities"]["image"]["shape"] == [4, 8]


def test_padding_and_absent_modalities_do_not_change_token_fusion_outputs():
    shapes = {"image": (5, 6), "audio": (3, 6)}
    torch.manual_seed(0)
    head = TokenFusion(shapes, [4], width=16, depth=2, heads=2, dropout=0.0).eval()
    x = {"image": torch.randn(4, 5, 6), "audio": torch.randn(4, 3, 6)}
    present = {"image": torch.ones(4, dtype=torch.bool),
               "audio": torch.tensor([True, False, True, False])}
    real = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 1, 1], [1, 1, 1, 1, 1]],
                        dtype=torch.bool)  # row 2: padding in the middle (a graph's slots)
    masks = {"image": real}
    batch = {"features": x, "present": present, "token_mask": masks}
    before = head(batch)[0]
    changed = {"image": x["image"].clone(), "audio": x["audio"].clone()}
    changed["image"][1, 2:] = 100.0  # padding
    changed["image"][2, 1:3] = -50.0
    changed["audio"][[1, 3]] = 7.0   # an absent modality's values
    after = head({"features": changed, "present": present, "token_mask": masks})[0]
    torch.testing.assert_close(before, after)
    changed["image"][2, 4] += torch.randn(6)  # a real token after the padding does count
    assert not torch.allclose(head({"features": changed, "present": present,
                                    "token_mask": masks})[0][2], before[2])


def test_a_stores_token_mask_reaches_the_head_and_a_store_without_one_counts_every_token(
        tmp_path):
    """Two per-token stores with the same real tokens and other padding values: with their
    ``token_mask`` the head's outputs are equal; stores made before embed recorded it give
    batches without a mask (every token counts), so the padding then changes them."""
    from mmtok.heads.fusion import batches

    data = paired_features(40, 6, seed=3, tokens=4)
    rng = np.random.default_rng(0)
    real = np.arange(4)[None] < rng.integers(1, 5, 40)[:, None]
    other = np.where(real[..., None], data["image"], 100.0).astype(np.float32)
    labels, ids = data["labels"], [f"s{i:03d}" for i in range(40)]  # stems in store order

    def paired_with(features: np.ndarray, name: str, mask: bool, hold: bool = False):
        extra = {"token_mask": real} if mask else None
        image = write_feature_store(tmp_path / f"{name}-image.zarr", features, labels, CLASSES,
                                    ids=[f"{i}.png" for i in ids], extra=extra)
        audio = write_feature_store(tmp_path / f"{name}-audio.zarr", data["audio"], labels,
                                    CLASSES, ids=[f"{i}.wav" for i in ids])
        paired_set = pair_stores({"image": image, "audio": audio}, pair_by="stem")
        return paired_set.hold() if hold else paired_set  # held in memory, or streamed

    settings = FusionSettings(fusion="tokens", width=16, depth=1, heads=2, dropout=0.0)

    def outputs(paired_set) -> tuple[torch.Tensor, dict]:
        head = new_head(["image", "audio"], paired_set, settings, 0).eval()
        batch = next(batches(paired_set, 64, torch.device("cpu")))
        with torch.no_grad():
            return head(batch)[0], batch

    masked, batch = outputs(paired_with(data["image"], "a", mask=True))
    assert set(batch["token_mask"]) == {"image"}  # the audio store has no token_mask
    torch.testing.assert_close(batch["token_mask"]["image"], torch.from_numpy(real))
    torch.testing.assert_close(outputs(paired_with(other, "b", mask=True, hold=True))[0], masked)
    unmasked, old_batch = outputs(paired_with(data["image"], "c", mask=False))
    assert "image" not in old_batch.get("token_mask", {})
    assert not torch.allclose(outputs(paired_with(other, "d", mask=False))[0], unmasked)


def test_streamed_splits_give_probabilities_in_the_order_of_their_rows(paired):
    """A split too large to hold is read in its first store's order (fewer, closer reads);
    the probabilities and probe inputs must still come back in the order of the rows asked
    for (the audio store lists the samples reversed, and absent rows sort first)."""
    from mmtok.heads.fusion import _joined, head_probabilities

    train = paired["train"]
    stores = {"audio": train["audio"], "image": train["image"]}  # audio first: reversed
    rows = [{"audio": "" if k % 4 == 0 else f"{i}.wav", "image": f"{i}.png"}
            for k, i in enumerate(train["ids"])]
    pairs = write_pairs(paired["folder"] / "audio-first.csv", rows)
    streamed = pair_stores(stores, pairs=pairs, missing="absent")
    held = pair_stores(stores, pairs=pairs, missing="absent").hold()
    assert streamed.modalities["audio"].held is None and held.modalities["audio"].held is not None
    asked = np.flatnonzero(np.arange(len(held)) % 3 != 1)
    for fusion in ("late", "tokens"):
        settings = FusionSettings(fusion=fusion, head="mlp", hidden=8, width=8, depth=1,
                                  heads=2, dropout=0.0)
        head = new_head(["audio", "image"], held, settings, 0)
        for subset in (None, asked):
            expected = head_probabilities(head, held, torch.device("cpu"), rows=subset)[0]
            got = head_probabilities(head, streamed, torch.device("cpu"), batch_size=64,
                                     rows=subset)[0]
            np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    late = new_head(["audio", "image"], held, FusionSettings(fusion="late"), 0)
    torch.testing.assert_close(_joined(late, streamed, asked, torch.device("cpu")),
                               _joined(late, held, asked, torch.device("cpu")))


# -- distillation ---------------------------------------------------------------------------


def test_distillation_loss_and_the_fusion_head_learns_only_from_its_own_loss(paired):
    student, teacher = torch.randn(8, 4), torch.randn(8, 4)
    assert distill_loss([teacher], [teacher], 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert distill_loss([student], [teacher], 2.0).item() > 0
    data = pair_stores({"image": paired["train"]["image"], "audio": paired["train"]["audio"]},
                       pairs=paired["train"]["pairs"]).hold()
    settings = FusionSettings(fusion="late", head="mlp", hidden=16, dropout=0.0)
    from mmtok.heads.fusion import batches

    batch = next(batches(data, 64, torch.device("cpu")))
    grads = {}
    for alpha in (0.0, 5.0):
        heads = {FUSION: new_head(["image", "audio"], data, settings, 0),
                 "image": new_head(["image"], data, settings, 0)}
        loss, _ = step_loss(heads, batch, data.tasks, settings, alpha)
        loss.backward()
        grads[alpha] = {name: [p.grad.clone() for p in head.parameters()]
                        for name, head in heads.items()}
    for a, b in zip(grads[0.0][FUSION], grads[5.0][FUSION]):
        torch.testing.assert_close(a, b)  # the KL term never reaches the fusion head
    assert any(not torch.allclose(a, b) for a, b in zip(grads[0.0]["image"], grads[5.0]["image"]))


def test_distill_reports_every_head_and_the_heads_trained_alone(paired, tmp_path, cli):
    result = cli("train-head", *named(paired["train"]), "--pairs", paired["train"]["pairs"],
                 "--head", "mlp", "--hidden", "32", "--epochs", "12", "--lr", "3e-3", "--distill",
                 "--alpha", "1.0", "--temperature", "3", "-o", tmp_path / "distilled")
    assert result.exit_code == 0, result.output
    assert "epochs" in result.stdout and "fusion" in result.stdout
    metrics = json.loads((tmp_path / "distilled" / "metrics.json").read_text())
    assert metrics["distill"] is True and metrics["alpha"] == 1.0 and metrics["temperature"] == 3
    assert set(metrics["val"]) == {FUSION, "image", "audio", "routed"}
    assert set(metrics["alone"]["val"]) == {"image", "audio"}
    assert set(metrics["history"]) == {FUSION, "image", "audio"}
    for name in ("image", "audio"):
        assert 0.0 <= metrics["alone"]["val"][name]["label"]["top1"] <= 1.0
    assert metrics["val"][FUSION]["label"]["top1"] > 0.8


# -- multitask ------------------------------------------------------------------------------


def test_multitask_heads_have_one_output_per_task_and_metrics_per_task(paired, tmp_path):
    train, test = paired["train"], paired["test"]

    def tasks_file(split, name):
        rows = [{"image": f"{i}.png", "audio": f"{i}.wav", "pair": CLASSES[y],
                 "first": "ab"[y // 2], "second": "xy"[y % 2] if k % 5 else ""}
                for k, (i, y) in enumerate(zip(split["ids"], split["labels"]))]
        return write_pairs(tmp_path / name, rows)

    run = train_fusion_head(named(train), tmp_path / "multi", pairs=tasks_file(train, "p.csv"),
                            test=named(test), test_pairs=tasks_file(test, "t.csv"),
                            tasks=["pair", "first", "second"], device="cpu",
                            settings=FusionSettings(head="mlp", hidden=32, epochs=15, lr=3e-3,
                                                    task_weights={"first": 0.5}))
    assert run.tasks == ["pair", "first", "second"]
    assert run.test[FUSION]["pair"]["top1"] > 0.8
    assert run.test[FUSION]["first"]["top1"] > 0.9 and run.test["image"]["first"]["top1"] > 0.9
    assert run.test[FUSION]["second"]["samples"] == 240  # unlabelled rows are left out of a task
    assert run.test["image"]["second"]["top1"] < 0.7      # image does not know the second bit
    config = json.loads((tmp_path / "multi" / "head.json").read_text())
    assert config["tasks"] == {"pair": CLASSES, "first": ["a", "b"], "second": ["x", "y"]}
    from safetensors.torch import load_file

    keys = load_file(tmp_path / "multi" / "head.safetensors")
    assert {k for k in keys if k.startswith("fusion.outputs.")} == {
        f"fusion.outputs.{t}.{p}" for t in range(3) for p in ("weight", "bias")}
    assert keys["fusion.trunk.0.weight"].shape[0] == 32  # one trunk shared by the tasks


# -- predict with a subset of the modalities --------------------------------------------------


def test_predict_answers_each_row_with_the_right_head_when_audio_is_missing(paired, tmp_path, cli):
    train, test = paired["train"], paired["test"]
    assert cli("train-head", *named(train), "--pairs", train["pairs"], "-o",
               tmp_path / "head").exit_code == 0
    rng = np.random.default_rng(7)
    no_audio = rng.random(300) < 0.3
    rows = [{"image": f"{i}.png", "audio": "" if gone else f"{i}.wav", "label": CLASSES[y]}
            for i, y, gone in zip(test["ids"], test["labels"], no_audio)]
    pairs = write_pairs(tmp_path / "missing.csv", rows)
    result = cli("predict", tmp_path / "head", *named(test), "--pairs", pairs)
    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(out) == 300
    assert [r["head"] for r in out] == ["image" if gone else "fusion" for gone in no_audio]
    assert [r["id_image"] for r in out] == [f"{i}.png" for i in test["ids"]]
    fused = [r["predicted"] == r["label"] for r in out if r["head"] == "fusion"]
    alone = [r["predicted"] == r["label"] for r in out if r["head"] == "image"]
    assert np.mean(fused) > 0.9 and np.mean(alone) < 0.65
    only_audio = tmp_path / "audio.jsonl"
    result = cli("predict", tmp_path / "head", f"audio={test['audio']}", "-o", only_audio)
    assert result.exit_code == 0 and "audio 300" in result.stderr
    lines = [json.loads(line) for line in only_audio.read_text().splitlines()]
    assert {line["head"] for line in lines} == {"audio"} and len(lines) == 300
    assert set(lines[0]["tasks"]["label"]["probabilities"]) == set(CLASSES)
    refused = cli("predict", tmp_path / "head", f"depth={test['audio']}")
    assert refused.exit_code == 2 and "not depth" in refused.stderr


@pytest.mark.parametrize("fusion", ["late", "tokens"])
def test_three_modalities_with_one_or_two_missing_train_and_predict_by_the_right_head(
        fusion, tmp_path, cli):
    """Three stores, rows keeping all three, two or one of them (training and test), and
    rows keeping none (predict): the fusion head answers wherever two or three are present
    (the absent one masked), a modality's own head where it alone is, no head where none."""
    tokens = 3 if fusion == "tokens" else None
    train = write_three(tmp_path / "train", 280, 8, seed=0, tokens=tokens)
    test = write_three(tmp_path / "test", 140, 8, seed=1, tokens=tokens, empty_rows=1)
    options = (["--width", "16", "--depth", "1", "--attention-heads", "2", "--epochs", "8",
                "--lr", "3e-3"] if fusion == "tokens" else [])
    tests = [arg for name in THREE for arg in ("--test", f"{name}={test[name]}")]
    trained = cli("train-head", *named(train, *THREE), "--pairs", train["pairs"], "--missing",
                  "absent", "--fusion", fusion, *options, *tests, "--test-pairs", test["pairs"],
                  "-o", tmp_path / "head", "--json")
    assert trained.exit_code == 0, trained.output
    run = json.loads(trained.stdout)
    assert set(run["val"]) == {FUSION, *THREE, "routed"}
    assert run["test"]["routed"]["answered_by"] == {FUSION: 80, "image": 20, "audio": 20,
                                                    "depth": 20}

    def expected(keep: tuple) -> str:
        return FUSION if len(keep) > 1 else keep[0] if keep else ""

    result = cli("predict", tmp_path / "head", *named(test, *THREE), "--pairs", test["pairs"])
    assert result.exit_code == 0, result.output
    out = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(out) == 141
    assert [r["head"] for r in out] == [expected(keep) for keep in test["keeps"]]
    answered = [r for r in out if r["head"]]
    assert all(r["predicted"] in CLASSES for r in answered)
    assert all(r["predicted"] == "" for r in out if not r["head"])
    for r, keep in zip(out, test["keeps"]):  # the ids of the kept modalities, no others
        assert [bool(r[f"id_{name}"]) for name in THREE] == [name in keep for name in THREE]
    # predict answers as the run scored its (held) test split: same heads, same rows
    correct = [r["predicted"] == r["label"] for r in answered]
    assert np.mean(correct) == pytest.approx(run["test"]["routed"]["label"]["top1"])
    both_bits = [r["predicted"] == r["label"] for r, keep in zip(out, test["keeps"])
                 if {"image", "audio"} <= set(keep)]
    assert np.mean(both_bits) > 0.7  # the fusion head uses the modalities it is given
