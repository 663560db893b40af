"""A tokenizer that kills its own process on files starting with CRASH, standing in for a
crashing native decoder (CRASH-SIGKILL: killed by SIGKILL instead)."""

import os
import signal

from mmtok.modalities.base import ModalitySpec, get_modality, register_modality
from mmtok.modalities.image import EXTENSIONS, ImageConfig, ImageTokenizer


class CrashingTokenizer(ImageTokenizer):
    def tokenize_file(self, path, part=None):
        with open(path, "rb") as handle:
            head = handle.read(13)
            if head == b"CRASH-SIGKILL":  # as the out-of-memory killer would
                os.kill(os.getpid(), signal.SIGKILL)
            if head.startswith(b"CRASH"):
                os._exit(9)
        return super().tokenize_file(path, part)


register_modality(ModalitySpec(
    name="crash-test", config_class=ImageConfig, tokenizer=CrashingTokenizer,
    extensions=EXTENSIONS, help="a test tokenizer that crashes on CRASH files",
    projector=get_modality("image").projector, defaults={"size": 32}))
