"""The ``points`` modality: ``readers.py`` and ``mesh.py`` read clouds and meshes,
``tokenizer.py`` groups them (FPS centres + KNN groups), ``projector.py`` is Point-MAE's
mini-PointNet, ``demo.py`` samples the demo's solids."""

from ..base import DemoSpec, ModalitySpec, register_modality
from .tokenizer import EXTENSIONS, PRESETS, PointsConfig, PointsTokenizer

__all__ = ["PointsConfig", "PointsTokenizer"]

register_modality(ModalitySpec(
    name="points", config_class=PointsConfig, tokenizer=PointsTokenizer, extensions=EXTENSIONS,
    help="point clouds and meshes: FPS centres + KNN groups (Point-MAE grouping)",
    projector="mmtok.modalities.points.projector:build", inputs=("tokens", "centers"),
    presets=PRESETS, tiny_options={"num_points": 64, "num_groups": 8, "group_size": 8},
    demo=DemoSpec("mmtok.modalities.points.demo:make_demo_points",
                  "metatransformer:depth=2,width=192,heads=3"),
    docs="docs/modalities/points.md",
))
