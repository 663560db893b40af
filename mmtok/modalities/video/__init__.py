"""The ``video`` modality: ``reader.py`` decodes containers (PyAV) and frame folders, only the
frames the sampling needs; ``tokenizer.py`` samples as VideoMAE's evaluation, resizes as the
image modality and cuts 2x16x16 tubelets (``mmtok.kernels.tubelets``); ``projector.py`` is
the encoder's 2-D patch embedding inflated over time, with a temporal position embedding."""

from ..base import ModalitySpec, register_modality
from .tokenizer import (
    EXTENSIONS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    PRESETS,
    VideoConfig,
    VideoTokenizer,
    dense_indices,
    segment_indices,
)

__all__ = ["EXTENSIONS", "IMAGENET_MEAN", "IMAGENET_STD", "VideoConfig", "VideoTokenizer",
           "dense_indices", "segment_indices"]

register_modality(ModalitySpec(
    name="video", config_class=VideoConfig, tokenizer=VideoTokenizer, extensions=EXTENSIONS,
    help="video (MP4/MOV/WebM/MKV/AVI/GIF or frame folders -> VideoMAE sampling of 16 frames "
         "-> 2x16x16 tubelets)",
    projector="mmtok.modalities.video.projector:build", inputs=("tokens",),
    presets=PRESETS,
    tiny_options={"num_frames": 4, "rate": 2, "size": 32, "patch": 16},
    docs="docs/modalities/video.md",
))
