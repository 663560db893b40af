"""Text and tabular end to end on generated learnable tasks: tokenize (train fitted, test
with --config-from) -> train-head --tune tokenizer through a tiny encoder -> embed with the
tuned projector -> predict; the tuned model clearly beats the majority class."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

ENCODER = "metatransformer:depth=1,width=32,heads=4"
WORDS = (("rain", "storm", "cloud", "snow", "wind", "fog"),
         ("bread", "cheese", "soup", "pasta", "rice", "cake"))
FILLER = ("the", "a", "today", "again", "very", "and", "some", "with")


def _write(path, header, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _text_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, 4)) + list(rng.choice(WORDS[label], 2))
        rng.shuffle(words)
        rows.append([" ".join(words), ("food", "weather")[1 - label]])
    return rows


def _table_rows(n: int, seed: int):
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        x, noise = rng.normal(), rng.normal()
        colour = str(rng.choice(["red", "blue", "green"]))
        score = x + (1.5 if colour == "red" else -0.5)
        rows.append([f"{x:.4f}", f"{noise:.4f}", colour, "yes" if score > 0 else "no"])
    return rows


CASES = {
    "text": (("text", "label"), _text_rows, ["--set", "context_length=12"], 96, 48),
    "tabular": (("x", "noise", "colour", "label"), _table_rows, [], 240, 120),
}


def _majority(rows) -> float:
    labels = [r[-1] for r in rows]
    return max(labels.count(v) for v in set(labels)) / len(labels)


@pytest.mark.parametrize("modality", sorted(CASES))
def test_tokenize_tune_embed_beats_the_majority_class(modality, tmp_path, cli):
    header, make, sets, n_train, n_test = CASES[modality]
    _write(tmp_path / "train.csv", header, make(n_train, 0))
    test_rows = make(n_test, 1)
    _write(tmp_path / "test.csv", header, test_rows)
    fit = ["--stats-from-data"] if modality == "tabular" else sets
    result = cli("tokenize", tmp_path / "train.csv", "-o", tmp_path / "train.zarr", "-m",
                 modality, *fit, "--no-progress")
    assert result.exit_code == 0, result.output
    result = cli("tokenize", tmp_path / "test.csv", "-o", tmp_path / "test.zarr",
                 "--config-from", tmp_path / "train.zarr", "--no-progress")
    assert result.exit_code == 0, result.output
    tuned = tmp_path / "tuned"
    result = cli("train-head", tmp_path / "train.zarr", "-o", tuned, "--tune", "tokenizer",
                 "--encoder", ENCODER, "--epochs", "12", "--batch-size", "16", "--lr", "3e-3",
                 "--test", tmp_path / "test.zarr", "--json", "--no-progress")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    majority = _majority(test_rows)
    assert run["test"]["top1"] >= max(0.85, majority + 0.25), (run["test"], majority)
    result = cli("embed", tmp_path / "test.zarr", "-o", tmp_path / "f.zarr", "--encoder",
                 ENCODER, "--projector", tuned / "projector.safetensors", "--pool",
                 "cls+mean+max", "--no-progress")
    assert result.exit_code == 0, result.output
    predicted = cli("predict", tuned, tmp_path / "f.zarr", "--format", "jsonl")
    assert predicted.exit_code == 0, predicted.output
    rows = [json.loads(line) for line in predicted.stdout.splitlines() if line.strip()]
    assert len(rows) == n_test
    accuracy = np.mean([row["label"] == row["predicted"] for row in rows])
    assert accuracy == pytest.approx(run["test"]["top1"])  # embed reproduces the tuned model


def test_the_row_scan_keeps_quote_parity_across_its_blocks(tmp_path, monkeypatch):
    import csv as csv_module

    from mmtok.modalities import rowfiles

    path = tmp_path / "q.csv"
    with open(path, "w", newline="") as handle:
        writer = csv_module.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(40):
            writer.writerow([f'row {i}\n"said" {"x" * (i % 7)}\nend' if i % 3 else f"plain {i}",
                             i % 2])
        handle.write("\nlast,1")  # a blank line, and no newline at the end
    wanted = rowfiles._row_index(str(path), 0, 0)
    for block in (1, 2, 3, 7, 64):
        monkeypatch.setattr(rowfiles, "SCAN_BLOCK", block)
        index = rowfiles._row_index.__wrapped__(str(path), 0, 0)
        assert index.num_rows == 41 == wanted.num_rows
        assert np.array_equal(index.starts, wanted.starts)
        assert np.array_equal(index.ends, wanted.ends)
    assert rowfiles.read_rows(str(path), 39, 41, ["text"]).table.column("text").to_pylist() == [
        "plain 39", "last"]
