"""``train-head --tune tokenizer``: the Meta-Transformer recipe for non-image modalities.

Tokens -> projector (trained) -> shared encoder (frozen) -> pooling -> linear head (trained).
Only the projector and the head have optimiser state; the encoder's weights are hashed before
and after training and the run fails if they changed. The output folder holds the tuned
``projector.safetensors`` (load it with ``mmtok embed --projector``), ``projector.json``
(what it was trained on), and the head, metrics and plots as ``train-head`` writes them; the
head's recorded provenance names the tuned projector by its sha256, so it applies to the
features ``embed --projector`` makes with it.

Training batches are read a shard at a time in a shuffled shard order and shuffled within the
shard, so the training rows take one shard of memory however large the token store is. The
validation rows are read once, before the first epoch, and kept on the CPU when their tokens
fit in 1 GiB: scoring them after every epoch from the store would read each shard a second
time per epoch (with ``--val-split`` they share shards with the training rows). A larger
validation split is streamed from the store after every epoch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import StoreError, UsageError
from ..store.layout import shard_bounds
from ..store.paths import check_output_is_not_input
from ..store.reader import Store, open_complete_store
from .data import labelled_rows, stratified_split
from .metrics import classification_metrics
from .model import Head
from .plots import plot_learning_curve
from .schedule import TrainSettings, warmup_cosine
from .train import HeadRun, TrainedOn, _check_output, write_head_outputs

PROJECTOR_FILE = "projector.safetensors"
PROJECTOR_RECORD = "projector.json"
SCORE_BATCH_SIZE = 64

Batch = tuple[dict[str, torch.Tensor], torch.Tensor]  # model inputs by array name, labels


@dataclass
class TuneSettings(TrainSettings):
    epochs: int = 20
    batch_size: int = 32
    warmup_epochs: int = 1


@dataclass
class TokenSplit:
    """Rows of one token store used for one role (train, val or test)."""

    store: Store
    rows: np.ndarray  # sorted sample indices, valid and labelled
    labels: np.ndarray


HELD_BYTES_LIMIT = 1 << 30  # validation tokens kept in memory up to this size


class ScoringSplit:
    """The rows scored after every epoch. Their batches are read once and kept on the CPU
    when their tokens fit in ``HELD_BYTES_LIMIT`` (with ``--val-split`` they share shards with the
    training rows, so re-reading would read each shard twice per epoch); a larger split is
    streamed from the store on every pass, one shard in memory."""

    def __init__(self, split: TokenSplit) -> None:
        self.split = split
        self.labels = split.labels  # the order the batches come in: store order
        held = _row_bytes(split.store) * len(split.rows) <= HELD_BYTES_LIMIT
        self._held = list(self._read()) if held else None

    def batches(self) -> Iterable[Batch]:
        return self._held if self._held is not None else self._read()

    def _read(self) -> Iterator[Batch]:
        return _batches(self.split, SCORE_BATCH_SIZE, torch.device("cpu"))


def _row_bytes(store: Store) -> int:
    """Bytes of one sample's model inputs."""
    from ..embedding.pipeline import input_arrays

    arrays = [store.group[name] for name in input_arrays(store)]
    return sum(int(np.prod(array.shape[1:])) * np.dtype(array.dtype).itemsize for array in arrays)


@dataclass
class Model:
    projector: torch.nn.Module
    encoder: Any
    head: Head
    pool_how: str
    autocast: torch.dtype | None

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from ..embedding.pipeline import pooled_features

        pooled = pooled_features(self.projector, self.encoder, batch, self.pool_how,
                                 self.autocast)
        return self.head(pooled.float())


def tune_tokenizer(
    tokens: str | os.PathLike,
    output: str | os.PathLike,
    *,
    encoder: str = "vit_base_patch16_224",
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
    encoder_options: dict | None = None,
    projector: str | os.PathLike | None = None,
    pool_how: str = "cls+mean+max",
    val: str | os.PathLike | None = None,
    val_split: float = 0.2,
    test: str | os.PathLike | None = None,
    settings: TuneSettings | None = None,
    device: str = "auto",
    precision: str = "float32",
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    projector_options: dict | None = None,
) -> HeadRun:
    """Train the projector and a linear head on a token store, the encoder frozen.

    ``projector_options`` choose the projector variant as for ``embed``; give the same ones
    to ``embed --projector`` with the tuned weights."""
    from ..embedding.encoders import load_encoder
    from ..embedding.pipeline import PRECISIONS, resolve_device
    from ..embedding.pooling import POOLS
    from ..embedding.projectors import build_projector

    started = time.perf_counter()
    settings = settings or TuneSettings()
    output = Path(output)
    check_output_is_not_input("train-head", output, {
        "training store": tokens, "validation store": val, "test store": test})
    _check_output(output, overwrite)
    if pool_how not in POOLS or pool_how == "none":
        raise UsageError(f"--pool must be one of cls, mean, max, cls+mean+max for a head, "
                         f"not {pool_how!r}")
    train_split, val_split_rows, test_split = _token_splits(tokens, val, val_split, test, seed)
    store = train_split.store
    torch_device = resolve_device(device)
    frozen = load_encoder(encoder, weights=weights, pretrained=pretrained, seed=seed,
                          device=torch_device, model_kwargs=encoder_options)
    statics = {name: store.static(name) for name in store.attrs["static_arrays"]}
    module, record = build_projector(store.modality, store.config, frozen, seed, projector,
                                     statics, projector_options)
    if not module.trainable:
        why = getattr(module, "frozen_because", "part of the frozen encoder")
        raise UsageError(f"the {store.modality} projector is {why}; train a probe on "
                         "`mmtok embed` features instead of --tune tokenizer")
    module.requires_grad_(True).to(torch_device)
    class_names = list(store.class_names)
    model = Model(module, frozen, _new_head(module, frozen, pool_how, len(class_names), seed,
                                            train_split, torch_device),
                  pool_how, PRECISIONS[precision] if torch_device.type == "cuda" else None)
    held_val = ScoringSplit(val_split_rows)
    encoder_before = state_digest(frozen.module)
    loaded = time.perf_counter()
    history, best_state = _train(model, train_split, held_val, settings, seed, torch_device,
                                 progress)
    if state_digest(frozen.module) != encoder_before:
        raise RuntimeError("the frozen encoder's weights changed during tuning; this is a bug "
                           "in mmtok, please report it")
    model.projector.load_state_dict(best_state["projector"])
    model.head.load_state_dict(best_state["head"])
    trained = time.perf_counter()
    val_metrics = evaluate_tokens(model, held_val.batches(), held_val.labels, class_names,
                                  torch_device)
    test_metrics = (evaluate_tokens(model, _batches(test_split, SCORE_BATCH_SIZE, torch_device),
                                    test_split.labels, class_names, torch_device)
                    if test_split is not None else None)
    output.mkdir(parents=True, exist_ok=True)
    projector_sha = _save_projector(model.projector, record, output, {
        "tokens": str(tokens), "tokens_config_hash": store.attrs["config_hash"],
        "modality": store.modality, "encoder": frozen.name,
        "weights_sha256": frozen.weights_sha256, "pool": pool_how, "seed": seed,
        "settings": asdict(settings), "val_top1": val_metrics["top1"]})
    plot_learning_curve(history, output / "learning_curve.png", "tokenizer tuning")
    best = max(history, key=lambda h: (h["val_top1"], -h["val_loss"]))
    samples = {"train": len(train_split.rows), "val": len(val_split_rows.rows),
               "test": len(test_split.rows) if test_split is not None else None,
               "final_fit": len(train_split.rows)}
    run = HeadRun(str(output), "linear", samples, val_metrics, test_metrics,
                  {"load": loaded - started, "train": trained - loaded,
                   "total": time.perf_counter() - started},
                  None, len(history),
                  {"tuned": "tokenizer", "best_epoch": best["epoch"], "history": history,
                   "encoder_unchanged": True, "projector": str(output / PROJECTOR_FILE)})
    provenance = _tuned_provenance(frozen, encoder_options, record, projector_sha, pool_how,
                                   store)
    trained_on = TrainedOn(class_names, model.head.layers[0].in_features, provenance,
                           {"train": str(tokens), "val": _val_source(val, val_split, seed)})
    write_head_outputs(model.head, run, trained_on, output,
                       {"standardize": False, "seed": seed, "tuned": "tokenizer"})
    return run


def _token_splits(tokens, val, val_split: float, test, seed: int):
    store = _token_store(tokens)
    train = _labelled_rows(store)
    if len(np.unique(train.labels)) < 2:
        raise UsageError(f"{tokens} needs labelled samples of at least two classes to tune on")
    if val is not None:
        val_rows = _labelled_rows(_token_store(val, like=store))
    else:
        train_rows, held = stratified_split(train.labels, val_split, seed)
        val_rows = TokenSplit(store, train.rows[held], train.labels[held])
        train = TokenSplit(store, train.rows[train_rows], train.labels[train_rows])
    if len(val_rows.rows) == 0:
        raise UsageError("the validation split is empty; give more samples, a larger "
                         "--val-split, or --val STORE")
    test_rows = _labelled_rows(_token_store(test, like=store)) if test is not None else None
    return train, val_rows, test_rows


def _token_store(path, like: Store | None = None) -> Store:
    store = open_complete_store(path, "tokens", "--tune tokenizer")
    _require_intact(path)
    if like is not None and (store.attrs["config_hash"] != like.attrs["config_hash"]
                             or store.class_names != like.class_names):
        raise UsageError(f"{path} was tokenized with another config or other classes than "
                         f"{like.path}; tokenize both the same way")
    return store


def _require_intact(path) -> None:
    """Tuning on damaged tokens would learn from garbage without a sign: every shard is
    checked against its marker's checksums once, before the first epoch."""
    from ..store.inspect import validate_store

    problems = validate_store(path).problems
    if problems:
        raise StoreError(f"{path} is damaged ({'; '.join(problems[:3])}); rerun `mmtok "
                         "tokenize` on it with --repair, then rerun this command")


def _labelled_rows(store: Store) -> TokenSplit:
    rows, labels, _ = labelled_rows(store)
    if len(rows) == 0:
        raise UsageError(f"{store.path} has no valid labelled samples; tokenize a folder of "
                         "class subfolders (or a manifest with labels)")
    return TokenSplit(store, rows, labels)


def _val_source(val, val_split: float, seed: int) -> str:
    return str(val) if val is not None else f"{val_split:g} of the train store (seed {seed})"


def _new_head(projector, encoder, pool_how: str, num_classes: int, seed: int,
              train: TokenSplit, device: torch.device) -> Head:
    from ..embedding.pipeline import pooled_features

    with torch.no_grad():  # one sample through the model gives the pooled width
        first = TokenSplit(train.store, train.rows[:1], train.labels[:1])
        batch = next(_batches(first, 1, device))[0]
        projector.eval()
        width = pooled_features(projector, encoder, batch, pool_how).shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Head("linear", width, num_classes).to(device)


def _train(model: Model, train: TokenSplit, val: ScoringSplit, settings: TuneSettings, seed: int,
           device: torch.device, progress: bool) -> tuple[list[dict], dict]:
    from ..progress import progress_bar

    parameters = [*model.projector.parameters(), *model.head.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = -(-len(train.rows) // settings.batch_size) + train.store.attrs["num_shards"]
    schedule = warmup_cosine(optimizer, settings.epochs * steps_per_epoch,
                             settings.warmup_epochs * steps_per_epoch)
    generator = np.random.default_rng(seed)
    history: list[dict] = []
    best, best_state = (-1.0, 0.0), None
    bar = progress_bar(total=settings.epochs, desc="tune tokenizer", unit="epoch",
                       disable=not progress)
    with bar:
        for epoch in range(1, settings.epochs + 1):
            train_loss = _epoch(model, train, optimizer, schedule, settings.batch_size,
                                generator, device)
            val_top1, val_loss = _score(model, val, device)
            history.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                            "val_top1": val_top1, "lr": optimizer.param_groups[0]["lr"]})
            if (val_top1, -val_loss) > best:
                best = (val_top1, -val_loss)
                best_state = {"projector": copy.deepcopy(model.projector.state_dict()),
                              "head": copy.deepcopy(model.head.state_dict())}
            bar.set_postfix(loss=f"{train_loss:.3f}", val_top1=f"{val_top1:.3f}")
            bar.update()
    return history, best_state


def _epoch(model: Model, split: TokenSplit, optimizer, schedule, batch_size: int,
           generator: np.random.Generator, device: torch.device) -> float:
    model.projector.train()
    model.head.train()
    total, count = 0.0, 0
    for batch, labels in _batches(split, batch_size, device, generator):
        loss = F.cross_entropy(model.logits(batch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        total += loss.item() * len(labels)
        count += len(labels)
    return total / max(count, 1)


@torch.no_grad()
def _probabilities(model: Model, batches: Iterable[Batch], device: torch.device) -> np.ndarray:
    model.projector.eval()
    model.head.eval()
    chunks = [torch.softmax(model.logits({name: values.to(device)
                                          for name, values in batch.items()}), 1).cpu()
              for batch, _ in batches]
    return torch.cat(chunks).numpy()


def _score(model: Model, split: ScoringSplit, device: torch.device) -> tuple[float, float]:
    probabilities = _probabilities(model, split.batches(), device)
    top1 = float((probabilities.argmax(1) == split.labels).mean())
    loss = float(-np.log(np.maximum(probabilities[np.arange(len(split.labels)),
                                                  split.labels], 1e-12)).mean())
    return top1, loss


def evaluate_tokens(model: Model, batches: Iterable[Batch], labels: np.ndarray,
                    class_names: list[str], device: torch.device) -> dict[str, Any]:
    """Metrics of ``model`` on ``batches``, whose rows are those of ``labels`` in order."""
    return classification_metrics(_probabilities(model, batches, device), labels, class_names)


def _batches(split: TokenSplit, batch_size: int, device: torch.device,
             generator: np.random.Generator | None = None) -> Iterator[Batch]:
    """Batches of the split's rows, one shard in memory at a time; shuffled (shard order and
    rows within a shard) when ``generator`` is given, in store order otherwise (and then the
    labels come out in ``split.labels`` order)."""
    from ..embedding.pipeline import input_arrays

    store = split.store
    size, total = store.attrs["shard_size"], len(store)
    names = input_arrays(store)
    label_of = dict(zip(split.rows.tolist(), split.labels.tolist()))
    shards = np.unique(split.rows // size)
    if generator is not None:
        shards = generator.permutation(shards)
    for shard in shards:
        start, stop = shard_bounds(int(shard), total, size)
        rows = split.rows[(split.rows >= start) & (split.rows < stop)]
        if generator is not None:
            rows = generator.permutation(rows)
        arrays = {name: store.group[name][start:stop] for name in names}
        for begin in range(0, len(rows), batch_size):
            chosen = rows[begin:begin + batch_size]
            batch = {name: torch.from_numpy(np.ascontiguousarray(values[chosen - start])).to(device)
                     for name, values in arrays.items()}
            labels = torch.tensor([label_of[int(r)] for r in chosen], dtype=torch.int64,
                                  device=device)
            yield batch, labels


def state_digest(module: torch.nn.Module) -> str:
    """sha256 over every tensor of ``module``'s state, in name order (bit-exact)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _save_projector(projector: torch.nn.Module, record: dict, output: Path,
                    trained_on: dict[str, Any]) -> str:
    from safetensors.torch import save_file

    from ..embedding.encoders import file_sha256

    state = {k: v.detach().cpu().contiguous() for k, v in projector.state_dict().items()}
    save_file(state, output / PROJECTOR_FILE)
    sha = file_sha256(output / PROJECTOR_FILE)
    (output / PROJECTOR_RECORD).write_text(json.dumps(
        {"kind": record["kind"], "sha256": sha, "started_from": record.get("source"),
         **({"options": record["options"]} if "options" in record else {}),
         "trained_on": trained_on}, indent=2) + "\n")
    return sha


def _tuned_provenance(encoder, encoder_options: dict | None, record: dict, projector_sha: str,
                      pool_how: str, store: Store) -> dict[str, Any]:
    """The provenance `mmtok embed --projector <tuned>` will record, so the head applies."""
    from .data import provenance

    return provenance({
        "encoder": encoder.name, "encoder_options": encoder_options or {},
        "weights_sha256": encoder.weights_sha256, "width": encoder.width,
        "projector": {"kind": record["kind"], "sha256": projector_sha}, "pool": pool_how,
        "tokens_config_hash": store.attrs["config_hash"],
    })
