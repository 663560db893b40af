"""mmtok: raw multimodal data -> tokens -> frozen-transformer features.

Python API (the CLI calls exactly these):

    import mmtok
    # in a script, under `if __name__ == "__main__":` (workers are spawned and re-import it)
    summary = mmtok.tokenize("data/", "tokens.zarr", modality="image", workers=2)
    store = mmtok.open_store("tokens.zarr")   # a torch Dataset of dicts
    valid = mmtok.open_store("tokens.zarr", valid_only=True, transform=fn)  # docs/reading.md
    mmtok.embed("tokens.zarr", "feats.zarr", "vit_base_patch16_224", weights="vit.safetensors")
    mmtok.export_features("feats.zarr", "feats.h5")
    run = mmtok.train_head("feats.zarr", "head/", test="test-feats.zarr")
    run = mmtok.train_fusion_head({"image": "img.zarr", "audio": "aud.zarr"}, "fused/",
                                  pairs="pairs.csv")
    mmtok.predict("head/", "feats.zarr", "predictions.csv")
    mmtok.store_info("tokens.zarr"); mmtok.validate_store("tokens.zarr")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

__all__ = ["ShardSampler", "__version__", "embed", "export_features", "open_store", "predict",
           "store_info", "tokenize", "train_fusion_head", "train_head", "tune_tokenizer",
           "validate_store"]

if TYPE_CHECKING:
    from .embedding.export import export_features
    from .embedding.pipeline import embed
    from .heads.predict import predict
    from .heads.fusion_train import train_fusion_head
    from .heads.train import train_head
    from .heads.tune import tune_tokenizer
    from .pipeline import tokenize
    from .store.inspect import store_info, validate_store
    from .store.reader import ShardSampler, open_store

_LAZY = {
    "tokenize": ".pipeline",
    "embed": ".embedding.pipeline",
    "export_features": ".embedding.export",
    "open_store": ".store.reader",
    "ShardSampler": ".store.reader",
    "train_head": ".heads.train",
    "train_fusion_head": ".heads.fusion_train",
    "tune_tokenizer": ".heads.tune",
    "predict": ".heads.predict",
    "store_info": ".store.inspect",
    "validate_store": ".store.inspect",
}


def __getattr__(name: str) -> Any:
    # Lazy so that `mmtok tokenize` never pays for importing torch (only open_store needs it).
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'mmtok' has no attribute {name!r}")
