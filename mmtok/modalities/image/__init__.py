"""The image family: ``image``, ``xray``, ``infrared`` and ``depth``.

``tokenizer.py`` reads (Pillow) and patchifies; ``projector.py`` is the timm ViT's own patch
embedding; ``demo.py`` draws the demo's shapes. The four names share one config and one
tokenizer and differ in their defaults (channels, bit depth, statistics, interpolation).
"""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import CLIP_MEAN, CLIP_STD, EXTENSIONS, PRESETS, ImageConfig, ImageTokenizer

__all__ = ["CLIP_MEAN", "CLIP_STD", "EXTENSIONS", "ImageConfig", "ImageTokenizer"]

_DEMO = DemoSpec("mmtok.modalities.image.demo:make_demo_images", "vit_tiny_patch16_224",
                 {"depth": 2})

for _name, _defaults in PRESETS.items():
    register_modality(ModalitySpec(
        name=_name, config_class=ImageConfig, tokenizer=ImageTokenizer, extensions=EXTENSIONS,
        help=f"image family ({_defaults.get('channels', 3)} channel(s), "
             f"{_defaults.get('bit_depth', 8)}-bit): resize, 16x16 patches as timm's PatchEmbed",
        projector="mmtok.modalities.image.projector:build", inputs=("tokens",),
        defaults=_defaults, tiny_options={"size": 32, "patch": 16},
        demo=_DEMO if _name == "image" else None, docs="docs/modalities/image.md",
        statistics=("mean", "std"),
        like_encoder="mmtok.modalities.image.encoder_config:like_encoder",
    ))
