"""The ``hyperspectral`` modality: ``readers.py`` reads cubes (NPY, ENVI, MAT v5/v7.3, TIFF)
and label maps, ``tokenizer.py`` makes SpectralFormer band tokens of labelled pixels with
per-band scaling fitted on training pixels only, ``projector.py`` embeds them."""

from ..base import ModalitySpec, register_modality
from .tokenizer import CUBE_EXTENSIONS, HyperspectralConfig, HyperspectralTokenizer

__all__ = ["HyperspectralConfig", "HyperspectralTokenizer"]

register_modality(ModalitySpec(
    name="hyperspectral", config_class=HyperspectralConfig, tokenizer=HyperspectralTokenizer,
    extensions=CUBE_EXTENSIONS,
    help="hyperspectral cubes (NPY, ENVI, MAT, TIFF) + --label-map: one sample per labelled "
         "pixel, SpectralFormer band tokens (patch x patch x band_group values per band)",
    projector="mmtok.modalities.hyperspectral.projector:build",
    inputs=("tokens",),
    tiny_options={"bands": 12, "patch": 3, "band_group": 3},
    docs="docs/modalities/hyperspectral.md",
))
