"""The ``mmtok`` command line. It parses arguments and calls the library; nothing else.

Exit codes: 0 success; 1 validation found problems (``validate``) or an internal error;
2 bad usage or an unusable store; 3 the store is locked by another writer; 4 the store was
made with another config or sample list; 5 ``--strict``/``--max-errors`` exceeded;
6 a worker process died (with --engine ray: shards failed after Ray's retries); 7 the store
cannot be written (read-only or full file system);
130 interrupted (Ctrl-C). A tokenize run that records invalid
samples still exits 0: the summary (and ``mmtok info``) counts them by kind.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from . import __version__
from .errors import MmtokError, UsageError

app = typer.Typer(
    name="mmtok",
    help="Raw multimodal data -> tokens -> frozen-transformer features -> small heads: "
         "tokenize files into sharded Zarr token stores, embed them through one frozen "
         "encoder, train probes and heads on the cached features. Every step resumes.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)


class Labels(StrEnum):
    folder = "folder"
    none = "none"
    manifest = "manifest"


class EngineName(StrEnum):
    local = "local"
    ray = "ray"


RAY_PANEL = "Engine options"
EngineOpt = Annotated[EngineName, typer.Option(help="local: this machine (-j processes); ray: a Ray cluster (needs `pip install 'mmtok[ray]'`, see docs/engines.md).", rich_help_panel=RAY_PANEL)]
RayAddressOpt = Annotated[Optional[str], typer.Option(help="With --engine ray: the cluster to join (default: $RAY_ADDRESS, else a local instance started for the run).", rich_help_panel=RAY_PANEL)]
RayCpusOpt = Annotated[Optional[float], typer.Option(help="With --engine ray: CPUs each task (tokenize) or actor (embed) asks for (default 1).", rich_help_panel=RAY_PANEL)]
MaxRetriesOpt = Annotated[int, typer.Option(help="With --engine ray: retries of a shard whose worker died (OOM, SIGKILL, a lost node).", rich_help_panel=RAY_PANEL)]


class Resize(StrEnum):
    shorter = "shorter"
    plain = "plain"


@contextmanager
def _reported() -> Iterator[None]:
    """Turn mmtok's errors and Ctrl-C into a one-line message and the documented exit code."""
    try:
        yield
    except MmtokError as exc:
        typer.echo(f"mmtok: error: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.echo("mmtok: interrupted; rerun the same command to resume", err=True)
        raise typer.Exit(130) from None


def _floats(text: Optional[str], name: str) -> Optional[tuple[float, ...]]:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"{name} takes comma-separated numbers, e.g. 0.5,0.5,0.5") from None


def _key_values(assignments: list[str]) -> dict:
    """["img_size=384", "depth=2"] -> {"img_size": 384, "depth": 2} (ints, floats or text)."""
    options: dict = {}
    for assignment in assignments:
        key, sep, text = assignment.partition("=")
        if not sep or not key:
            raise UsageError(f"expected KEY=VALUE, got {assignment!r}")
        for convert in (int, float, str):
            try:
                options[key.strip()] = convert(text)
                break
            except ValueError:
                continue
    return options


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mmtok {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """mmtok turns raw files into tokens, features and heads for frozen-transformer learning
    (the Meta-Transformer recipe: modality tokenizer -> frozen shared encoder -> small head)."""


def _modality_help() -> str:
    from .modalities import modality_names

    return (f"One of: {', '.join(modality_names())}. `mmtok modalities NAME` shows its "
            "options.")


TOKENIZE_EPILOG = """Examples:

  mmtok tokenize photos/ -o photos.zarr -j 2

  find scans -name '*.png' | sort | mmtok tokenize --files-from - -m xray -o scans.zarr

  mmtok tokenize --manifest labels.csv -o t.zarr --json

Exit codes: 0 complete (invalid samples are recorded, see the summary), 1 internal error,
2 bad usage, 3 store locked by another writer, 4 store made with another config or sample
list (use --overwrite), 5 --strict/--max-errors exceeded, 6 a worker died (--engine ray: shards
failed after retries, listed), 7 the store cannot
be written (full or read-only file system), 130 interrupted (rerun to resume).
"""


@app.command(epilog=TOKENIZE_EPILOG)
def tokenize(
    ctx: typer.Context,
    source: Annotated[Optional[list[Path]], typer.Argument(
        help="Folder of raw files (the class is the first sub-folder, ImageFolder layout), "
             "or one or more files (a table's rows are samples: CSV, TSV, JSONL, Parquet).",
        show_default=False)] = None,
    output: Annotated[Path, typer.Option("-o", "--output", help="Token store to create or resume (a .zarr folder).")] = ...,
    modality: Annotated[str, typer.Option("-m", "--modality", help=_modality_help())] = "image",
    files_from: Annotated[Optional[str], typer.Option(
        help="Read the file list from FILE, or '-' for stdin (newline- or NUL-separated).")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="CSV/TSV/JSONL manifest with path and label columns.")] = None,
    root: Annotated[Optional[Path], typer.Option(help="With --files-from: ids and folder labels are relative to ROOT (default: the common folder).")] = None,
    labels: Annotated[Labels, typer.Option(help="folder: the first sub-folder is the class; none: unlabeled; manifest: the manifest's label column (the default with --manifest).")] = Labels.folder,
    path_column: Annotated[str, typer.Option(help="Manifest column holding the file path.")] = "path",
    label_column: Annotated[Optional[str], typer.Option(help="Column holding the label: a manifest's (default 'label'), or a table's whose rows are samples (default: 'label' if present, else unlabeled).")] = None,
    follow_external_symlinks: Annotated[bool, typer.Option("--follow-external-symlinks", help="Read symlinks that point outside the root (refused and recorded otherwise).")] = False,
    workers: Annotated[int, typer.Option("-j", "--workers", help="Worker processes, each writing whole shards.")] = 1,
    shard_size: Annotated[Optional[int], typer.Option(help="Samples per shard (default: about 64 MB of tokens).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a store made with another config instead of refusing.")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="Check every committed shard against its checksums (reads the whole store) and rewrite the damaged ones.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad sample.")] = False,
    max_errors: Annotated[Optional[int], typer.Option(help="Stop once more than N samples have failed.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    size: Annotated[Optional[int], typer.Option(help="Output side in pixels (default 224).", rich_help_panel="Image options")] = None,
    patch: Annotated[Optional[int], typer.Option(help="Patch side in pixels (default 16).", rich_help_panel="Image options")] = None,
    resize: Annotated[Optional[Resize], typer.Option(help="shorter: shorter side + centre crop; plain: stretch.", rich_help_panel="Image options")] = None,
    crop_pct: Annotated[Optional[float], typer.Option(help="Centre-crop fraction of the shorter side (timm's crop_pct; default 1.0).", rich_help_panel="Image options")] = None,
    interpolation: Annotated[Optional[str], typer.Option(help="nearest, bilinear, bicubic or lanczos.", rich_help_panel="Image options")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 or 3 (preset default).", rich_help_panel="Image options")] = None,
    bit_depth: Annotated[Optional[int], typer.Option(help="8 or 16 bits per stored value (preset default).", rich_help_panel="Image options")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Normalisation means recorded for embed, comma-separated.", rich_help_panel="Image options")] = None,
    std: Annotated[Optional[str], typer.Option(help="Normalisation stds recorded for embed, comma-separated.", rich_help_panel="Image options")] = None,
    max_pixels: Annotated[Optional[int], typer.Option(help="Larger images are recorded as too_large (default 100M).", rich_help_panel="Image options")] = None,
    stats_from_data: Annotated[bool, typer.Option("--stats-from-data", help="First fit the normalisation statistics on the inputs (audio: fbank mean/std) and record them in the config, with where they were fitted. Training data only: tokenize validation and test data with --config-from.")] = False,
    config_from: Annotated[Optional[Path], typer.Option("--config-from", metavar="STORE", help="Tokenize exactly like STORE (a token store, or a feature store's token config): its whole tokenizer config, fitted statistics and modality; e.g. the training store for validation and test data.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any tokenizer option of the modality, e.g. --set size=256 (repeatable); see `mmtok modalities`.")] = None,
    jpeg_draft: Annotated[Optional[bool], typer.Option(help="Decode large JPEGs at 1/2-1/8 scale (much faster; pixels differ slightly from a full decode).", rich_help_panel="Image options")] = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    ray_num_cpus: RayCpusOpt = None,
    max_retries: MaxRetriesOpt = 3,
) -> None:
    """Tokenize raw files into a sharded Zarr v3 token store. Rerun to resume."""
    from .modalities import parse_options
    from .pipeline import tokenize as run_tokenize
    from .sources import open_path_list

    with _reported():
        named = dict(
            size=size, patch=patch, resize=resize.value if resize else None, crop_pct=crop_pct,
            interpolation=interpolation, channels=channels, bit_depth=bit_depth,
            mean=_floats(mean, "--mean"), std=_floats(std, "--std"), max_pixels=max_pixels,
            jpeg_draft=jpeg_draft,
        )
        named = {k: v for k, v in named.items() if v is not None}
        # -m is passed on only when given, so that --config-from can refuse one that
        # disagrees with its store; --set values are typed by the modality they apply to.
        # (by name: typer ships its own copy of click, whose ParameterSource is another enum)
        given = getattr(ctx.get_parameter_source("modality"), "name", "DEFAULT") != "DEFAULT"
        chosen = modality if given else None
        if config_from is not None:
            from .fitted import read_reused_config

            modality = read_reused_config(config_from).modality
        options = {**named, **parse_options(modality, settings or [])}
        if files_from is not None:
            if source:
                raise UsageError("give a folder or --files-from, not both")
            source = open_path_list(files_from)
        elif source is not None:
            if not source:
                source = None
            elif len(source) == 1 and not source[0].is_file():
                source = source[0]  # a folder (or a missing path, refused as such)
            else:
                missing = [str(p) for p in source if not p.is_file()]
                if missing:
                    raise UsageError(f"{', '.join(missing)}: no such file; give one folder, "
                                     "or one or more files")
                source = [str(p) for p in source]
        summary = run_tokenize(
            source, output, chosen, manifest=manifest,
            root=str(root) if root else None, labels=labels.value, path_column=path_column,
            label_column=label_column, follow_external_symlinks=follow_external_symlinks,
            workers=workers, shard_size=shard_size, overwrite=overwrite, repair=repair,
            strict=strict,
            max_errors=max_errors, progress=progress, stats_from_data=stats_from_data,
            config_from=config_from, engine=engine.value, ray_address=ray_address,
            ray_num_cpus=ray_num_cpus, max_retries=max_retries, **options,
        )
    typer.echo(json.dumps(summary.to_dict()) if json_output else summary.line())


class Pool(StrEnum):
    cls = "cls"
    mean = "mean"
    max = "max"
    cls_mean_max = "cls+mean+max"
    none = "none"


EMBED_EPILOG = """Examples:

  mmtok embed photos.zarr -o feats.zarr --encoder vit_base_patch16_224 --weights vit.safetensors

  mmtok embed clouds.zarr -o feats.zarr --encoder metatransformer-b16 --weights Meta-Transformer_base_patch16_encoder.pth

Rerun the same command to resume. Exit codes as for tokenize.
"""


@app.command(epilog=EMBED_EPILOG)
def embed(
    tokens: Annotated[Path, typer.Argument(help="A complete token store (from `mmtok tokenize`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Feature store to create or resume.")] = ...,
    encoder: Annotated[str, typer.Option(help="A timm ViT name, or metatransformer-b16 / metatransformer-l14.")] = "vit_base_patch16_224",
    weights: Annotated[Optional[Path], typer.Option(help="Encoder weights: .safetensors, or a torch checkpoint (loaded with weights_only).")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="Download the timm model's pretrained weights from the hub.")] = False,
    projector: Annotated[Optional[Path], typer.Option(help="Trained projector weights (.safetensors) for non-image modalities.")] = None,
    pool: Annotated[Pool, typer.Option(help="Pooling of the encoder outputs; none keeps per-token features.")] = Pool.cls,
    batch_size: Annotated[Optional[int], typer.Option(help="Samples per encoder batch (default: auto; on CPU the largest batch whose activations stay under 32 MiB, on CUDA 128).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    precision: Annotated[str, typer.Option(help="float32, bfloat16 or float16 (autocast).")] = "float32",
    seed: Annotated[int, typer.Option(help="Seed for projectors without pretrained weights.")] = 0,
    encoder_option: Annotated[Optional[list[str]], typer.Option("--encoder-option", metavar="KEY=VALUE", help="Passed to timm.create_model, e.g. img_size=384 (repeatable; ints, floats or text).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a feature store made with another config.")] = False,
    repair: Annotated[bool, typer.Option("--repair", help="Check every committed shard against its checksums and rewrite the damaged ones.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar on stderr.")] = True,
    compile_forward: Annotated[bool, typer.Option("--compile/--no-compile", help="Run the projector + encoder forward through torch.compile (the first batch pays for compiling; on CPU it needs a C compiler). Speed only: not recorded in the config, so a store resumes across the flag.")] = False,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    ray_num_cpus: RayCpusOpt = None,
    ray_actors: Annotated[Optional[int], typer.Option(help="With --engine ray: N CPU actors instead of one actor per GPU.", rich_help_panel=RAY_PANEL)] = None,
    max_retries: MaxRetriesOpt = 3,
) -> None:
    """Run token shards through one frozen encoder into a feature store. Rerun to resume."""
    from .embedding.pipeline import embed as run_embed

    with _reported():
        summary = run_embed(tokens, output, encoder, weights=weights, pretrained=pretrained,
                            projector=projector, pool_how=pool.value, batch_size=batch_size,
                            device=device, precision=precision, seed=seed,
                            encoder_options=_key_values(encoder_option or []),
                            overwrite=overwrite, repair=repair, progress=progress,
                            compile=compile_forward, engine=engine.value,
                            ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                            ray_actors=ray_actors, max_retries=max_retries)
    typer.echo(json.dumps(summary.to_dict()) if json_output else summary.line())


@app.command()
def export(
    features: Annotated[Path, typer.Argument(help="A complete feature store.")],
    output: Annotated[Path, typer.Argument(help="Output file: .h5/.hdf5, .npz, .npy or .parquet.")],
) -> None:
    """Write a feature store's features, labels, valid flags and ids for other tools."""
    from .embedding.export import export_features

    with _reported():
        result = export_features(features, output)
    typer.echo(f"wrote {result['num_samples']} samples, features {tuple(result['shape'])}, "
               f"to {result['output']}")


class HeadKind(StrEnum):
    linear = "linear"
    mlp = "mlp"


class Tune(StrEnum):
    tokenizer = "tokenizer"


TRAIN_HEAD_EPILOG = """Examples:

  mmtok train-head feats.zarr -o head/                       # linear probe, 20 % validation
  mmtok train-head train.zarr --val val.zarr --test test.zarr -o head/ --json
  mmtok train-head feats.zarr -o mlp/ --head mlp --epochs 50
  mmtok train-head clouds.zarr -o tuned/ --tune tokenizer --encoder metatransformer-b16 --weights mt.pth
  mmtok embed clouds.zarr -o feats.zarr --encoder metatransformer-b16 --weights mt.pth --projector tuned/projector.safetensors --pool cls+mean+max

The probe is multinomial logistic regression (L-BFGS, full batch) with CLIP's sweep of the
L2 strength on the validation split, then a refit on train + val. Writes head.safetensors,
head.json, metrics.json, confusion.png (and learning_curve.png for --head mlp).

--tune tokenizer reads a TOKEN store instead and trains the projector and a linear head
through the frozen encoder (which is checked bit-identical afterwards); it also writes
projector.safetensors for `mmtok embed --projector`.
"""


@app.command("train-head", epilog=TRAIN_HEAD_EPILOG)
def train_head(
    train: Annotated[Path, typer.Argument(help="Training feature store (from `mmtok embed`).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the head, metrics and plots.")] = ...,
    val: Annotated[Optional[Path], typer.Option(help="Validation feature store (default: a split of TRAIN).")] = None,
    val_split: Annotated[float, typer.Option(help="Fraction of TRAIN held out for validation when --val is not given (stratified, seeded).")] = 0.2,
    test: Annotated[Optional[Path], typer.Option(help="Test feature store, scored once at the end.")] = None,
    head: Annotated[HeadKind, typer.Option(help="linear (logistic regression probe) or mlp (one hidden layer).")] = HeadKind.linear,
    standardize: Annotated[bool, typer.Option("--standardize", help="Standardise each feature with the training mean and std (kept in the head).")] = False,
    l2: Annotated[Optional[float], typer.Option(help="Fixed L2 strength for the probe (skips the sweep). sklearn's C = 1 / (l2 * n).")] = None,
    refit: Annotated[bool, typer.Option(help="Refit the probe on train + val at the chosen strength.")] = True,
    epochs: Annotated[Optional[int], typer.Option(help="MLP: most epochs, early stopping on validation (default 100); --tune: epochs (default 20).")] = None,
    hidden: Annotated[int, typer.Option(help="MLP: hidden width.")] = 512,
    lr: Annotated[float, typer.Option(help="MLP and --tune: peak learning rate (AdamW, warm-up + cosine).")] = 1e-3,
    weight_decay: Annotated[float, typer.Option(help="MLP and --tune: AdamW weight decay.")] = 0.05,
    patience: Annotated[int, typer.Option(help="MLP: epochs without validation gain before stopping.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed for the split and the MLP.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a head already in OUTPUT.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print the run as one JSON object.")] = False,
    progress: Annotated[bool, typer.Option(help="Show progress on stderr.")] = True,
    tune: Annotated[Optional[Tune], typer.Option(help="tokenizer: TRAIN is a token store; train its projector and a linear head through the frozen encoder.", rich_help_panel="Tokenizer tuning")] = None,
    encoder: Annotated[str, typer.Option(help="--tune: the frozen encoder (as for `mmtok embed`).", rich_help_panel="Tokenizer tuning")] = "vit_base_patch16_224",
    weights: Annotated[Optional[Path], typer.Option(help="--tune: encoder weights file.", rich_help_panel="Tokenizer tuning")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="--tune: the timm model's hub weights.", rich_help_panel="Tokenizer tuning")] = False,
    encoder_option: Annotated[Optional[list[str]], typer.Option("--encoder-option", metavar="KEY=VALUE", help="--tune: passed to timm.create_model (repeatable).", rich_help_panel="Tokenizer tuning")] = None,
    projector: Annotated[Optional[Path], typer.Option(help="--tune: start from these projector weights instead of the seed's.", rich_help_panel="Tokenizer tuning")] = None,
    pool: Annotated[str, typer.Option(help="--tune: pooling before the head: cls, mean, max or cls+mean+max.", rich_help_panel="Tokenizer tuning")] = "cls+mean+max",
    batch_size: Annotated[int, typer.Option(help="--tune: samples per step.", rich_help_panel="Tokenizer tuning")] = 32,
    precision: Annotated[str, typer.Option(help="--tune on CUDA: float32, bfloat16 or float16 autocast.", rich_help_panel="Tokenizer tuning")] = "float32",
) -> None:
    """Train a linear probe (or small MLP) on cached features; write metrics and plots."""
    from .heads.mlp import MlpSettings
    from .heads.train import train_head as run_train_head

    with _reported():
        if tune is not None:
            from .heads.tune import TuneSettings, tune_tokenizer

            settings = TuneSettings(epochs=epochs or 20, batch_size=batch_size, lr=lr,
                                    weight_decay=weight_decay)
            run = tune_tokenizer(train, output, encoder=encoder, weights=weights,
                                 pretrained=pretrained,
                                 encoder_options=_key_values(encoder_option or []) or None,
                                 projector=projector, pool_how=pool, val=val,
                                 val_split=val_split, test=test, settings=settings,
                                 device=device, precision=precision, seed=seed,
                                 overwrite=overwrite, progress=progress)
        else:
            mlp = MlpSettings(hidden=hidden, lr=lr, weight_decay=weight_decay,
                              epochs=epochs or 100, patience=patience)
            run = run_train_head(train, output, val=val, val_split=val_split, test=test,
                                 head=head.value, standardize=standardize, l2=l2, refit=refit,
                                 mlp=mlp, seed=seed, device=device, overwrite=overwrite,
                                 progress=progress)
    typer.echo(json.dumps(run.to_json()) if json_output else run.line())


class PredictFormat(StrEnum):
    csv = "csv"
    jsonl = "jsonl"


@app.command()
def predict(
    head: Annotated[Path, typer.Argument(help="A head folder written by `mmtok train-head`.")],
    features: Annotated[Path, typer.Argument(help="A feature store made like the head's training features.")],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file (.csv or .jsonl), or - for stdout.")] = "-",
    output_format: Annotated[Optional[PredictFormat], typer.Option("--format", help="csv or jsonl (default: from the file name; csv on stdout).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    allow_other_features: Annotated[bool, typer.Option("--allow-other-features", help="Apply the head even to features another encoder, projector or pooling made.")] = False,
) -> None:
    """Predict a class for every sample: index, id, valid, label, predicted, probabilities."""
    from .heads.predict import predict as run_predict

    with _reported():
        result = run_predict(head, features, output,
                             output_format=output_format.value if output_format else None,
                             device=device, allow_other_features=allow_other_features)
    if output != "-":
        typer.echo(f"predicted {result['predicted']} of {result['samples']} samples -> "
                   f"{result['output']} ({result['format']})", err=True)


@app.command()
def modalities(
    name: Annotated[Optional[str], typer.Argument(
        help="Show this modality in full: options, presets, extensions, the arrays its store "
             "holds, its projector.", show_default=False)] = None,
) -> None:
    """List the modalities and their tokenizer options (defaults shown)."""
    from .modalities import registered_modalities
    from .modalities.describe import describe_modality, modality_options

    with _reported():
        if name is not None:
            typer.echo(describe_modality(name))
            return
    for spec in registered_modalities():
        typer.echo(f"{spec.name}: {spec.help}")
        typer.echo(f"  extensions: {' '.join(spec.extensions)}")
        for option, value in modality_options(spec.name):
            typer.echo(f"  --set {option}={value}")


@app.command()
def info(
    store: Annotated[Path, typer.Argument(help="A token store.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """What a store holds: modality, config, samples, classes, shards, errors, size."""
    from .store.inspect import store_info

    with _reported():
        details = store_info(store)
    if json_output:
        typer.echo(json.dumps(details, indent=2))
        return
    errors = ", ".join(f"{k} {v}" for k, v in details["errors_by_kind"].items()) or "none"
    classes = details["class_names"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    config = " ".join(f"{k}={v}" for k, v in details["config"].items() if k != "modality")
    lines = [
        f"store      {details['path']} ({details['kind']}, mmtok {details['mmtok_version']})",
        f"modality   {details['modality']}",
        f"config     {config}",
        f"statistics {_statistics_line(details)}",
        f"samples    {details['num_samples']} ({details['num_valid']} valid, "
        f"{details['num_invalid']} invalid, {details['samples_committed']} committed)",
        f"classes    {shown or 'none (unlabeled)'}",
        f"shards     {details['shards_done']}/{details['shards_total']} done "
        f"({details['shard_size']} samples each)" + ("" if details["complete"] else " - INCOMPLETE"),
        f"errors     {errors}",
        "arrays     " + ", ".join(f"{k} {tuple(v)}" for k, v in details["arrays"].items()),
        f"size       {details['bytes_on_disk'] / 1e6:.1f} MB on disk",
    ]
    typer.echo("\n".join(lines))


def _statistics_line(details: dict) -> str:
    """Where the config's fitted statistics came from, as `info` prints it."""
    fitted, reused = details.get("fitted"), details.get("config_from")
    if fitted is None:
        line = "none fitted (the config's values were given or defaults)"
    else:
        source = fitted["source"]
        where = source.get("root") or source.get("manifest") or source.get("kind", "?")
        line = (f"{', '.join(fitted['fields'])} fitted on {where} ({fitted['num_samples']} "
                f"samples, source hash {fitted['source_hash'][:12]})")
    if reused is not None:
        line += f"; config reused from {reused['path']} (--config-from)"
    return line


@app.command()
def validate(
    store: Annotated[Path, typer.Argument(help="A token store.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check that markers, shapes, counts and checksums agree. Exit 1 on any problem."""
    from .store.inspect import validate_store

    with _reported():
        report = validate_store(store)
    if json_output:
        typer.echo(json.dumps({"path": report.path, "ok": report.ok, "problems": report.problems,
                               "warnings": report.warnings,
                               "shards_checked": report.shards_checked}))
    else:
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        typer.echo(f"{report.path}: {verdict} ({report.shards_checked} shards checked)")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Argument(help="Folder for the generated data and stores.")] = Path("demo"),
    workers: Annotated[int, typer.Option("-j", "--workers", help="Worker processes.")] = 2,
) -> None:
    """Run the main job end to end on generated demo data: tokenize, embed, train a probe."""
    from .demo import run_demo

    with _reported():
        results = run_demo(workdir, workers=workers)
    failed = False
    for modality, result in results.items():
        info, problems = result["info"], result["problems"]
        typer.echo(result["tokenize"].line())
        typer.echo(result["embed"].line())
        typer.echo(result["head"].line())
        typer.echo(f"  {modality}: classes {', '.join(info['class_names'])}; tokens "
                   f"{tuple(info['arrays']['tokens'])}; features "
                   f"{tuple(result['features']['arrays']['features'])}; "
                   f"validate: {'ok' if not problems else problems}")
        failed |= bool(problems)
    typer.echo("test accuracy (linear probe on frozen random-weight tiny encoders): " + ", ".join(
        f"{modality} {result['head'].test['top1']:.3f}" for modality, result in results.items()))
    if failed:
        raise typer.Exit(1)
