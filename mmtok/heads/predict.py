"""``predict``: a trained head + a feature store -> one prediction row per sample.

Rows follow the store's order and carry its ``index`` and ``id``, so they join back to the
inputs (and to the token store, whose sample ``i`` is the feature store's sample ``i``).
Invalid samples keep their row with an empty prediction.

| format | columns |
|---|---|
| CSV | ``index, id, valid, label, predicted, score, p_<class>...`` |
| JSONL | ``{"index", "id", "valid", "label", "predicted", "score", "probabilities": {class: p}}`` |
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import UsageError
from .data import open_feature_store, provenance, provenance_differences
from .model import CONFIG_FILE, load_head
from .output import prediction_format



def predict(head_folder: str | os.PathLike, features: str | os.PathLike,
            output: str | os.PathLike = "-", *, output_format: str | None = None,
            device: str = "auto", allow_other_features: bool = False,
            pairs: str | os.PathLike | None = None,
            pair_by: str | None = None) -> dict[str, Any]:
    """Write predictions for every sample of ``features``; ``output`` ``-`` is stdout.

    For a fusion head (``train-head NAME=STORE ...``), ``features`` is a list of
    ``NAME=STORE`` (or a dict), any subset of the head's modalities, paired by ``pairs`` or
    ``pair_by="stem"``; see :mod:`mmtok.heads.fusion_predict`."""
    from ..embedding.pipeline import resolve_device
    from .train import head_probabilities

    config = _fusion_config(head_folder)
    if config is not None or isinstance(features, list | tuple | dict):
        from .fusion_predict import predict_fusion

        if config is None:
            raise UsageError(f"{head_folder} is a single-store head; give it one feature store")
        if not isinstance(features, list | tuple | dict):
            raise UsageError(f"{head_folder} is a fusion head of {', '.join(config['modalities'])}; "
                             "give its stores as NAME=STORE")
        return predict_fusion(head_folder, config, features, output, pairs=pairs,
                              pair_by=pair_by, output_format=output_format, device=device,
                              allow_other_features=allow_other_features)
    fmt = prediction_format(output, output_format)
    model, config = load_head(head_folder)
    store = open_feature_store(features)
    _check_features(config, store, allow_other_features)
    vectors = store.group["features"][:]
    valid = store.group["valid"][:].astype(bool)
    torch_device = resolve_device(device)
    probabilities = np.zeros((len(valid), len(config["class_names"])), np.float32)
    probabilities[valid] = head_probabilities(model.to(torch_device), vectors[valid],
                                              torch_device)
    rows = _rows(store, config["class_names"], probabilities, valid)
    if os.fspath(output) == "-":
        _write(rows, sys.stdout, fmt, config["class_names"])
    else:
        temporary = Path(f"{output}.partial")
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            _write(rows, stream, fmt, config["class_names"])
        os.replace(temporary, output)
    return {"output": os.fspath(output), "format": fmt, "samples": len(valid),
            "predicted": int(valid.sum())}


def _fusion_config(head_folder: str | os.PathLike) -> dict | None:
    """head.json of a fusion head folder, None for any other folder."""
    path = Path(head_folder)
    path = path if path.name == CONFIG_FILE else path / CONFIG_FILE
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return config if config.get("kind") == "fusion" else None


def _check_features(config: dict, store, allow_other_features: bool) -> None:
    found = provenance(store.config)
    differences = provenance_differences(config["features"], found)
    if differences and not allow_other_features:
        raise UsageError("this head was trained on features made differently "
                         f"({'; '.join(differences)}); embed the data with the head's encoder, "
                         "weights, projector and pooling (or pass --allow-other-features)")
    width = store.group["features"].shape[1:]
    if width != (config["input_dim"],):
        raise UsageError(f"the head takes {config['input_dim']}-dimensional features, the "
                         f"store has {width}")


def _rows(store, class_names: list[str], probabilities: np.ndarray,
          valid: np.ndarray) -> Iterator[dict[str, Any]]:
    labels = store.group["label"][:]
    ids = store.group["id"][:]
    store_classes = store.class_names
    for index in range(len(valid)):
        label = int(labels[index])
        true = store_classes[label] if 0 <= label < len(store_classes) else ""
        if valid[index]:
            best = int(probabilities[index].argmax())
            predicted, score = class_names[best], float(probabilities[index, best])
        else:
            predicted, score = "", None
        yield {"index": index, "id": str(ids[index]), "valid": bool(valid[index]),
               "label": true, "predicted": predicted, "score": score,
               "probabilities": probabilities[index] if valid[index] else None}


def _write(rows: Iterator[dict[str, Any]], stream: IO[str], fmt: str,
           class_names: list[str]) -> None:
    if fmt == "jsonl":
        for row in rows:
            probabilities = row.pop("probabilities")
            row["probabilities"] = (None if probabilities is None else
                                    {c: round(float(p), 6) for c, p in zip(class_names, probabilities)})
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(stream)
    writer.writerow(["index", "id", "valid", "label", "predicted", "score",
                     *(f"p_{name}" for name in class_names)])
    for row in rows:
        probabilities = row["probabilities"]
        cells = ([f"{p:.6g}" for p in probabilities] if probabilities is not None
                 else [""] * len(class_names))
        writer.writerow([row["index"], row["id"], int(row["valid"]), row["label"],
                         row["predicted"], "" if row["score"] is None else f"{row['score']:.6g}",
                         *cells])
