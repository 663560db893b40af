"""``embed``: token store -> Projector -> frozen Encoder -> Pool -> feature store.

The feature store mirrors the token store sample for sample (same N, ids, labels, valid
flags and shard size), with one shard of features per shard of tokens. It follows the token
store's contracts: a lock, a commit marker per shard written last, resume by default, and a
config (encoder, weights sha256, projector, pooling, precision, the token store's config
hash) that a resumed run must match. A background thread reads the next token shard while
the encoder runs on the current one, so at most two shards are in memory.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import torch

from ..engines import EngineOptions, ShardJob, StepRun, Task, WorkerContext, make_engine, run_step
from ..errors import MmtokWarning, StoreError, UsageError
from ..store.integrity import checksum_mismatches
from ..store.layout import FITTED, TOKEN_MASK, ArraySpec, shard_bounds
from ..store.paths import check_output_is_not_input
from ..store.reader import Store, open_complete_store
from ..store.summary import RunSummary
from ..store.writer import ShardData, ShardWriter, StoreSpec, check_output_kind
from .encoders import AdaptedCheckpointWarning, RandomWeightsWarning, load_encoder
from .pooling import POOLS, pool, token_mask
from .projectors import build_projector, embed_statistics, run_encoder

PRECISIONS = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def input_arrays(store: Store) -> list[str]:
    """The token-store arrays the store's projector reads (its registry entry says which)."""
    from ..modalities import get_modality

    return list(get_modality(store.modality).inputs)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda asked for, but no CUDA device is available")
    return torch.device(device)


CPU_ACTIVATION_BYTES = 32 << 20  # glibc's largest size it reuses instead of mapping anew


def auto_batch_size(device: torch.device, tokens: int, width: int) -> int:
    """On CPU, the largest batch whose MLP activation (B x T x 4D floats) stays under 32 MiB:
    bigger ones are mapped fresh from the kernel on every block, costing page faults; on
    CUDA, 128."""
    if device.type == "cuda":
        return 128
    per_sample = (tokens + 1) * 4 * width * 4
    return max(1, min(64, CPU_ACTIVATION_BYTES // per_sample))


def _read_shards(tokens: Store, shards: list[int]) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    for shard in shards:
        yield shard, _read_shard(tokens, shard)


def _read_shard(tokens: Store, shard: int) -> dict[str, np.ndarray]:
    """One token shard's model inputs, labels, valid flags and ids, checked."""
    start, stop = shard_bounds(shard, len(tokens), tokens.attrs["shard_size"])
    names = input_arrays(tokens)
    rows = {name: tokens.group[name][start:stop] for name in (*names, "label", "valid", "id")}
    _verify_token_shard(tokens, shard, rows, tokens.markers[shard])
    return rows


def _verify_token_shard(tokens: Store, shard: int, rows: dict[str, np.ndarray],
                        marker: dict) -> None:
    """Features of damaged tokens would look like any others; hashing the rows costs little
    next to the encoder, so every token shard is checked against its marker as it is read."""
    bad = checksum_mismatches(rows, marker)
    if bad:
        raise StoreError(
            f"{tokens.path}: shard {shard}'s {', '.join(bad)} do not match the checksums of its "
            "commit marker (the token store is damaged); rerun `mmtok tokenize` on it with "
            "--repair, then rerun this command")


def _prefetch(iterator: Iterator, depth: int = 1) -> Iterator:
    """Run ``iterator`` on a thread, ``depth`` items ahead (bounded memory)."""
    items: queue.Queue = queue.Queue(maxsize=depth)
    done = object()

    def produce() -> None:
        try:
            for item in iterator:
                items.put(item)
            items.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            items.put(exc)

    threading.Thread(target=produce, daemon=True).start()
    while True:
        item = items.get()
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


class Embedder:
    """Projector + frozen encoder + pooling on one device; ``__call__`` takes numpy rows and
    gives the feature store's arrays: ``features``, and for per-token features (pool
    ``none``) ``token_mask``.

    With ``compile`` the whole per-batch forward (projector, blocks, pool, under autocast)
    goes through ``torch.compile``. Every batch is then padded to ``batch_size`` rows so that
    one graph serves every call: shards with invalid samples or a short tail would otherwise
    give a new batch shape, each costing a recompile (and past torch's recompile limit,
    silently eager). Samples never interact in the forward, so padding rows change nothing.
    """

    def __init__(self, projector, encoder, how: str, device: torch.device,
                 precision: str, batch_size: int, compile: bool = False) -> None:
        self.projector, self.encoder, self.how = projector, encoder, how
        self.device, self.batch_size = device, batch_size
        self.autocast = PRECISIONS[precision]
        self.compiled = torch.compile(self._forward) if compile else None

    def _to_device(self, values: np.ndarray) -> torch.Tensor:
        tensor = torch.from_numpy(np.ascontiguousarray(values))
        if self.device.type == "cuda":  # pinned host memory makes the copy asynchronous
            tensor = tensor.pin_memory()
        return tensor.to(self.device, non_blocking=True)

    def _forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return encoded(self.projector, self.encoder, batch, self.how, self.autocast)

    @torch.inference_mode()
    def __call__(self, rows: dict[str, np.ndarray], *, eager: bool = False,
                 on_batch: Callable[[int], object] | None = None) -> dict[str, np.ndarray]:
        """The arrays of ``rows`` (see :func:`encoded`); ``eager`` skips the compiled graph
        (one-off calls such as the shape probe would otherwise compile a graph of their
        own); ``on_batch(rows)`` is called after every batch (progress)."""
        forward = self._forward if eager or self.compiled is None else self.compiled
        outputs: dict[str, list[np.ndarray]] = {}
        count = len(next(iter(rows.values())))  # every input array has one row per sample
        for begin in range(0, count, self.batch_size):
            chunk = {name: values[begin:begin + self.batch_size] for name, values in rows.items()}
            real = len(next(iter(chunk.values())))
            if forward is self.compiled and real < self.batch_size:
                chunk = {name: _pad_rows(values, self.batch_size) for name, values in chunk.items()}
            arrays = forward({name: self._to_device(values) for name, values in chunk.items()})
            for name, values in arrays.items():
                values = values[:real]
                outputs.setdefault(name, []).append(
                    (values if values.dtype == torch.bool else values.float()).cpu().numpy())
            if on_batch is not None:
                on_batch(real)
        if not outputs:
            return {"features": np.zeros((0,), np.float32)}
        return {name: np.concatenate(parts) for name, parts in outputs.items()}


def encoded(projector: torch.nn.Module, encoder: Any, batch: dict[str, torch.Tensor],
            how: str, autocast: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """The recipe's forward: projector -> frozen encoder -> pool, under autocast when a
    dtype is given: ``{"features": ...}``, plus, when every token is kept (``how="none"``),
    ``token_mask`` (which of them are real, :func:`~mmtok.embedding.pooling.token_mask`),
    so that a fusion head can leave the padding out of attention."""
    with torch.autocast(next(iter(batch.values())).device.type, dtype=autocast,
                        enabled=autocast is not None):
        projected = projector(batch)
        x = run_encoder(encoder, projected)
        arrays = {"features": pool(x, projected.mask, projected.prefix, how)}
    if how == "none":
        arrays[TOKEN_MASK] = token_mask(projected.mask, projected.prefix, x)
    return arrays


def pooled_features(projector: torch.nn.Module, encoder: Any, batch: dict[str, torch.Tensor],
                    how: str, autocast: torch.dtype | None = None) -> torch.Tensor:
    """The features alone of :func:`encoded` (tokenizer tuning trains through them)."""
    return encoded(projector, encoder, batch, how, autocast)["features"]


def _pad_rows(values: np.ndarray, rows: int) -> np.ndarray:
    """``values`` with zero rows appended up to ``rows`` (a fixed batch shape)."""
    padded = np.zeros((rows, *values.shape[1:]), values.dtype)
    padded[:len(values)] = values
    return padded


def embed(
    tokens: str | os.PathLike,
    output: str | os.PathLike,
    encoder: str = "vit_base_patch16_224",
    *,
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
    projector: str | os.PathLike | None = None,
    pool_how: str = "cls",
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "float32",
    seed: int = 0,
    encoder_options: dict | None = None,
    overwrite: bool = False,
    repair: bool = False,
    progress: bool = True,
    compile: bool = False,
    engine: str = "local",
    ray_address: str | None = None,
    ray_num_cpus: float | None = None,
    ray_actors: int | None = None,
    max_retries: int = 3,
    projector_options: dict | None = None,
    statistics: str | dict = "encoder",
) -> RunSummary:
    """Embed a complete token store into a feature store (resumes an existing one).

    ``projector_options`` choose among the modality projector's variants (e.g. a time
    series' ``{"kind": "patch"}``); the builder records the options it used in the feature
    store's projector record (so they are part of its config and its provenance).

    ``encoder_options`` go to ``timm.create_model`` (e.g. ``{"img_size": 384}``, or the depth
    of a small test model) and are recorded in the feature store's config. ``repair`` checks
    every committed shard of the feature store against its checksums and rewrites the
    damaged ones (as ``tokenize --repair``).

    ``compile`` runs the per-batch forward through ``torch.compile`` (the first batch pays
    for the compilation; on the CPU it needs a C compiler). It is deliberately not part of
    the store's config: it changes speed, not results (features agree to float rounding), so
    a store started with it resumes without it and vice versa.

    ``engine="ray"`` embeds on a Ray cluster (``ray_address``, default ``RAY_ADDRESS``, else
    a local instance): one actor per GPU, or ``ray_actors`` CPU actors of ``ray_num_cpus``
    threads each; the store is byte-identical to the local engine's on the same device
    (docs/engines.md).
    ``statistics``: the normalisation of modalities normalised at embed time (image):
    ``"encoder"`` (the encoder's own, the default), ``"store"`` (the token store's), or a
    dict of given values; recorded in the feature store's config (see
    :func:`mmtok.embedding.projectors.embed_statistics`).
    """
    started = time.perf_counter()
    check_output_is_not_input("embed", output, {"token store": tokens})
    check_output_kind(output, "features")
    if pool_how not in POOLS:
        raise UsageError(f"--pool must be one of {', '.join(POOLS)}, not {pool_how!r}")
    if precision not in PRECISIONS:
        raise UsageError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    runner = make_engine(EngineOptions(engine, 1, ray_address, ray_num_cpus, ray_actors,
                                       max_retries))
    output = runner.check_output(os.fspath(output))  # absolute for Ray: every node's path
    tokens = runner.check_output(os.fspath(tokens))
    weights, projector = (runner.check_output(os.fspath(p)) if p is not None else None
                          for p in (weights, projector))
    token_store = open_complete_store(tokens, "tokens", "embed")
    job = EmbedJob(tokens, output, encoder, weights, pretrained, projector,
                   pool_how, batch_size, device, precision, seed, encoder_options or {}, compile,
                   projector_options, statistics)
    # The driver's own embedder gives the feature shape and the spec; the local engine then
    # uses it, while Ray actors each load their own (docs/engines.md).
    built = job.build(token_store, _driver_device(device, engine))
    job.keep(built.embedder)
    _warn_about_encoder(built.encoder)
    spec = _feature_spec(token_store, built.encoder, built.projector_record, pool_how,
                         precision, seed, _feature_shape(built.embedder, token_store),
                         encoder_options or {}, projector, built.statistics_record)
    run = StepRun(f"embed ({'ray' if engine == 'ray' else built.embedder.device})", spec,
                  overwrite, repair, progress)
    summary = run_step(run, job, runner, lambda shard: None, started)
    if summary.nothing_valid:
        summary.warnings.append(f"{tokens} holds no valid sample, so no feature was computed; "
                                "`mmtok info TOKENS --errors` shows why each one failed")
    return summary


def _driver_device(device: str, engine: str) -> str:
    """Where the driver loads its embedder: ``device``, or the CPU for a Ray driver (it only
    needs the feature shape and the weights' hash; the GPUs belong to the actors)."""
    return "cpu" if engine == "ray" else device


def _warn_about_encoder(encoder: Any) -> None:
    """What a user must know about the encoder, said once before the run as an
    :class:`~mmtok.errors.MmtokWarning` (the CLI prints it as one ``mmtok: warning:`` line):
    features of random weights mean nothing, and adapted weights differ from the
    checkpoint's own model. Not repeated in the summary, which would show it twice."""
    if encoder.weights_sha256 is None and encoder.weights_source.startswith("random"):
        warnings.warn(
            f"the encoder {encoder.name} has random weights ({encoder.weights_source}): no "
            "--weights FILE or --pretrained was given, so these features come from an "
            "untrained model (fine for a test; pass --weights or --pretrained for real use)",
            RandomWeightsWarning, stacklevel=3)
    if encoder.adapted:
        shapes = "; ".join(f"{key} {list(old)} -> {list(new)}"
                           for key, (old, new) in encoder.adapted_shapes.items())
        warnings.warn(
            f"the checkpoint's tensors were resized to fit {encoder.name} by timm's checkpoint "
            f"filter ({shapes}); the features are not exactly those of the checkpoint's own "
            "model (choose an --encoder / --encoder-option img_size=... that matches it)",
            AdaptedCheckpointWarning, stacklevel=3)


@dataclass(frozen=True)
class BuiltEmbedder:
    """What :meth:`EmbedJob.build` makes: the embedder, its frozen encoder, and the records
    of the projector and of the statistics it normalises with (for the feature spec)."""

    embedder: "Embedder"
    encoder: Any
    projector_record: dict
    statistics_record: dict | None


@dataclass(frozen=True)
class EmbedJob(ShardJob):
    """Embed's work, sent once to every worker: what it takes to build the embedder and
    which stores to read and write. A worker loads the model once (``setup``)."""

    tokens: str
    output: str
    encoder: str
    weights: str | os.PathLike | None
    pretrained: bool
    projector: str | os.PathLike | None
    pool_how: str
    batch_size: int | None
    device: str
    precision: str
    seed: int
    encoder_options: dict
    compile: bool
    projector_options: dict | None = None
    statistics: str | dict = "encoder"
    stateful = True
    _local: Any = field(default=None, compare=False, repr=False)

    def keep(self, embedder: "Embedder") -> None:
        """The driver's embedder, used in this process instead of loading another."""
        object.__setattr__(self, "_local", embedder)

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_local"}  # a model stays here

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state, _local=None)

    def build(self, token_store: Store, device: str) -> BuiltEmbedder:
        torch_device = resolve_device(device)
        frozen = load_encoder(self.encoder, weights=self.weights, pretrained=self.pretrained,
                              seed=self.seed, device=torch_device,
                              model_kwargs=self.encoder_options)
        statics = {name: token_store.static(name) for name in token_store.attrs["static_arrays"]}
        projector_config, statistics_record = embed_statistics(
            token_store.modality, token_store.config, frozen, self.statistics)
        module, record = build_projector(token_store.modality, projector_config, frozen,
                                         self.seed, self.projector, statics,
                                         self.projector_options)
        module.to(torch_device)
        batch_size = self.batch_size or auto_batch_size(
            torch_device, _tokens_per_sample(token_store), frozen.width)
        embedder = Embedder(module, frozen, self.pool_how, torch_device, self.precision,
                            batch_size, compile=self.compile)
        return BuiltEmbedder(embedder, frozen, record, statistics_record)

    def setup(self, context: WorkerContext) -> "_EmbedWorker":
        token_store = open_complete_store(self.tokens, "tokens", "embed")
        if context.threads:
            torch.set_num_threads(context.threads)
        if self._local is not None and context.device is None:
            embedder = self._local
        else:
            with warnings.catch_warnings():  # the driver's own build has shown them once
                warnings.simplefilter("ignore", MmtokWarning)
                embedder = self.build(token_store, context.device or self.device).embedder
        return _EmbedWorker(embedder, token_store, ShardWriter(self.output))

    def work(self, state: "_EmbedWorker", shard: int, payload: None = None,
             on_sample: Callable[[int], None] | None = None) -> dict:
        return state.write(shard, _read_shard(state.tokens, shard), on_sample)

    def work_in_order(self, state: "_EmbedWorker", tasks: Iterable[Task],
                      on_sample: Callable[[int], None] | None = None) -> Iterator[dict]:
        # one process: read the next token shard on a thread while the encoder runs
        shards = [shard for shard, _ in tasks]
        for shard, rows in _prefetch(_read_shards(state.tokens, shards)):
            yield state.write(shard, rows, on_sample)


@dataclass
class _EmbedWorker:
    embedder: "Embedder"
    tokens: Store
    writer: ShardWriter

    def write(self, shard: int, rows: dict[str, np.ndarray],
              on_samples: Callable[[int], None] | None = None) -> dict:
        """Embed one token shard's rows and write its feature shard, marker last;
        ``on_samples(n)`` after every batch of ``n`` samples (progress moves per batch)."""
        start = shard * self.writer.attrs["shard_size"]
        valid = rows["valid"].astype(bool)
        # zeros (and no real token) for samples that were invalid in the token store
        arrays = {name: np.zeros((len(valid), *self.writer.group[name].shape[1:]),
                                 self.writer.group[name].dtype)
                  for name in self.writer.attrs["arrays"]}
        inputs = {k: v[valid] for k, v in rows.items() if k in input_arrays(self.tokens)}
        if valid.any():
            for name, values in self.embedder(inputs, on_batch=on_samples).items():
                arrays[name][valid] = values
        errors = {e["index"]: e for e in self.tokens.markers[shard]["errors"]}
        shard_errors = [_invalid_record(start + int(i), str(rows["id"][i]), errors)
                        for i in np.flatnonzero(~valid)]
        marker = self.writer.write(shard, ShardData(arrays, rows["label"],
                                                    valid, [str(i) for i in rows["id"]],
                                                    shard_errors))
        invalid = int((~valid).sum())
        if on_samples is not None and invalid:  # the valid ones moved it batch by batch
            on_samples(invalid)
        return marker


def _tokens_per_sample(token_store: Store) -> int:
    """Tokens per sample, about: the longest axis 1 of the projector's inputs (a modality's
    input need not be called "tokens": tabular reads its columns)."""
    lengths = [token_store.group[name].shape[1] for name in input_arrays(token_store)
               if len(token_store.group[name].shape) > 1]
    return max(lengths, default=1)


def _feature_shape(embedder: Embedder, tokens: Store) -> tuple[int, ...]:
    # Zeros are enough: only the shape is kept, and prefix tokens are never masked, so even a
    # length-0 input attends to something.
    probe = {name: np.zeros((1, *tokens.group[name].shape[1:]), tokens.group[name].dtype)
             for name in input_arrays(tokens)}
    return embedder(probe, eager=True)["features"].shape[1:]


def weights_identity(encoder: Any) -> str:
    """What the encoder's weights are, wherever their file lies: ``sha256:<hex>`` for a
    file, else the hub name or the random seed. Paths never enter a config: the same
    weights copied to another folder or machine must resume a store and fit a head."""
    if encoder.weights_sha256 is not None:
        return f"sha256:{encoder.weights_sha256}"
    return encoder.weights_source


def projector_identity(record: dict, encoder: Any) -> dict:
    """The projector's record without paths: a loaded file is named by its sha256 alone,
    and the image projector (the encoder's own patch embedding) by the encoder weights."""
    record = dict(record)
    if "sha256" in record:
        record.pop("source", None)
    elif record.get("source") == encoder.weights_source:
        record["source"] = weights_identity(encoder)
    return record


def _file_paths(encoder: Any, projector_file: str | os.PathLike | None) -> dict:
    """Where the weights and projector files were read from: kept in the attrs for
    information only (outside the config, so neither resume nor provenance compares it)."""
    source = encoder.weights_source
    return {"weights": source[len("file:"):] if source.startswith("file:") else None,
            "projector": os.path.abspath(projector_file) if projector_file else None}


def _feature_spec(tokens: Store, encoder: Any, projector: dict, how: str, precision: str,
                  seed: int, shape: tuple[int, ...], encoder_options: dict,
                  projector_file: str | os.PathLike | None = None,
                  statistics: dict | None = None) -> StoreSpec:
    attrs = tokens.attrs
    config = {
        "encoder": encoder.name, "encoder_options": encoder_options,
        "adapted_keys": list(encoder.adapted), "weights_sha256": encoder.weights_sha256,
        "weights_source": weights_identity(encoder), "width": encoder.width,
        "projector": projector_identity(projector, encoder), "statistics": statistics,
        "pool": how,
        "precision": precision, "seed": seed,
        "tokens_config_hash": attrs["config_hash"], "tokens_config": attrs["config"],
    }
    arrays = {"features": ArraySpec(tuple(shape), "float32", ("token", "feature")[-len(shape):])}
    if how == "none":  # which tokens are real: padding is not (fusion heads mask it out)
        arrays[TOKEN_MASK] = ArraySpec((shape[0],), "bool", ("token",))
    return StoreSpec(
        kind="features", modality=attrs["modality"], config=config, arrays=arrays,
        static_arrays={},
        num_samples=attrs["num_samples"], shard_size=attrs["shard_size"],
        class_names=attrs["class_names"],
        source={"tokens": os.path.abspath(tokens.path), **attrs["source"]},
        source_hash=attrs["source_hash"],
        # where the token config's statistics were fitted (for `info` and --config-from),
        # and the paths of the files hashed into the config (for information only)
        extra_attrs={"files": _file_paths(encoder, projector_file),
                     **({FITTED: attrs[FITTED]} if FITTED in attrs else {})},
    )


def _invalid_record(index: int, sample_id: str, token_errors: dict[int, dict]) -> dict:
    origin = token_errors.get(index, {})
    return {"index": index, "id": sample_id, "kind": "invalid_tokens", "stage": "tokenize",
            "message": f"{origin.get('kind', 'unknown')}: {origin.get('message', '')}"}
