"""The ``text`` modality: ``tokenizer.py`` reads ``.txt`` files and table rows (through the
shared :mod:`mmtok.modalities.rowfiles`) and encodes them in batches; ``clip_bpe.py`` is
CLIP's BPE in Rust with open_clip's cleaning; ``projector.py`` embeds the ids (token table,
learned positions, cls token, padding masked); ``demo.py`` writes a small labelled corpus."""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import EXTENSIONS, TextConfig, TextTokenizer

__all__ = ["EXTENSIONS", "TextConfig", "TextTokenizer"]

register_modality(ModalitySpec(
    name="text", config_class=TextConfig, tokenizer=TextTokenizer, extensions=EXTENSIONS,
    help="text (.txt files, or a CSV/TSV/JSONL/Parquet column, one sample a row) -> CLIP BPE "
         "ids (open_clip-identical, 77 tokens) or any local tokenizer.json",
    projector="mmtok.modalities.text.projector:build", inputs=("tokens", "length"),
    tiny_options={"context_length": 16},
    demo=DemoSpec("mmtok.modalities.text.demo:make_demo_text",
                  "metatransformer:depth=2,width=192,heads=3"),
    docs="docs/modalities/text.md",
))
