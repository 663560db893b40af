"""Conformance of text (CLIP BPE, 16 tokens), from .txt files and CSV rows."""

from __future__ import annotations

import csv
from pathlib import Path

from .base import Malformed, TokenizerConformance

TOPICS = (("rain", "storm", "cloud", "snow"), ("bread", "cheese", "soup", "pasta"))


def sentence(label: int, index: int) -> str:
    words = TOPICS[label]
    return f"the {words[index % 4]} and the {words[(index + 1) % 4]} today"


class TestText(TokenizerConformance):
    modality = "text"
    options = {"context_length": 16, "max_chars": 2000}
    extension = ".txt"
    noise_kind = "not_text"
    holds_floats = False
    # the same texts padded to 24 and 32 tokens: more masked positions, equal features
    padding_variants = ({"context_length": 24}, {"context_length": 32})

    def write_sample(self, folder: Path, stem: str, label: int, index: int) -> Path:
        if index % 3 == 2:  # a CSV whose two rows are two samples
            path = folder / f"{stem}.csv"
            with open(path, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["text"])
                writer.writerow([sentence(label, index)])
                writer.writerow([sentence(label, index + 1) + ",\nwith a newline"])
            return path
        path = folder / f"{stem}.txt"
        path.write_text(sentence(label, index) + "\n", encoding="utf-8")
        return path

    def sample_ids(self, name: str) -> list[str]:
        return [f"{name}#0", f"{name}#1"] if name.endswith(".csv") else [name]

    def malformed_inputs(self) -> dict[str, Malformed]:
        return {
            # cut inside a multi-byte character
            "cut.txt": Malformed(lambda p: p.write_bytes("café".encode()[:-1]),
                                 "encoding_error", "truncated"),
            "big.txt": Malformed(lambda p: p.write_bytes(b"word " * 2000), "too_large",
                                 "absurd_size"),
            "latin1.txt": Malformed(lambda p: p.write_bytes("caf\xe9".encode("latin-1")),
                                    "encoding_error", "encoding"),
            "blank.txt": Malformed(lambda p: p.write_bytes(b"  \n\n"), None, "empty_text"),
        }
