"""A tokenizer that kills its own process on files starting with CRASH, standing in for a
crashing native decoder."""

import os

from mmtok.modalities.base import ModalitySpec, get_modality, register_modality
from mmtok.modalities.image import EXTENSIONS, ImageConfig, ImageTokenizer


class CrashingTokenizer(ImageTokenizer):
    def tokenize_file(self, path, part=None):
        with open(path, "rb") as handle:
            if handle.read(5) == b"CRASH":
                os._exit(9)
        return super().tokenize_file(path, part)


register_modality(ModalitySpec(
    name="crash-test", config_class=ImageConfig, tokenizer=CrashingTokenizer,
    extensions=EXTENSIONS, help="a test tokenizer that crashes on CRASH files",
    projector=get_modality("image").projector, defaults={"size": 32}))
