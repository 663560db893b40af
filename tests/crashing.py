"""A tokenizer that kills its own process on files starting with CRASH, standing in for a
crashing native decoder (CRASH-SIGKILL: killed by SIGKILL instead)."""

import os
import signal

from mmtok.modalities.base import register_modality
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


register_modality("crash-test", ImageConfig, CrashingTokenizer, EXTENSIONS, {"size": 32})
