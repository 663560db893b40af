"""One package per modality; each registers itself when imported. Adding a modality is one
new package and one line here."""

from . import image  # noqa: F401  (registers image, xray, infrared, depth)
from . import points  # noqa: F401  (registers points)
from . import audio  # noqa: F401  (registers audio)
from . import text  # noqa: F401  (registers text)
from . import tabular  # noqa: F401  (registers tabular)
from . import video  # noqa: F401  (registers video)
from . import timeseries  # noqa: F401  (registers timeseries, imu)
from . import graph  # noqa: F401  (registers graph)
from . import hyperspectral  # noqa: F401  (registers hyperspectral)
from .base import (
    DemoSpec,
    ModalitySpec,
    Tokenizer,
    batched_modality_names,
    create_tokenizer,
    get_modality,
    make_config,
    modality_names,
    parse_options,
    register_modality,
    registered_modalities,
)

__all__ = ["DemoSpec", "ModalitySpec", "Tokenizer", "batched_modality_names", "create_tokenizer", "get_modality",
           "make_config", "modality_names", "parse_options", "register_modality",
           "registered_modalities"]
