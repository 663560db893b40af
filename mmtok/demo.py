"""The end-to-end demo run by ``make demo``, over every modality that declares demo data.

Each modality's registry entry names a generator of its demo data (``demo.py`` in its
package: shapes, solids, tones...; generated, not shipped; same seed, same files) and the tiny
random-weight encoder it is embedded with, so this module never names a modality.
"""

from __future__ import annotations

import importlib
import os
import warnings
from pathlib import Path
from typing import Callable

from .modalities import DemoSpec, registered_modalities


def demo_modalities() -> dict[str, DemoSpec]:
    """``{modality: DemoSpec}`` for every registered modality with demo data."""
    return {spec.name: spec.demo for spec in registered_modalities() if spec.demo is not None}


def demo_data_maker(demo: DemoSpec) -> Callable[..., Path]:
    module_name, _, function = demo.make_data.partition(":")
    return getattr(importlib.import_module(module_name), function)


TEST_SEED, TEST_PER_CLASS = 1, 10


def run_demo(workdir: str | os.PathLike, workers: int = 2, progress: bool = True) -> dict:
    """Generate each modality's demo data (a training set and a test set drawn with another
    seed), tokenize both (the training set fitting its tokenizer's statistics, the test set
    reusing the training store's config: ``config_from``), embed both with a tiny encoder, train a linear probe on the
    training features, score it on the test features, and validate every store.

    Returns ``{modality: {"tokenize", "embed": RunSummary, "head": HeadRun, "info",
    "features": dict, "problems": list[str]}}``; ``problems`` gathers the stores'
    validation problems.
    """
    from .embedding.encoders import RandomWeightsWarning
    from .errors import PreprocessingMismatchWarning

    # Every modality's encoder has random weights: say so once here, not once per embed.
    warnings.warn("the demo embeds with tiny encoders of random weights: its features and "
                  "test accuracies show that the pipeline works, not what a pretrained "
                  "encoder reaches", RandomWeightsWarning, stacklevel=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=RandomWeightsWarning)
        # A random encoder was trained on nothing, so "prepare as the encoder did" is moot.
        warnings.filterwarnings("ignore", category=PreprocessingMismatchWarning)
        return _run_all(Path(workdir), workers, progress)


def _run_all(workdir: Path, workers: int, progress: bool) -> dict:
    """:func:`run_demo`'s work, modality by modality."""
    from .heads.train import train_head
    from .store.inspect import store_info, validate_store

    results = {}
    for modality, demo in demo_modalities().items():
        make_data = demo_data_maker(demo)
        train = _tokenize_and_embed(make_data(workdir / "data" / modality), workdir, modality,
                                    workers, progress)
        test_data = make_data(workdir / "data" / f"{modality}-test", per_class=TEST_PER_CLASS,
                              seed=TEST_SEED)
        test = _tokenize_and_embed(test_data, workdir, f"{modality}-test", workers, progress,
                                   modality, config_from=train["tokens"])
        head = train_head(train["features"], workdir / f"{modality}.head", test=test["features"],
                          overwrite=True, progress=progress)
        stores = (train["tokens"], train["features"], test["tokens"], test["features"])
        results[modality] = {"tokenize": train["tokenize"], "embed": train["embed"],
                             "head": head, "info": store_info(train["tokens"]),
                             "features": store_info(train["features"]),
                             "problems": [p for store in stores
                                          for p in validate_store(store).problems]}
    return results


def _tokenize_and_embed(data: Path, workdir: Path, name: str, workers: int, progress: bool,
                        modality: str | None = None, config_from: Path | None = None) -> dict:
    """Tokenize and embed ``data``: a training set fits the statistics its tokenizer fits
    (audio: fbank mean/std), a test set reuses the training store's config (``config_from``)
    so that nothing about it is fitted on test data."""
    from .embedding.pipeline import embed
    from .modalities import create_tokenizer
    from .modalities.base import fits_statistics
    from .pipeline import tokenize

    modality = modality or name
    tokens, features = workdir / f"{name}.zarr", workdir / f"{name}.features.zarr"
    if config_from is None:
        fit = fits_statistics(create_tokenizer(modality))
        summary = tokenize(data, tokens, modality, workers=workers, shard_size=16,
                           progress=progress, stats_from_data=fit)
    else:
        summary = tokenize(data, tokens, workers=workers, progress=progress,
                           config_from=config_from)
    demo = demo_modalities()[modality]
    encoder_options = dict(demo.encoder_options) if demo.encoder_options else None
    embedded = embed(tokens, features, demo.encoder, encoder_options=encoder_options,
                     pool_how="cls+mean+max", progress=progress)
    return {"tokens": tokens, "features": features, "tokenize": summary, "embed": embedded}
