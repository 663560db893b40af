"""The ``tabular`` modality: ``schema.py`` fits and applies the column schema (kinds,
vocabularies, quantiles), ``tokenizer.py`` reads table rows through the shared
:mod:`mmtok.modalities.rowfiles` and turns each into one token per column, ``projector.py``
is FT-Transformer's feature tokenizer; ``demo.py`` writes a small labelled table."""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import EXTENSIONS, TabularConfig, TabularTokenizer

__all__ = ["EXTENSIONS", "TabularConfig", "TabularTokenizer"]

register_modality(ModalitySpec(
    name="tabular", config_class=TabularConfig, tokenizer=TabularTokenizer,
    extensions=EXTENSIONS,
    help="tables (CSV/TSV/JSONL/Parquet rows) -> one token per column: schema fitted with "
         "--stats-from-data (kinds, vocabularies, quantiles), reused with --config-from",
    projector="mmtok.modalities.tabular.projector:build",
    inputs=("numeric", "categorical", "missing"),
    tiny_options={"n_quantiles": 16},
    demo=DemoSpec("mmtok.modalities.tabular.demo:make_demo_tabular",
                  "metatransformer:depth=2,width=192,heads=3"),
    docs="docs/modalities/tabular.md",
))
