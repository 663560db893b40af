"""The ``mmtok`` command line. It parses arguments and calls the library; nothing else.

Exit codes: 0 success; 1 validation found problems (``validate``) or an internal error;
2 bad usage or an unusable store; 3 the store is locked by another writer; 4 the store was
made with another config or sample list; 5 ``--strict``/``--max-errors`` exceeded;
6 a worker process died (with --engine ray: shards failed after Ray's retries); 7 the store
cannot be written (read-only or full file system);
8 the run finished but every sample failed (``tokenize``/``embed``: nothing usable was made,
e.g. files of another modality; the summary says which files the modality reads);
130 interrupted (Ctrl-C); 141 stdout was closed early (``mmtok predict ... | head``: the
output stops quietly, as for any Unix filter; 128 + SIGPIPE). A tokenize run that records
some invalid samples still exits 0: the summary (and ``mmtok info``) counts them by kind.
With ``--json``, a command that fails prints one JSON object on stdout too:
``{"status": "error", "error": CLASS, "message": ..., "exit_code": N}`` (``"interrupted"``
for Ctrl-C).
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Iterator, Optional

import typer

from . import __version__
from .errors import MmtokError, UsageError

BROKEN_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell reports for `yes | head`


class _Mmtok(typer.Typer):
    """The app, exiting 141 instead of click's 1 when stdout is closed early
    (``mmtok predict head feats | head``): 1 means an internal error, and this is none.

    Click handles the EPIPE itself (quietly, wrapping stdout so that the exit flush does not
    fail) and exits 1; the wrapper it installs tells that case apart from every other exit 1.
    Not SIGPIPE's default action: that would also kill a run whose worker pipes break."""

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            # by name: typer vendors its own copy of click's PacifyFlushWrapper
            if exc.code == 1 and type(sys.stdout).__name__ == "PacifyFlushWrapper":
                raise SystemExit(BROKEN_PIPE_EXIT) from None
            raise


app = _Mmtok(
    name="mmtok",
    # click's plain formatter: readable at 80 columns (rich's tables wrapped descriptions to
    # ~15 characters, cut long option names and defaults, and re-wrapped the epilogs)
    rich_markup_mode=None,
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
    scale_crop = "scale_crop"
    plain = "plain"


@contextmanager
def _reported(json_output: bool = False) -> Iterator[None]:
    """Turn mmtok's errors and Ctrl-C into a one-line message and the documented exit code;
    with ``--json`` also into one JSON object on stdout, so that scripts parse every outcome."""
    try:
        yield
    except MmtokError as exc:
        typer.echo(f"mmtok: error: {exc}", err=True)
        _json_failure(json_output, "error", str(exc), exc.exit_code, type(exc).__name__)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        message = "interrupted; rerun the same command to resume"
        typer.echo(f"mmtok: {message}", err=True)
        _json_failure(json_output, "interrupted", message, 130, "KeyboardInterrupt")
        raise typer.Exit(130) from None


def _json_failure(json_output: bool, status: str, message: str, code: int, kind: str) -> None:
    if json_output:
        typer.echo(json.dumps({"status": status, "error": kind, "message": message,
                               "exit_code": code}))


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
    _plain_warnings()


def _plain_warnings() -> None:
    """mmtok's own warnings as one line on stderr, not Python's file:line and source echo."""
    import warnings

    from .errors import MmtokWarning

    shown = warnings.showwarning
    if getattr(shown, "mmtok_plain", False):  # already installed (commands run in-process)
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, MmtokWarning):
            typer.echo(f"mmtok: warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    show.mmtok_plain = True  # type: ignore[attr-defined]
    warnings.showwarning = show


def _device_help() -> str:
    from .devices import DEVICE_CHOICES
    from .modalities import batched_modality_names

    return (f"{DEVICE_CHOICES} (default cpu): where the compute-heavy steps run. On CUDA, "
            f"{', '.join(batched_modality_names())} batch a shard's decoded samples through "
            "the Triton kernels (same bytes as on the CPU); the others, and every reader, "
            "stay on the CPU workers.")


def _modality_help() -> str:
    from .modalities import modality_names

    return (f"One of: {', '.join(modality_names())}. `mmtok modalities NAME` shows its "
            "options.")


# In epilogs, a paragraph that starts with a "\b" line is printed as written (click's
# marker): examples and lists are never re-wrapped mid-command.
TOKENIZE_EPILOG = """\b
Examples:
  mmtok tokenize photos/ -o photos.zarr -j 2
  find scans -name '*.png' | sort |
      mmtok tokenize --files-from - -m xray -o scans.zarr
  mmtok tokenize --manifest labels.csv -o t.zarr --json
  mmtok tokenize photos/ -o photos.zarr --dry-run   # print the plan only

\b
Exit codes:
  0 complete (invalid samples are recorded, see the summary)
  1 internal error          2 bad usage
  3 store locked            4 store made with another config or sample list
  5 --strict/--max-errors   6 a worker died (--engine ray: shards failed after
                              Ray's retries, listed)
  7 store not writable      8 every sample failed (check -m)
  130 interrupted (rerun to resume)
  141 stdout closed early (| head)
"""


@app.command(epilog=TOKENIZE_EPILOG)
def tokenize(
    ctx: typer.Context,
    source: Annotated[Optional[list[Path]], typer.Argument(
        help="Folder of raw files (the class is the first sub-folder, ImageFolder layout), "
             "or one or more files (a table's rows are samples: CSV, TSV, JSONL, Parquet; a TUDataset DS_A.txt's graphs; a hyperspectral cube's labelled pixels).",
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
    resize: Annotated[Optional[Resize], typer.Option(help="shorter: centre crop of the shorter side resampled in one step; scale_crop: shorter side to floor(size / crop_pct), then a centre crop (timm's eval transform); plain: stretch.", rich_help_panel="Image options")] = None,
    crop_pct: Annotated[Optional[float], typer.Option(help="Centre-crop fraction of the shorter side (timm's crop_pct; default 1.0).", rich_help_panel="Image options")] = None,
    interpolation: Annotated[Optional[str], typer.Option(help="nearest, bilinear, bicubic or lanczos.", rich_help_panel="Image options")] = None,
    channels: Annotated[Optional[int], typer.Option(help="1 or 3 (preset default).", rich_help_panel="Image options")] = None,
    bit_depth: Annotated[Optional[int], typer.Option(help="8 or 16 bits per stored value (preset default).", rich_help_panel="Image options")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Normalisation means recorded for embed, comma-separated.", rich_help_panel="Image options")] = None,
    std: Annotated[Optional[str], typer.Option(help="Normalisation stds recorded for embed, comma-separated.", rich_help_panel="Image options")] = None,
    max_pixels: Annotated[Optional[int], typer.Option(help="Larger images are recorded as too_large (default 100M).", rich_help_panel="Image options")] = None,
    stats_from_data: Annotated[bool, typer.Option("--stats-from-data", help="First fit the normalisation statistics on the inputs (audio: fbank mean/std) and record them in the config, with where they were fitted. Training data only: tokenize validation and test data with --config-from.")] = False,
    config_from: Annotated[Optional[Path], typer.Option("--config-from", metavar="STORE", help="Tokenize exactly like STORE (a token store, or a feature store's token config): its whole tokenizer config, fitted statistics and modality; e.g. the training store for validation and test data.")] = None,
    label_map: Annotated[Optional[Path], typer.Option("--label-map", metavar="PATH", help="Label map of a multi-sample file (a hyperspectral cube's ground truth: one sample per labelled pixel, 0 = unlabelled). A source option: combine a train map with --stats-from-data and a test map with --config-from.")] = None,
    settings: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Any tokenizer option of the modality, e.g. --set size=256 (repeatable); see `mmtok modalities`.")] = None,
    like_encoder: Annotated[Optional[str], typer.Option("--like-encoder", metavar="NAME", help="Cut tokens as the timm model NAME preprocesses images (size, patch, crop, interpolation, statistics from timm's data config); options given explicitly still win.")] = None,
    jpeg_draft: Annotated[Optional[bool], typer.Option(help="Decode large JPEGs at 1/2-1/8 scale (much faster; pixels differ slightly from a full decode).", rich_help_panel="Image options")] = None,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    ray_num_cpus: RayCpusOpt = None,
    max_retries: MaxRetriesOpt = 3,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the source and print the plan (samples, classes, shards, first ids); read no sample, write nothing.")] = False,
    device: Annotated[str, typer.Option(help=_device_help())] = "cpu",
) -> None:
    """Tokenize raw files into a sharded Zarr v3 token store. Rerun to resume."""
    from .modalities import parse_options
    from .pipeline import tokenize as run_tokenize
    from .sources import open_path_list

    with _reported(json_output):
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
        if dry_run:
            _print_plan(source, output, modality, manifest, root, labels, path_column,
                        label_column, follow_external_symlinks, shard_size, options,
                        json_output)
            return
        summary = run_tokenize(
            source, output, chosen, manifest=manifest,
            root=str(root) if root else None, labels=labels.value, path_column=path_column,
            label_column=label_column, follow_external_symlinks=follow_external_symlinks,
            workers=workers, shard_size=shard_size, overwrite=overwrite, repair=repair,
            strict=strict,
            max_errors=max_errors, progress=progress, stats_from_data=stats_from_data,
            config_from=config_from, label_map=label_map, like_encoder=like_encoder,
            engine=engine.value, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
            max_retries=max_retries, device=device, **options,
        )
    _finish_run(summary, json_output)


def _print_plan(source, output, modality, manifest, root, labels, path_column, label_column,
                follow_external_symlinks, shard_size, options, json_output) -> None:
    from .pipeline import plan

    details = plan(source, output, modality, manifest=manifest,
                   root=str(root) if root else None, labels=labels.value,
                   path_column=path_column, label_column=label_column,
                   follow_external_symlinks=follow_external_symlinks, shard_size=shard_size,
                   **options)
    if json_output:
        typer.echo(json.dumps(details))
        return
    count, classes = details["num_samples"], details["class_names"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    last = count - (details["num_shards"] - 1) * details["shard_size"]
    tail = "" if last == details["shard_size"] else f", the last {last}"
    shards = (f"1 of {count} sample{'' if count == 1 else 's'}" if details["num_shards"] == 1
              else f"{details['num_shards']} of {details['shard_size']} samples{tail}")
    per_shard = min(count, details["shard_size"])
    typer.echo("\n".join([
        f"dry run: nothing read or written; {details['store']} would be "
        f"{'resumed' if details['output'] == 'resume' else 'created'}",
        f"samples    {count} {modality} sample{'' if count == 1 else 's'}"
        + (f" ({details['known_problems']} already known to fail: missing, duplicate, "
           "escaping symlink)" if details["known_problems"] else ""),
        f"classes    {shown or 'none (unlabeled)'}",
        f"shards     {shards} (about {details['bytes_per_sample'] * per_shard / 1e6:.1f} MB "
        "of tokens each)",
        "first ids  " + (", ".join(details["first_ids"]) or "none"),
    ]))


def _check_inputs(tokens: Path | None = None, **files: Path | None) -> None:
    """Fail fast, before any heavy import, on an input store or file that is not there."""
    if tokens is not None and not tokens.exists():
        raise UsageError(f"{tokens} does not exist; pass a token store made by "
                         "`mmtok tokenize`")
    for option, path in files.items():
        if path is not None and not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise UsageError(f"--{option} {path} {what}")


def _finish_run(summary, json_output: bool) -> None:
    """Print a tokenize/embed summary; a run in which every sample failed exits 8 (its hint
    goes to stderr as the error, so the summary line leaves it out)."""
    typer.echo(json.dumps(summary.to_dict()) if json_output
               else summary.line(with_warnings=not summary.nothing_valid))
    if summary.nothing_valid:
        from .errors import NoValidSamples

        typer.echo(f"mmtok: error: {summary.warnings[-1]}", err=True)
        raise typer.Exit(NoValidSamples.exit_code)


class Pool(StrEnum):
    cls = "cls"
    mean = "mean"
    max = "max"
    cls_mean_max = "cls+mean+max"
    none = "none"


EMBED_EPILOG = """\b
Examples:
  mmtok embed photos.zarr -o feats.zarr --encoder vit_base_patch16_224 \\
      --weights vit.safetensors
  mmtok embed clouds.zarr -o feats.zarr --encoder metatransformer-b16 \\
      --weights Meta-Transformer_base_patch16_encoder.pth

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
    statistics: Annotated[str, typer.Option(help="Normalisation statistics of modalities normalised at embed time (image): encoder (the encoder's own: timm's data config, CLIP's for Meta-Transformer), store (those recorded at tokenize time), or given by --stat.")] = "encoder",
    stat: Annotated[Optional[list[str]], typer.Option("--stat", metavar="KEY=VALUE", help="Given statistics, e.g. --stat mean=0.5,0.5,0.5 --stat std=0.5,0.5,0.5 (repeatable; every statistic of the modality).")] = None,
    compile_forward: Annotated[bool, typer.Option("--compile/--no-compile", help="Run the projector + encoder forward through torch.compile (the first batch pays for compiling; on CPU it needs a C compiler). Speed only: not recorded in the config, so a store resumes across the flag.")] = False,
    engine: EngineOpt = EngineName.local,
    ray_address: RayAddressOpt = None,
    ray_num_cpus: RayCpusOpt = None,
    ray_actors: Annotated[Optional[int], typer.Option(help="With --engine ray: N CPU actors instead of one actor per GPU.", rich_help_panel=RAY_PANEL)] = None,
    max_retries: MaxRetriesOpt = 3,
    projector_option: Annotated[Optional[list[str]], typer.Option("--projector-option", metavar="KEY=VALUE", help="Chooses the modality projector's variant, e.g. kind=patch for time series (repeatable; `mmtok modalities NAME` and the modality's page list them). Recorded in the feature store's projector record.")] = None,
) -> None:
    """Token store -> frozen encoder -> feature store. Rerun to resume.

    Runs the token shards through a projector and one frozen encoder, pools the outputs and
    writes a feature store that mirrors the token store sample for sample."""
    with _reported(json_output):
        # before importing torch and timm (seconds): a typo in a path fails at once
        _check_inputs(tokens=tokens, weights=weights, projector=projector)
        from .embedding.pipeline import embed as run_embed

        summary = run_embed(tokens, output, encoder, weights=weights, pretrained=pretrained,
                            projector=projector, pool_how=pool.value, batch_size=batch_size,
                            device=device, precision=precision, seed=seed,
                            encoder_options=_key_values(encoder_option or []),
                            overwrite=overwrite, repair=repair, progress=progress,
                            compile=compile_forward,
                            projector_options=_key_values(projector_option or []) or None,
                            statistics=_statistics_choice(statistics, stat or []),
                            engine=engine.value, ray_address=ray_address,
                            ray_num_cpus=ray_num_cpus, ray_actors=ray_actors,
                            max_retries=max_retries)
    _finish_run(summary, json_output)


def _statistics_choice(statistics: str, stat: list[str]) -> str | dict:
    """``--statistics``/``--stat`` -> embed's ``statistics``: a name, or the given values
    (KEY=VALUE text, typed by the token store's config once embed has opened it)."""
    if not stat:
        return statistics
    if statistics not in ("encoder", "given"):
        raise UsageError(f"--stat gives the statistics; it cannot go with --statistics "
                         f"{statistics}")
    given: dict = {}
    for assignment in stat:
        key, sep, text = assignment.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--stat expects KEY=VALUE, got {assignment!r}")
        given[key.strip()] = text.strip()
    return given


def _export_formats() -> str:
    from .embedding.export import FORMATS

    return ", ".join(FORMATS)


@app.command(help=f"Export a feature store to {_export_formats()}.\n\nWrites features, labels, "
                  "valid flags, ids, class names and a per-token store's token_mask for other "
                  "tools (docs/commands/export.md).")
def export(
    features: Annotated[Path, typer.Argument(help="A complete feature store.")],
    output: Annotated[Path, typer.Argument(help=f"Output file: {_export_formats()}.")],
) -> None:
    from .embedding.export import export_features

    with _reported():
        result = export_features(features, output)
    from .store.summary import counted

    typer.echo(f"wrote {counted(result['num_samples'], 'sample')}, features {tuple(result['shape'])}, "
               f"to {result['output']}")


class HeadKind(StrEnum):
    linear = "linear"
    mlp = "mlp"


class Tune(StrEnum):
    tokenizer = "tokenizer"


class Fusion(StrEnum):
    late = "late"
    tokens = "tokens"


class Missing(StrEnum):
    drop = "drop"
    absent = "absent"


class PairBy(StrEnum):
    stem = "stem"


TRAIN_HEAD_EPILOG = """\b
Examples:
  mmtok train-head feats.zarr -o head/       # linear probe, 20 % validation
  mmtok train-head train.zarr --val val.zarr --test test.zarr -o head/ --json
  mmtok train-head feats.zarr -o mlp/ --head mlp --epochs 50
  mmtok train-head clouds.zarr -o tuned/ --tune tokenizer \\
      --encoder metatransformer-b16 --weights mt.pth
  mmtok embed clouds.zarr -o feats.zarr --encoder metatransformer-b16 \\
      --weights mt.pth --projector tuned/projector.safetensors \\
      --pool cls+mean+max
  mmtok train-head image=img.zarr audio=aud.zarr --pairs pairs.csv \\
      -o fused/                                 # late fusion probe
  mmtok train-head image=img.zarr audio=aud.zarr --pair-by stem \\
      --fusion tokens --distill -o fused/

The probe is multinomial logistic regression (L-BFGS, full batch) with CLIP's sweep of the
L2 strength on the validation split, then a refit on train + val. Writes head.safetensors,
head.json, metrics.json, confusion.png (and learning_curve.png for --head mlp).

--tune tokenizer reads a TOKEN store instead and trains the projector and a linear head
through the frozen encoder (which is checked bit-identical afterwards); it also writes
projector.safetensors for `mmtok embed --projector`.

Several NAME=STORE arguments train a fusion head over paired samples (a --pairs CSV/JSONL
with one id column per NAME, or --pair-by stem) and one unimodal head per store, for
`mmtok predict` with any subset of the modalities.
"""


@app.command("train-head", epilog=TRAIN_HEAD_EPILOG)
def train_head(
    train: Annotated[list[Path], typer.Argument(help="Training feature store (from `mmtok embed`), or several as NAME=STORE (fusion).", show_default=False)],
    output: Annotated[Path, typer.Option("-o", "--output", help="Folder for the head, metrics and plots.")] = ...,
    val: Annotated[Optional[list[Path]], typer.Option(help="Validation feature store (default: a split of TRAIN); fusion: NAME=STORE, repeated.")] = None,
    val_split: Annotated[float, typer.Option(help="Fraction of TRAIN held out for validation when --val is not given (stratified, seeded).")] = 0.2,
    test: Annotated[Optional[list[Path]], typer.Option(help="Test feature store, scored once at the end; fusion: NAME=STORE, repeated.")] = None,
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
    batch_size: Annotated[Optional[int], typer.Option(help="--tune: samples per step (default 32); fusion: default 256.", rich_help_panel="Tokenizer tuning")] = None,
    precision: Annotated[str, typer.Option(help="--tune on CUDA: float32, bfloat16 or float16 autocast.", rich_help_panel="Tokenizer tuning")] = "float32",
    pairs: Annotated[Optional[Path], typer.Option(help="CSV/JSONL: one row per multimodal sample, a column per store NAME holding its sample id, optional label and task columns.", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    pair_by: Annotated[Optional[PairBy], typer.Option(help="stem: pair samples whose ids match without the file extension.", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    missing: Annotated[Missing, typer.Option(help="A sample missing (or invalid) in one store: drop the row (counted), or keep it with that modality absent.", rich_help_panel="Fusion (NAME=STORE ...)")] = Missing.drop,
    fusion: Annotated[Fusion, typer.Option(help="late: pooled features, standardised and concatenated into --head; tokens: a small transformer over per-token features.", rich_help_panel="Fusion (NAME=STORE ...)")] = Fusion.late,
    val_pairs: Annotated[Optional[Path], typer.Option(help="Pairs file of the --val stores.", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    test_pairs: Annotated[Optional[Path], typer.Option(help="Pairs file of the --test stores.", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    task: Annotated[Optional[list[str]], typer.Option(help="A label column of the pairs file to learn (repeatable: one output per task on one trunk; default: label).", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    task_weight: Annotated[Optional[list[str]], typer.Option(metavar="TASK=W", help="Weight of a task's loss (default 1; repeatable).", rich_help_panel="Fusion (NAME=STORE ...)")] = None,
    distill: Annotated[bool, typer.Option("--distill", help="Co-train the unimodal heads with the fusion head's soft labels (arXiv 2311.10170); also trains them alone for comparison.", rich_help_panel="Fusion (NAME=STORE ...)")] = False,
    alpha: Annotated[float, typer.Option(help="--distill: weight of the KL term.", rich_help_panel="Fusion (NAME=STORE ...)")] = 0.5,
    temperature: Annotated[float, typer.Option(help="--distill: softmax temperature T (the KL term is scaled by T^2).", rich_help_panel="Fusion (NAME=STORE ...)")] = 2.0,
    width: Annotated[int, typer.Option(help="--fusion tokens: transformer width.", rich_help_panel="Fusion (NAME=STORE ...)")] = 128,
    depth: Annotated[int, typer.Option(help="--fusion tokens: transformer layers.", rich_help_panel="Fusion (NAME=STORE ...)")] = 2,
    attention_heads: Annotated[int, typer.Option(help="--fusion tokens: attention heads.", rich_help_panel="Fusion (NAME=STORE ...)")] = 4,
    projector_option: Annotated[Optional[list[str]], typer.Option("--projector-option", metavar="KEY=VALUE", help="--tune: the projector variant, as for `mmtok embed` (give the same options to embed with the tuned weights).", rich_help_panel="Tokenizer tuning")] = None,
) -> None:
    """Train a linear probe (or small MLP) on cached features.

    Writes the head, metrics.json and plots to OUTPUT."""
    from .heads.mlp import MlpSettings
    from .heads.pairing import is_named_store
    from .heads.train import train_head as run_train_head

    with _reported(json_output):
        if len(train) > 1 or any(is_named_store(t) for t in train) or pairs or pair_by:
            from .heads.fusion import FusionSettings
            from .heads.fusion_train import train_fusion_head

            settings = FusionSettings(
                fusion=fusion.value, head=head.value, hidden=hidden, lr=lr,
                weight_decay=weight_decay, epochs=epochs or 100, patience=patience,
                batch_size=batch_size or 256, width=width, depth=depth, heads=attention_heads,
                distill=distill, alpha=alpha, temperature=temperature,
                task_weights={k: float(v) for k, v in _key_values(task_weight or []).items()})
            run = train_fusion_head(
                [str(t) for t in train], output, pairs=pairs,
                pair_by=pair_by.value if pair_by else None, missing=missing.value,
                val=[str(v) for v in val] if val else None, val_pairs=val_pairs,
                val_split=val_split, test=[str(t) for t in test] if test else None,
                test_pairs=test_pairs, tasks=task, settings=settings, seed=seed,
                device=device, overwrite=overwrite)
            typer.echo(json.dumps(run.to_json()) if json_output else run.line())
            return
        for option, given in (("TRAIN", train), ("--val", val), ("--test", test)):
            if given and len(given) > 1:
                raise UsageError(f"{option} takes one feature store (several only as NAME=STORE)")
        train, val, test = train[0], val[0] if val else None, test[0] if test else None
        if tune is not None:
            from .heads.tune import TuneSettings, tune_tokenizer

            settings = TuneSettings(epochs=epochs or 20, batch_size=batch_size or 32, lr=lr,
                                    weight_decay=weight_decay)
            run = tune_tokenizer(train, output, encoder=encoder, weights=weights,
                                 pretrained=pretrained,
                                 encoder_options=_key_values(encoder_option or []) or None,
                                 projector=projector, pool_how=pool, val=val,
                                 val_split=val_split, test=test, settings=settings,
                                 device=device, precision=precision, seed=seed,
                                 overwrite=overwrite, progress=progress,
                                 projector_options=_key_values(projector_option or []) or None)
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
    features: Annotated[list[str], typer.Argument(help="A feature store made like the head's training features; for a fusion head, NAME=STORE for any subset of its modalities.", show_default=False)],
    output: Annotated[str, typer.Option("-o", "--output", help="Output file (.csv or .jsonl), or - for stdout.")] = "-",
    output_format: Annotated[Optional[PredictFormat], typer.Option("--format", help="csv or jsonl (default: from the file name; csv on stdout).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    allow_other_features: Annotated[bool, typer.Option("--allow-other-features", help="Apply the head even to features another encoder, projector or pooling made.")] = False,
    pairs: Annotated[Optional[Path], typer.Option(help="Fusion head: the pairs file (CSV/JSONL, a column per store NAME).")] = None,
    pair_by: Annotated[Optional[PairBy], typer.Option(help="Fusion head: stem pairs samples whose ids match without the file extension (the default without --pairs).")] = None,
) -> None:
    """Predict a class for every sample of a feature store.

    One row per sample: index, id, valid, label, predicted, score, probabilities."""
    from .heads.pairing import is_named_store
    from .heads.predict import predict as run_predict

    with _reported():
        named = len(features) > 1 or any(is_named_store(f) for f in features)
        result = run_predict(head, features if named else features[0], output,
                             output_format=output_format.value if output_format else None,
                             device=device, allow_other_features=allow_other_features,
                             pairs=pairs, pair_by=pair_by.value if pair_by else None)
    if output != "-":
        from .store.summary import counted

        answered = result.get("answered_by")
        by = f" ({', '.join(f'{k} {v}' for k, v in answered.items())})" if answered else ""
        typer.echo(f"predicted {result['predicted']} of {counted(result['samples'], 'sample')}"
                   f"{by} -> "
                   f"{result['output']} ({result['format']})", err=True)


@app.command()
def modalities(
    name: Annotated[Optional[str], typer.Argument(
        help="Show this modality in full: options, presets, extensions, the arrays its store "
             "holds, its projector.", show_default=False)] = None,
) -> None:
    """List the modalities and their tokenizer options.

    Every option is shown with its default, as `--set KEY=VALUE`; `mmtok modalities NAME`
    shows one modality in full."""
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
    store: Annotated[Path, typer.Argument(help="A token or feature store.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    errors: Annotated[bool, typer.Option("--errors", help="Also list every invalid sample: index, id, kind, stage and message (in --json: an errors list).")] = False,
    errors_to: Annotated[Optional[Path], typer.Option("--errors-to", metavar="FILE", help="Write every invalid sample's record to FILE (.csv or .jsonl).")] = None,
) -> None:
    """Show what a store holds: config, samples, classes, errors.

    Also the shards, array shapes and size on disk; --errors lists every invalid sample."""
    from .store.inspect import store_info

    with _reported(json_output):
        if errors_to is not None and errors_to.suffix.lower() not in (".csv", ".jsonl"):
            raise UsageError(f"--errors-to {errors_to}: name the file .csv or .jsonl")
        details = store_info(store, errors=errors or errors_to is not None)
        if errors_to is not None:
            _write_error_records(details["errors"], errors_to)
            if not errors:
                details.pop("errors")
    if json_output:
        typer.echo(json.dumps(details, indent=2))
        return
    kinds = ", ".join(f"{k} {v}" for k, v in details["errors_by_kind"].items()) or "none"
    classes = details["class_names"]
    shown = ", ".join(classes[:10]) + (f", ... ({len(classes)} in all)" if len(classes) > 10 else "")
    config = {k: v for k, v in details["config"].items() if k != "modality"}
    lines = [
        f"store      {details['path']} ({details['kind']}, mmtok {details['mmtok_version']})",
        f"modality   {details['modality']}",
        f"statistics {_statistics_line(details)}",
        "config",
        *_config_lines(config, "  "),
        f"samples    {details['num_samples']} ({details['num_valid']} valid, "
        f"{details['num_invalid']} invalid, {details['samples_committed']} committed)",
        f"classes    {shown or 'none (unlabeled)'}",
        f"shards     {details['shards_done']}/{details['shards_total']} done "
        f"({_shard_sizes(details)})" + ("" if details["complete"] else " - INCOMPLETE"),
        f"errors     {kinds}" + (f" (list them: mmtok info {store} --errors)"
                                 if details["num_invalid"] and not errors else ""),
        *([f"counts     " + ", ".join(f"{k} {v}" for k, v in details["counts"].items())]
          if details.get("counts") else []),
        "arrays     " + ", ".join(f"{k} {tuple(v)}" for k, v in details["arrays"].items()),
        f"size       {details['bytes_on_disk'] / 1e6:.1f} MB on disk",
    ]
    if errors:
        lines += ["invalid samples (index, id, kind, stage: message)",
                  *(f"  {e['index']}\t{e['id']}\t{e['kind']}\t{e['stage']}: {e['message']}"
                    for e in details["errors"])]
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


def _config_lines(config: dict, indent: str) -> list[str]:
    """A config as YAML-like ``key: value`` lines, nested dicts indented under their key."""
    lines = []
    for key, value in config.items():
        if isinstance(value, dict) and value:
            lines += [f"{indent}{key}:", *_config_lines(value, indent + "  ")]
        else:
            if isinstance(value, (list, tuple)):
                value = ", ".join(str(v) for v in value) or "[]"
            lines.append(f"{indent}{key}: {value}")
    return lines


def _shard_sizes(details: dict) -> str:
    size, last = details["shard_size"], details["last_shard_size"]
    if details["shards_total"] == 1:
        return f"one shard of {last} sample{'' if last == 1 else 's'}"
    tail = "" if last == size else f", the last {last}"
    return f"{size} samples each{tail}"


def _write_error_records(records: list[dict], path: Path) -> None:
    """Every invalid sample's record as CSV (a header row) or JSONL (one object a line)."""
    import csv

    from .store.inspect import ERROR_FIELDS

    with open(path, "w", newline="", encoding="utf-8") as stream:
        if path.suffix.lower() == ".jsonl":
            stream.writelines(json.dumps(record) + "\n" for record in records)
        else:
            writer = csv.DictWriter(stream, fieldnames=ERROR_FIELDS)
            writer.writeheader()
            writer.writerows(records)


@app.command()
def validate(
    store: Annotated[Path, typer.Argument(help="A token or feature store.")],
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Check a store's markers, shapes, counts and checksums.

    Exit code 1 on any problem; a checksum failure suggests --repair."""
    from .store.inspect import validate_store

    with _reported(json_output):
        report = validate_store(store)
    if json_output:
        typer.echo(json.dumps({"path": report.path, "ok": report.ok, "problems": report.problems,
                               "warnings": report.warnings,
                               "shards_checked": report.shards_checked,
                               "advice": report.advice}))
    else:
        for warning in report.warnings:
            typer.echo(f"warning: {warning}", err=True)
        for problem in report.problems:
            typer.echo(f"problem: {problem}")
        for advice in report.advice:
            typer.echo(f"hint: {advice}", err=True)
        verdict = "ok" if report.ok else f"{len(report.problems)} problem(s)"
        typer.echo(f"{report.path}: {verdict} ({report.shards_checked} shards checked)")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def demo(
    workdir: Annotated[Path, typer.Argument(help="Folder for the generated data and stores.")] = Path("demo"),
    workers: Annotated[int, typer.Option("-j", "--workers", help="Worker processes.")] = 2,
) -> None:
    """Run tokenize, embed and a probe on generated demo data.

    The main job end to end, for every modality, on small generated data."""
    from .demo import run_demo
    from .modalities import get_modality

    with _reported():
        results = run_demo(workdir, workers=workers)
    failed = False
    for modality, result in results.items():
        info, problems = result["info"], result["problems"]
        typer.echo(result["tokenize"].line())
        typer.echo(result["embed"].line())
        typer.echo(result["head"].line())
        inputs = "; ".join(f"{name} {tuple(info['arrays'][name])}"
                           for name in get_modality(modality).inputs)
        typer.echo(f"  {modality}: classes {', '.join(info['class_names'])}; {inputs}; features "
                   f"{tuple(result['features']['arrays']['features'])}; "
                   f"validate: {'ok' if not problems else problems}")
        failed |= bool(problems)
    typer.echo("test accuracy (linear probe on frozen random-weight tiny encoders): " + ", ".join(
        f"{modality} {result['head'].test['top1']:.3f}" for modality, result in results.items()))
    if failed:
        raise typer.Exit(1)
