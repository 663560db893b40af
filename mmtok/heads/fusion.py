"""Fusion heads over paired feature stores, and their co-training with distillation.

Every head here maps a batch of paired samples (features per modality, which modalities
are present, true token counts) to one logit tensor per task:

- :class:`LateFusion`: each modality's pooled features standardised with its training mean
  and std, absent ones set to zero (the training mean), presence flags appended, all
  concatenated into one linear layer or a one-hidden-layer MLP trunk, then one output
  layer per task.
- :class:`TokenFusion`: per-token features (``embed --pool none``; a pooled store is one
  token) projected to a common width, plus a learnt modality embedding and position
  embedding, behind a learnt cls token, through a small pre-norm transformer (joint
  self-attention); padding (the tokens a store's ``token_mask`` marks False; a store
  without one counts every token) and absent modalities are masked out of attention; the
  cls output feeds one output layer per task.

A unimodal head is the same module over a single modality, so the fusion head and every
unimodal head train in one loop (:func:`co_train`) on the same batches. With distillation
(arXiv 2311.10170) each unimodal head's loss is its task loss plus
``alpha * T^2 * KL(softmax(fusion / T) || softmax(unimodal / T))`` with the fusion logits
detached, so the fusion head is updated only by its own task loss.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from queue import Queue

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from .pairing import PairedSet
from .schedule import TrainSettings, warmup_cosine

FUSIONS = ("late", "tokens")
FUSION = "fusion"  # the name of the head over every modality
BLOCK_BYTES = 64 << 20  # streamed splits are read in blocks of about this many feature bytes

Batch = dict[str, dict[str, torch.Tensor]]  # "features", "present", "token_mask", "labels"


@dataclass
class FusionSettings(TrainSettings):
    fusion: str = "late"
    head: str = "linear"     # late fusion: linear or mlp
    hidden: int = 512        # late fusion MLP: hidden width
    dropout: float = 0.1
    width: int = 128         # token fusion: transformer width, layers, attention heads
    depth: int = 2
    heads: int = 4
    patience: int = 10
    distill: bool = False
    alpha: float = 0.5
    temperature: float = 2.0
    task_weights: dict[str, float] = field(default_factory=dict)


class LateFusion(nn.Module):
    """Standardised pooled features of each modality, concatenated -> trunk -> per task."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], classes: list[int], head: str = "linear",
                 hidden: int = 512, dropout: float = 0.1) -> None:
        super().__init__()
        if head not in ("linear", "mlp"):
            raise UsageError(f"--head must be linear or mlp, not {head!r}")
        for name, shape in shapes.items():
            if len(shape) != 1:
                raise UsageError(f"store {name!r} keeps per-token features {shape}; late fusion "
                                 "needs pooled ones (re-embed with --pool cls or mean, or use "
                                 "--fusion tokens)")
        self.shapes = dict(shapes)
        for name, (dim,) in shapes.items():
            self.register_buffer(f"mean__{name}", torch.zeros(dim))
            self.register_buffer(f"scale__{name}", torch.ones(dim))
        width = sum(s[0] for s in shapes.values()) + (len(shapes) if len(shapes) > 1 else 0)
        if head == "linear":
            self.trunk, out = nn.Identity(), width
        else:
            self.trunk = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout))
            out = hidden
        self.outputs = nn.ModuleList(nn.Linear(out, k) for k in classes)

    def set_standardization(self, name: str, mean: torch.Tensor, scale: torch.Tensor) -> None:
        getattr(self, f"mean__{name}").copy_(mean)
        getattr(self, f"scale__{name}").copy_(scale)

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        hidden = self.trunk(self.joined(batch))
        return [layer(hidden) for layer in self.outputs]

    def joined(self, batch: Batch) -> torch.Tensor:
        """The concatenated, standardised input of the trunk."""
        parts, flags = [], []
        for name in self.shapes:
            x, here = _inputs(batch, name, self.shapes[name], self.outputs[0].weight)
            x = (x - getattr(self, f"mean__{name}")) / getattr(self, f"scale__{name}")
            parts.append(x * here[:, None])
            flags.append(here.to(x.dtype))
        if len(self.shapes) > 1:
            parts.append(torch.stack(flags, 1))
        return torch.cat(parts, 1)


class TokenFusion(nn.Module):
    """Per-token features of every modality -> cls + joint self-attention -> per task."""

    def __init__(self, shapes: dict[str, tuple[int, ...]], classes: list[int], width: int = 128,
                 depth: int = 2, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        self.shapes = {name: token_shape(shape) for name, shape in shapes.items()}
        self.inputs = nn.ModuleDict({name: nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
                                     for name, (_, dim) in self.shapes.items()})
        self.modality = nn.ParameterDict({name: nn.Parameter(torch.randn(width) * 0.02)
                                          for name in self.shapes})
        self.position = nn.ParameterDict({name: nn.Parameter(torch.randn(length, width) * 0.02)
                                          for name, (length, _) in self.shapes.items()})
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        layer = nn.TransformerEncoderLayer(width, heads, 2 * width, dropout, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.outputs = nn.ModuleList(nn.Linear(width, k) for k in classes)

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        sequence, ignored = [], []
        for name, (length, _) in self.shapes.items():
            x, here = _inputs(batch, name, self.shapes[name], self.cls)
            x = x.reshape(len(x), length, -1)
            sequence.append(self.inputs[name](x) + self.modality[name] + self.position[name])
            masked = ~here[:, None].expand(-1, length)
            real = batch.get("token_mask", {}).get(name)
            if real is not None:  # padding; a store without a token_mask counts every token
                masked = masked | ~real
            ignored.append(masked)
        count = len(sequence[0])
        cls = self.cls.expand(count, -1, -1)
        tokens = torch.cat([cls, *sequence], 1)
        never = torch.zeros(count, 1, dtype=torch.bool, device=tokens.device)  # the cls token
        mask = torch.cat([never, *ignored], 1)
        out = self.norm(self.blocks(tokens, src_key_padding_mask=mask)[:, 0])
        return [layer(out) for layer in self.outputs]


def token_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(tokens, width) of a store's per-sample feature shape; a pooled feature is 1 token."""
    if len(shape) == 1:
        return 1, shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    raise UsageError(f"features of shape {shape} are neither pooled nor per-token")


def _inputs(batch: Batch, name: str, shape: tuple[int, ...],
            like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A modality's features and presence in ``batch``; zeros and absent when the batch
    lacks the modality (predict with a subset of the stores)."""
    features = batch["features"].get(name)
    if features is not None:
        return features, batch["present"][name]
    count = len(next(iter(batch["present"].values())))
    return (torch.zeros((count, int(np.prod(shape))), dtype=like.dtype, device=like.device),
            torch.zeros(count, dtype=torch.bool, device=like.device))


def new_head(names: list[str], data: PairedSet, settings: FusionSettings, seed: int) -> nn.Module:
    """A fusion head over ``names`` (seeded from ``seed`` and the names, so a head starts
    from the same weights whichever run makes it); late fusion gets the training
    standardisation of each modality."""
    shapes = {name: data.modalities[name].shape for name in names}
    classes = [len(data.class_names[task]) for task in data.tasks]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 1000 + sum(map(ord, "+".join(names))))
        if settings.fusion == "late":
            model = LateFusion(shapes, classes, settings.head, settings.hidden, settings.dropout)
        elif settings.fusion == "tokens":
            model = TokenFusion(shapes, classes, settings.width, settings.depth, settings.heads,
                                settings.dropout)
        else:
            raise UsageError(f"--fusion must be one of {', '.join(FUSIONS)}, "
                             f"not {settings.fusion!r}")
    if isinstance(model, LateFusion):
        for name in names:
            model.set_standardization(name, *modality_statistics(data, name))
    return model


def modality_statistics(data: PairedSet, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of a modality's features over the samples where it is present (one
    pass over blocks when the split is streamed)."""
    modality = data.modalities[name]
    rows = np.flatnonzero(modality.present)
    dim = modality.shape[-1]
    total, squares = np.zeros(dim), np.zeros(dim)
    for block in _blocks(data, rows, None, 256):
        x = modality.read(block).reshape(len(block), -1).astype(np.float64)
        total += x.sum(0)
        squares += (x * x).sum(0)
    count = max(1, len(rows))
    mean = total / count
    scale = np.sqrt(np.maximum(squares / count - mean * mean, 0.0))
    scale[scale < 1e-6] = 1.0
    return torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(scale.astype(np.float32))


# --------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------


def _block_size(data: PairedSet, batch_size: int) -> int:
    """Samples per streamed block: about :data:`BLOCK_BYTES` of features, a whole number of
    batches (so that every batch but the epoch's last is full)."""
    per_sample = max(1, data.nbytes() // max(1, len(data)))
    return max(1, BLOCK_BYTES // per_sample // batch_size) * batch_size


def _blocks(data: PairedSet, rows: np.ndarray, rng: np.random.Generator | None,
            batch_size: int = 1024) -> list[np.ndarray]:
    """``rows`` cut into blocks read from the stores in one go each: all of them at once
    when the split is held in memory; otherwise in the first modality's store order (so a
    block reads neighbouring store rows), about :data:`BLOCK_BYTES` each. Shuffled
    (blocks, and rows within a block) when ``rng`` is given."""
    held = all(m.held is not None for m in data.modalities.values())
    if held:
        return [rng.permutation(rows) if rng is not None else rows]
    first = next(iter(data.modalities.values())).rows[rows]
    ordered = rows[np.argsort(first, kind="stable")]
    size = _block_size(data, batch_size)
    blocks = [ordered[i:i + size] for i in range(0, len(ordered), size)]
    if rng is not None:
        blocks = [rng.permutation(b) for b in (blocks[i] for i in rng.permutation(len(blocks)))]
    return blocks


def _read_block(data: PairedSet, block: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    return {"features": {n: m.read(block) for n, m in data.modalities.items()},
            "present": {n: m.present[block] for n, m in data.modalities.items()},
            "token_mask": {n: m.read_token_mask(block) for n, m in data.modalities.items()
                           if m.has_token_mask},
            "labels": {t: y[block] for t, y in data.labels.items()}}


def batches(data: PairedSet, batch_size: int, device: torch.device,
            rng: np.random.Generator | None = None,
            rows: np.ndarray | None = None) -> Iterator[Batch]:
    """Batches of ``data`` as tensors on ``device``; a streamed split's next block is read
    by a background thread while the current one trains (one block ahead, so memory stays
    at two blocks). A streamed split comes in store order, not the order of ``rows``
    (:func:`in_rows_order` puts per-row outputs back)."""
    rows = np.arange(len(data)) if rows is None else rows
    return _batches_of(data, _blocks(data, rows, rng, batch_size), batch_size, device)


def in_rows_order(data: PairedSet, rows: np.ndarray, batch_size: int) -> np.ndarray:
    """Indices that put the outputs of ``batches(data, batch_size, rows=rows)`` (no
    shuffling; ``rows`` unique) back in the order of ``rows``."""
    blocks = _blocks(data, rows, None, batch_size)
    read = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
    sorter = np.argsort(read, kind="stable")
    return sorter[np.searchsorted(read, rows, sorter=sorter)]


def _batches_of(data: PairedSet, blocks: list[np.ndarray], batch_size: int,
                device: torch.device) -> Iterator[Batch]:
    for arrays in _prefetched(data, blocks):
        count = len(next(iter(arrays["present"].values())))
        for begin in range(0, count, batch_size):
            part = slice(begin, begin + batch_size)
            yield {group: {key: torch.from_numpy(np.ascontiguousarray(value[part])).to(device)
                           for key, value in values.items()}
                   for group, values in arrays.items()}


def _prefetched(data: PairedSet, blocks: list[np.ndarray]) -> Iterator[dict]:
    if len(blocks) <= 1:
        for block in blocks:
            yield _read_block(data, block)
        return
    queue: Queue = Queue(maxsize=1)

    def reader() -> None:
        try:
            for block in blocks:
                queue.put(_read_block(data, block))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            queue.put(exc)
        queue.put(None)

    thread = threading.Thread(target=reader, daemon=True, name="mmtok-fusion-reader")
    thread.start()
    while (item := queue.get()) is not None:
        if isinstance(item, BaseException):
            raise item
        yield item
    thread.join()


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------


def head_rows(batch: Batch, name: str) -> torch.Tensor | None:
    """The rows a head learns from: all for the fusion head, those with its modality for a
    unimodal head."""
    return None if name == FUSION else batch["present"][name]


def _only(batch: Batch, rows: torch.Tensor | None) -> Batch:
    if rows is None:
        return batch
    return {group: {key: value[rows] for key, value in values.items()}
            for group, values in batch.items()}


def task_loss(logits: list[torch.Tensor], labels: dict[str, torch.Tensor], tasks: list[str],
              weights: dict[str, float]) -> torch.Tensor:
    """Weighted sum over tasks of the cross-entropy of the labelled rows."""
    total = logits[0].new_zeros(())
    for task, out in zip(tasks, logits):
        y = labels[task]
        if (y >= 0).any():
            total = total + weights.get(task, 1.0) * F.cross_entropy(out, y, ignore_index=-1)
    return total


def distill_loss(student: list[torch.Tensor], teacher: list[torch.Tensor],
                 temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), summed over tasks, mean over
    rows; the teacher is detached."""
    total = student[0].new_zeros(())
    for s, t in zip(student, teacher):
        target = F.log_softmax(t.detach() / temperature, 1)
        total = total + F.kl_div(F.log_softmax(s / temperature, 1), target, log_target=True,
                                 reduction="batchmean") * temperature ** 2
    return total


def co_train(heads: dict[str, nn.Module], train: PairedSet, val: PairedSet,
             settings: FusionSettings, seed: int, device: torch.device,
             alpha: float) -> dict[str, list[dict]]:
    """Train the fusion head and the unimodal heads together, in place, on the same
    batches; each ends with the weights of its own best validation epoch (mean top-1 over
    tasks, ties to lower loss). ``alpha`` 0 trains the unimodal heads alone (their losses
    do not touch one another). Stops after ``patience`` epochs in which no head improved.
    Returns each head's per-epoch history."""
    rng = np.random.default_rng(seed)
    params = [p for head in heads.values() for p in head.parameters()]
    # Small sets get smaller batches (at least 8 steps an epoch), as for the MLP head.
    settings = copy.copy(settings)
    settings.batch_size = max(1, min(settings.batch_size, len(train) // 8))
    steps = -(-len(train) // settings.batch_size)
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    schedule = warmup_cosine(optimizer, settings.epochs * steps, settings.warmup_epochs * steps)
    history: dict[str, list[dict]] = {name: [] for name in heads}
    best = {name: (-1.0, 0.0) for name in heads}
    states = {name: copy.deepcopy(head.state_dict()) for name, head in heads.items()}
    waited = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for epoch in range(1, settings.epochs + 1):
            losses = train_epoch(heads, train, settings, device, alpha, rng, optimizer, schedule)
            scores = evaluate_heads(heads, val, settings, device)
            improved = False
            for name, head in heads.items():
                top1, loss = scores[name]["top1"], scores[name]["loss"]
                history[name].append({"epoch": epoch, "train_loss": losses[name],
                                      "val_loss": loss, "val_top1": top1})
                if (top1, -loss) > best[name]:
                    best[name], improved = (top1, -loss), True
                    states[name] = copy.deepcopy(head.state_dict())
            waited = 0 if improved else waited + 1
            if waited >= settings.patience:
                break
    for name, head in heads.items():
        head.load_state_dict(states[name])
    return history


def train_epoch(heads: dict[str, nn.Module], train: PairedSet, settings: FusionSettings,
                device: torch.device, alpha: float, rng: np.random.Generator, optimizer,
                schedule) -> dict[str, float]:
    """One epoch over shuffled batches; the mean loss of each head."""
    for head in heads.values():
        head.train()
    totals = {name: 0.0 for name in heads}
    for batch in batches(train, settings.batch_size, device, rng):
        loss, parts = step_loss(heads, batch, train.tasks, settings, alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        for name, value in parts.items():
            totals[name] += value
    return {name: total / max(1, len(train)) for name, total in totals.items()}


def step_loss(heads: dict[str, nn.Module], batch: Batch, tasks: list[str],
              settings: FusionSettings, alpha: float) -> tuple[torch.Tensor, dict[str, float]]:
    """The summed loss of every head on one batch, and each head's share (times rows)."""
    fused = heads[FUSION](batch) if FUSION in heads else None
    total = task_loss(fused, batch["labels"], tasks, settings.task_weights) if fused else None
    parts = {FUSION: total.item() * len(fused[0])} if fused else {}
    for name, head in heads.items():
        if name == FUSION:
            continue
        rows = head_rows(batch, name)
        if not rows.any():
            parts[name] = 0.0
            continue
        own = _only(batch, rows)
        logits = head(own)
        loss = task_loss(logits, own["labels"], tasks, settings.task_weights)
        if alpha > 0 and fused is not None:
            loss = loss + alpha * distill_loss(logits, [f[rows] for f in fused],
                                               settings.temperature)
        parts[name] = loss.item() * int(rows.sum())
        total = loss if total is None else total + loss
    return total, parts


@torch.no_grad()
def head_probabilities(head: nn.Module, data: PairedSet, device: torch.device,
                       batch_size: int = 1024, rows: np.ndarray | None = None) -> list[np.ndarray]:
    """Per task, (n, K) probabilities of ``head`` on ``data`` (its ``rows``, default all),
    in the order of ``rows``."""
    head.eval()
    rows = np.arange(len(data)) if rows is None else rows
    chunks: list[list[np.ndarray]] = []
    for batch in batches(data, batch_size, device, rows=rows):
        chunks.append([torch.softmax(out, 1).cpu().numpy() for out in head(batch)])
    if not chunks:
        return [np.zeros((0, len(data.class_names[t])), np.float32) for t in data.tasks]
    order = in_rows_order(data, rows, batch_size)
    return [np.concatenate([c[i] for c in chunks])[order] for i in range(len(chunks[0]))]


def evaluate_heads(heads: dict[str, nn.Module], data: PairedSet, settings: FusionSettings,
                   device: torch.device) -> dict[str, dict[str, float]]:
    """Mean top-1 and cross-entropy over tasks of every head on the rows it can answer."""
    scores = {}
    for name, head in heads.items():
        rows = (np.arange(len(data)) if name == FUSION
                else np.flatnonzero(data.modalities[name].present))
        probabilities = head_probabilities(head, data, device, rows=rows)
        top1s, losses = [], []
        for task, p in zip(data.tasks, probabilities):
            y = data.labels[task][rows]
            known = y >= 0
            if not known.any():
                continue
            top1s.append(float((p[known].argmax(1) == y[known]).mean()))
            losses.append(float(-np.log(np.maximum(p[known, y[known]], 1e-12)).mean()))
        scores[name] = {"top1": float(np.mean(top1s)) if top1s else 0.0,
                        "loss": float(np.mean(losses)) if losses else 0.0}
    return scores


# --------------------------------------------------------------------------------------
# the linear probe (late fusion, --head linear, no distillation)
# --------------------------------------------------------------------------------------


@torch.no_grad()
def _joined(head: LateFusion, data: PairedSet, rows: np.ndarray,
            device: torch.device) -> torch.Tensor:
    parts = [head.joined(batch) for batch in batches(data, 65536, device, rows=rows)]
    if not parts:
        return torch.zeros((0, head.outputs[0].in_features), device=device)
    order = torch.from_numpy(in_rows_order(data, rows, 65536)).to(device)
    return torch.cat(parts)[order]  # in the order of rows, as their labels


def fit_probes(heads: dict[str, nn.Module], train: PairedSet, val: PairedSet,
               device: torch.device, refit: bool = True) -> dict[str, dict[str, float]]:
    """Late fusion with a linear head is a linear probe on the concatenated standardised
    features: every head's output layer of every task is fitted by the L-BFGS probe with
    CLIP's sweep of the L2 strength on validation (then a refit on train + val), exactly as
    ``train-head --head linear`` fits one store. Returns the chosen l2 per head and task."""
    from .linear import train_linear

    chosen: dict[str, dict[str, float]] = {}
    for name, head in heads.items():
        train_rows = (np.arange(len(train)) if name == FUSION
                      else np.flatnonzero(train.modalities[name].present))
        val_rows = (np.arange(len(val)) if name == FUSION
                    else np.flatnonzero(val.modalities[name].present))
        tx, vx = _joined(head, train, train_rows, device), _joined(head, val, val_rows, device)
        chosen[name] = {}
        for task, layer in zip(train.tasks, head.outputs):
            ty = torch.as_tensor(train.labels[task][train_rows], device=device)
            vy = torch.as_tensor(val.labels[task][val_rows], device=device)
            known, val_known = ty >= 0, vy >= 0
            probe = train_linear(tx[known], ty[known], vx[val_known], vy[val_known],
                                 layer.out_features, refit=refit)
            with torch.no_grad():
                layer.weight.copy_(probe.final.weight)
                layer.bias.copy_(probe.final.bias)
            chosen[name][task] = probe.chosen.l2
    return chosen
