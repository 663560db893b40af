"""``predict HEAD NAME=STORE ...``: a fusion head folder + any subset of its modalities.

Each paired sample is answered by the fusion head when every trained modality is present,
by a modality's own unimodal head when only that one is (several but not all, with three or
more modalities: the fusion head with the absent ones masked), and not at all when none is;
the ``head`` column says which head answered. Every row of the pairs file (or every stem)
gets a row, in order.

CSV columns: ``key, id_<name>..., head, label, predicted, score, p_<class>...`` (with
several tasks, per task ``<task>, predicted_<task>, score_<task>, p_<task>_<class>...``).
JSONL: ``{"key", "ids": {name: id}, "head", "tasks": {task: {"label", "predicted", "score",
"probabilities"}}}``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path
from typing import IO, Any

import numpy as np

from ..errors import UsageError
from .data import provenance_differences
from .fusion_train import load_fusion_heads, routed_probabilities
from .pairing import LABEL, PairedSet, pair_stores, parse_named_stores
from .output import prediction_format


def predict_fusion(head_folder: str | os.PathLike, config: dict, stores: list[str] | dict,
                   output: str | os.PathLike = "-", *, pairs: str | os.PathLike | None = None,
                   pair_by: str | None = None, output_format: str | None = None,
                   device: str = "auto", allow_other_features: bool = False) -> dict[str, Any]:
    """Write one prediction row per paired sample of ``stores`` (a subset of the head's
    modalities, ``NAME=STORE``), answered by the fusion or a unimodal head."""
    from ..embedding.pipeline import resolve_device

    fmt = prediction_format(output, output_format)
    named = parse_named_stores(list(stores)) if isinstance(stores, list | tuple) else \
        {k: os.fspath(v) for k, v in stores.items()}
    trained = list(config["modalities"])
    unknown = [name for name in named if name not in trained]
    if unknown:
        raise UsageError(f"the head knows the modalities {', '.join(trained)}, not "
                         f"{', '.join(unknown)}")
    if pairs is None and pair_by is None and len(named) > 1:
        raise UsageError("pair the stores with --pairs FILE or --pair-by stem")
    data = pair_stores(named, pairs=pairs, pair_by=pair_by or ("stem" if pairs is None else None),
                       missing="absent", tasks=_tasks_in(pairs, config), require_labels=False,
                       keep_empty=True)
    _check(config, data, allow_other_features)
    heads = load_fusion_heads(head_folder, config)
    torch_device = resolve_device(device)
    for head in heads.values():
        head.to(torch_device)
    data.labels = _labels_by_head_classes(data, config)
    data.class_names = dict(config["tasks"])
    answer, probabilities = routed_probabilities(heads, data, trained, torch_device)
    rows = _rows(data, named, config, answer, probabilities)
    if os.fspath(output) == "-":
        _write(rows, sys.stdout, fmt, named, config)
    else:
        temporary = Path(f"{output}.partial")
        with open(temporary, "w", newline="", encoding="utf-8") as stream:
            _write(rows, stream, fmt, named, config)
        os.replace(temporary, output)
    return {"output": os.fspath(output), "format": fmt, "samples": len(data),
            "predicted": int((answer != "").sum()),
            "answered_by": {name: int((answer == name).sum())
                            for name in ("fusion", *trained) if (answer == name).any()}}


def _tasks_in(pairs, config: dict) -> list[str] | None:
    """The head's task columns that the pairs file has (for the label columns)."""
    if pairs is None:
        return None
    from ..sources import _read_manifest_rows

    columns = set().union(*(row.keys() for row in _read_manifest_rows(os.fspath(pairs))))
    tasks = [task for task in config["tasks"] if task in columns or task == LABEL]
    return tasks or None


def _labels_by_head_classes(data: PairedSet, config: dict) -> dict[str, np.ndarray]:
    """Known labels as indices into the head's classes (-1 unknown or not a head class)."""
    labels = {}
    for task, classes in config["tasks"].items():
        index = {c: i for i, c in enumerate(classes)}
        if task in data.labels:
            names = data.class_names[task]
            y = data.labels[task]
            labels[task] = np.array([index.get(names[v], -1) if v >= 0 else -1 for v in y],
                                    np.int64)
        else:
            labels[task] = np.full(len(data), -1, np.int64)
    return labels


def _check(config: dict, data: PairedSet, allow_other_features: bool) -> None:
    for name, modality in data.modalities.items():
        record = config["modalities"][name]
        differences = provenance_differences(record["features"], modality.provenance)
        if differences and not allow_other_features:
            raise UsageError(f"store {name!r} ({modality.source}) was made differently from the "
                             f"head's training features ({'; '.join(differences)}); embed it "
                             "like the training data (or pass --allow-other-features)")
        if list(modality.shape) != record["shape"]:
            raise UsageError(f"store {name!r} has features {modality.shape}; the head takes "
                             f"{tuple(record['shape'])}")


def _rows(data: PairedSet, named: dict, config: dict, answer: np.ndarray,
          probabilities: list[np.ndarray]):
    tasks = config["tasks"]
    store_ids = {name: [str(i) for i in m.store.group["id"][:]]
                 for name, m in data.modalities.items()}
    for i in range(len(data)):
        ids = {name: (store_ids[name][int(m.rows[i])] if m.rows[i] >= 0 else "")
               for name, m in data.modalities.items()}
        results = {}
        for (task, classes), p in zip(tasks.items(), probabilities):
            y = int(data.labels[task][i])
            if answer[i]:
                best = int(p[i].argmax())
                results[task] = {"label": classes[y] if y >= 0 else "",
                                 "predicted": classes[best], "score": float(p[i, best]),
                                 "probabilities": p[i]}
            else:
                results[task] = {"label": classes[y] if y >= 0 else "", "predicted": "",
                                 "score": None, "probabilities": None}
        yield {"key": str(data.keys[i]), "ids": ids, "head": str(answer[i]), "tasks": results}


def _suffix(task: str, tasks: dict) -> str:
    return "" if list(tasks) == [LABEL] else f"_{task}"


def _write(rows, stream: IO[str], fmt: str, named: dict, config: dict) -> None:
    tasks = config["tasks"]
    if fmt == "jsonl":
        for row in rows:
            for task, result in row["tasks"].items():
                p = result["probabilities"]
                result["probabilities"] = (None if p is None else
                                           {c: round(float(v), 6) for c, v in zip(tasks[task], p)})
            stream.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    writer = csv.writer(stream)
    header = ["key", *(f"id_{name}" for name in named), "head"]
    for task, classes in tasks.items():
        s = _suffix(task, tasks)
        header += [task if s else "label", f"predicted{s}", f"score{s}",
                   *(f"p{s}_{c}" for c in classes)]
    writer.writerow(header)
    for row in rows:
        cells = [row["key"], *(row["ids"][name] for name in named), row["head"]]
        for task, classes in tasks.items():
            result = row["tasks"][task]
            p = result["probabilities"]
            cells += [result["label"], result["predicted"],
                      "" if result["score"] is None else f"{result['score']:.6g}",
                      *([f"{v:.6g}" for v in p] if p is not None else [""] * len(classes))]
        writer.writerow(cells)
