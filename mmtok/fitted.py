"""Fitted statistics: fit on the training data once, record where, reuse unchanged.

Some tokenizers need statistics from data (audio: fbank mean and std; later tabular
vocabularies and quantiles, time-series and hyperspectral scalers). ``tokenize
--stats-from-data`` is the one way to fit them: the tokenizer's ``statistics_from`` returns
the fitted config fields, their values go into the config (they decide the tokens, so they
are hashed), and where they came from goes into the store's attrs::

    attrs["fitted"] = {"fields": ["mean", "std"], "source_hash": "<sample-list hash>",
                       "source": {...}, "num_samples": N}
    attrs["config_from"] = {"path": "/abs/train.zarr", "kind": "tokens", ...}  # --config-from

``tokenize --config-from TRAIN.zarr`` builds the tokenizer from TRAIN's recorded config (a
token store's, or the token config a feature store records) and copies TRAIN's ``fitted``
record, so a test store says that its statistics came from TRAIN's source.

The provenance stays out of the hashed config on purpose: the config hash says whose bytes
are comparable, and a test store tokenized exactly like train must hash like train
(``train-head`` refuses feature stores whose token config hashes differ), while the two
stores' own source hashes necessarily differ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError
from .modalities import get_modality, make_config
from .modalities.base import config_to_dict
from .sources import SampleList
from .store.layout import FITTED, config_hash, config_hash_intact
from .store.writer import read_attrs

FITTED_KEY = FITTED
CONFIG_FROM_KEY = "config_from"


@dataclass(frozen=True)
class ReusedConfig:
    """The tokenizer config an existing store records, as ``--config-from`` reuses it."""

    path: str  # absolute
    kind: str  # the kind of store it was read from: "tokens" or "features"
    modality: str
    config: dict  # exactly as recorded (JSON: tuples are lists)
    config_hash: str
    shard_size: int
    fitted: dict | None

    def record(self) -> dict:
        """What the new store's attrs say about where its config came from."""
        return {"path": self.path, "kind": self.kind, "config_hash": self.config_hash}


def read_reused_config(path: str | os.PathLike) -> ReusedConfig:
    """The token config recorded in a token store, or in a feature store's attrs."""
    where = f"--config-from {path}"
    if not Path(path).exists():
        raise UsageError(f"{where}: no such store; give the token (or feature) store "
                         "whose config to reuse, e.g. the training set's")
    attrs = read_attrs(path)
    if attrs is None:
        raise UsageError(f"{where}: not an mmtok store (no mmtok attrs in zarr.json)")
    kind, modality = attrs.get("kind"), attrs.get("modality")
    if kind == "tokens":
        if not config_hash_intact(attrs):
            raise UsageError(f"{where}: its config does not hash to its config_hash "
                             "(zarr.json was edited or damaged); it cannot be trusted as a "
                             "config to reuse")
        config, hashed = attrs["config"], attrs["config_hash"]
    elif kind == "features":
        config = attrs.get("config", {}).get("tokens_config")
        hashed = attrs.get("config", {}).get("tokens_config_hash")
        if config is None or config_hash("tokens", modality, config,
                                         attrs.get("shard_size")) != hashed:
            raise UsageError(f"{where}: this feature store's recorded token config is "
                             "missing or does not hash to its tokens_config_hash; use the "
                             "token store it was embedded from")
    else:
        raise UsageError(f"{where}: a {kind!r} store records no tokenizer config")
    get_modality(modality)  # an unknown modality is refused with the list of known ones
    return ReusedConfig(os.path.abspath(path), kind, modality, config, hashed,
                        attrs["shard_size"], attrs.get(FITTED_KEY))


def reused_options(reused: ReusedConfig, modality: str | None,
                   options: Mapping[str, Any]) -> dict[str, Any]:
    """Config fields that rebuild ``reused``'s config exactly.

    Refuses a ``modality`` other than the store's and any option whose value differs from
    the recorded one (every config field decides the tokens); equal values are harmless.
    """
    where = f"--config-from {reused.path}"
    options = {k: v for k, v in options.items() if v is not None}  # None means "default"
    if modality is not None and modality != reused.modality:
        raise UsageError(f"{where} holds a config of modality {reused.modality}, but -m "
                         f"{modality} was given; drop -m (the modality comes from the store)")
    fields = {k: tuple(v) if isinstance(v, list) else v
              for k, v in reused.config.items() if k != "modality"}
    rebuilt = config_to_dict(make_config(reused.modality, **fields))
    if rebuilt != reused.config:
        changed = sorted(k for k in set(rebuilt) | set(reused.config)
                         if rebuilt.get(k) != reused.config.get(k))
        raise UsageError(f"{where}: this mmtok cannot rebuild the recorded config exactly "
                         f"(differs in: {', '.join(changed)}); tokenize with the mmtok "
                         f"version that made it ({reused.path})")
    if options:
        merged = config_to_dict(make_config(reused.modality, **{**fields, **options}))
        conflicts = sorted(k for k in options if merged.get(k) != reused.config.get(k))
        if conflicts:
            shown = ", ".join(f"{k}={merged.get(k)!r} (the store has {reused.config.get(k)!r})"
                              for k in conflicts)
            raise UsageError(f"{where} fixes every tokenizer option, and these given options "
                             f"change the tokens: {shown}; drop them to tokenize exactly like "
                             "that store, or drop --config-from to tokenize with other options")
    return fields


def fitted_record(fields: Mapping[str, Any], samples: SampleList) -> dict:
    """Where ``--stats-from-data`` fitted ``fields``: the sample list and its hash."""
    return {"fields": sorted(fields), "source_hash": samples.fingerprint(),
            "source": samples.description, "num_samples": len(samples)}


def provenance_attrs(fitted: dict | None, reused: ReusedConfig | None) -> dict:
    """Extra store attrs (outside the hashed config); empty for a plain run, so a store
    made without fitting or reuse has exactly the attrs it always had."""
    attrs: dict[str, Any] = {}
    if fitted is not None:
        attrs[FITTED_KEY] = fitted
    if reused is not None:
        attrs[CONFIG_FROM_KEY] = reused.record()
    return attrs
