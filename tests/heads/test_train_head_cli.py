"""train-head and predict from the command line: outputs, the MLP head, joins, bad input."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from featurestores import gaussian_classes, write_feature_store


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("features")
    x, y = gaussian_classes(400, 16, 3, 0.8, seed=0)
    test_x, test_y = gaussian_classes(150, 16, 3, 0.8, seed=1)
    valid = np.ones(150, bool)
    valid[[3, 77]] = False  # failed samples keep their rows in the store
    names = ["cat", "dog", "emu"]
    return {"train": write_feature_store(folder / "train.zarr", x, y, names),
            "test": write_feature_store(folder / "test.zarr", test_x, test_y, names, valid=valid,
                                        shard_size=64),
            "test_labels": test_y, "names": names, "folder": folder}


def test_linear_probe_json_summary_and_files(cli, stores, tmp_path):
    result = cli("train-head", str(stores["train"]), "-o", str(tmp_path / "head"), "--test",
                 str(stores["test"]), "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["head"] == "linear" and run["samples"]["test"] == 148
    assert run["test"]["top1"] > 0.9
    assert sorted(p.name for p in (tmp_path / "head").iterdir()) == [
        "confusion.png", "head.json", "head.safetensors", "metrics.json"]
    again = cli("train-head", str(stores["train"]), "-o", str(tmp_path / "head"), "--no-progress")
    assert again.exit_code == 2 and "--overwrite" in again.stderr


def test_mlp_head_writes_a_learning_curve(cli, stores, tmp_path):
    result = cli("train-head", str(stores["train"]), "-o", str(tmp_path / "mlp"), "--head", "mlp",
                 "--epochs", "15", "--hidden", "32", "--test", str(stores["test"]),
                 "--no-progress")
    assert result.exit_code == 0, result.output
    assert "mlp head" in result.stdout and "test top-1" in result.stdout
    metrics = json.loads((tmp_path / "mlp" / "metrics.json").read_text())
    assert 1 <= metrics["epochs"] <= 15 and len(metrics["history"]) == metrics["epochs"]
    assert metrics["test"]["top1"] > 0.9
    assert (tmp_path / "mlp" / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"


def test_predict_rows_join_back_to_the_store(cli, stores, tmp_path):
    assert cli("train-head", str(stores["train"]), "-o", str(tmp_path / "head"),
               "--no-progress").exit_code == 0
    result = cli("predict", str(tmp_path / "head"), str(stores["test"]))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    from mmtok import open_store

    store = open_store(stores["test"])
    assert [r["id"] for r in rows] == [store[i]["id"] for i in range(len(store))]
    assert [int(r["index"]) for r in rows] == list(range(len(store)))
    invalid = [r for r in rows if r["valid"] == "0"]
    assert [r["index"] for r in invalid] == ["3", "77"] and invalid[0]["predicted"] == ""
    scored = [r for r in rows if r["valid"] == "1"]
    hits = np.mean([r["predicted"] == r["label"] for r in scored])
    assert hits > 0.9
    first = scored[0]
    total = sum(float(first[f"p_{name}"]) for name in stores["names"])
    assert total == pytest.approx(1.0, abs=1e-4)

    out = tmp_path / "predictions.jsonl"
    assert cli("predict", str(tmp_path / "head"), str(stores["test"]), "-o", str(out)).exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 150 and set(lines[0]["probabilities"]) == set(stores["names"])
    assert lines[0]["predicted"] == rows[0]["predicted"]


def test_head_refuses_features_of_another_encoder(cli, stores, tmp_path):
    assert cli("train-head", str(stores["train"]), "-o", str(tmp_path / "head"),
               "--no-progress").exit_code == 0
    x, y = gaussian_classes(50, 16, 3, 0.8, seed=2)
    other = write_feature_store(tmp_path / "other.zarr", x, y, stores["names"],
                                encoder="another-encoder", weights_sha256="f" * 64)
    result = cli("predict", str(tmp_path / "head"), str(other))
    assert result.exit_code == 2
    assert "encoder" in result.stderr and "another-encoder" in result.stderr
    assert "weights_sha256" in result.stderr
    forced = cli("predict", str(tmp_path / "head"), str(other), "--allow-other-features")
    assert forced.exit_code == 0


def _train_error(cli, train, tmp_path, *more) -> str:
    result = cli("train-head", str(train), "-o", str(tmp_path / "head"), "--no-progress", *more)
    assert result.exit_code == 2, result.output
    return result.stderr


def test_unlabelled_store_is_refused(cli, tmp_path):
    x, _ = gaussian_classes(40, 4, 2, 1.0, seed=0)
    store = write_feature_store(tmp_path / "f.zarr", x, np.full(40, -1), ["a"])
    assert "no label" in _train_error(cli, store, tmp_path)


def test_single_class_is_refused(cli, tmp_path):
    x, _ = gaussian_classes(40, 4, 2, 1.0, seed=0)
    store = write_feature_store(tmp_path / "f.zarr", x, np.zeros(40, int), ["only"])
    assert "single class ('only')" in _train_error(cli, store, tmp_path)


def test_train_and_val_of_different_widths_are_refused(cli, stores, tmp_path):
    x, y = gaussian_classes(60, 8, 3, 1.0, seed=0)
    val = write_feature_store(tmp_path / "val.zarr", x, y, stores["names"])
    message = _train_error(cli, stores["train"], tmp_path, "--val", str(val))
    assert "8 dimensions" in message and "16" in message


def test_nan_features_are_refused_by_name(cli, tmp_path):
    x, y = gaussian_classes(60, 4, 2, 1.0, seed=0)
    x[7, 2] = np.nan
    store = write_feature_store(tmp_path / "f.zarr", x, y)
    message = _train_error(cli, store, tmp_path)
    assert "NaN" in message and "sample-00007" in message


def test_a_token_store_is_refused_with_a_pointer_to_embed(cli, tmp_path):
    from imagefiles import write_class_tree

    write_class_tree(tmp_path / "images", per_class=1)
    assert cli("tokenize", str(tmp_path / "images"), "-o", str(tmp_path / "t.zarr"),
               "--no-progress").exit_code == 0
    assert "mmtok embed" in _train_error(cli, tmp_path / "t.zarr", tmp_path)
