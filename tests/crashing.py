"""A tokenizer that kills its own process on files starting with CRASH, standing in for a
crashing native decoder."""

import os

from mmtok.modalities.base import register_modality
from mmtok.modalities.image import EXTENSIONS, ImageConfig, ImageTokenizer


class CrashingTokenizer(ImageTokenizer):
    def tokenize_file(self, path, part=None):
        with open(path, "rb") as handle:
            if handle.read(5) == b"CRASH":
                os._exit(9)
        return super().tokenize_file(path, part)


register_modality("crash-test", ImageConfig, CrashingTokenizer, EXTENSIONS, {"size": 32})
