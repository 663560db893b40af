"""One module per modality; importing this package registers them all."""

from . import image  # noqa: F401  (registers image, xray, infrared, depth)
from . import audio  # noqa: F401  (registers audio)
from . import points  # noqa: F401  (registers points)
from .base import (
    Tokenizer,
    create_tokenizer,
    get_modality,
    make_config,
    modality_names,
    parse_options,
    register_modality,
)

__all__ = ["Tokenizer", "create_tokenizer", "get_modality", "make_config", "modality_names",
           "parse_options", "register_modality"]
