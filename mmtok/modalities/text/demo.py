"""Demo data for text: short sentences about two topics (weather, food) as .txt files in
class folders (scikit-learn's load_files layout). Same seed, same files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

WORDS = {
    "weather": ("rain", "sunny", "cloud", "storm", "wind", "snow", "forecast", "cold"),
    "food": ("bread", "cheese", "pasta", "soup", "apple", "dinner", "recipe", "spicy"),
}
FILLER = ("the", "a", "today", "very", "and", "is", "we", "saw", "some", "quite")


def make_demo_text(folder: str | os.PathLike, per_class: int = 20, seed: int = 0) -> Path:
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for topic, words in WORDS.items():
        (folder / topic).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            n = int(rng.integers(4, 12))
            pool = np.array(words + FILLER)
            picked = rng.choice(pool, size=n)
            picked[int(rng.integers(n))] = rng.choice(words)  # at least one topic word
            (folder / topic / f"{i:03d}.txt").write_text(" ".join(picked).capitalize() + ".\n")
    return folder
