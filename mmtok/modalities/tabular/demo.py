"""Demo data for tabular: one CSV of customers (numeric, categorical and boolean columns,
a few missing cells) whose ``label`` column depends on income and plan. Same seed, same
file."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np


def make_demo_tabular(folder: str | os.PathLike, per_class: int = 20, seed: int = 0) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    counts = {"churn": 0, "stay": 0}
    while min(counts.values()) < per_class:
        income = rng.normal(50, 15)
        plan = rng.choice(["basic", "plus", "pro"])
        score = (income - 50) / 15 + {"basic": -1.0, "plus": 0.0, "pro": 1.0}[plan]
        label = "stay" if score + rng.normal(0, 0.3) > 0 else "churn"
        if counts[label] >= per_class:
            continue
        counts[label] += 1
        rows.append([f"{income:.2f}" if rng.random() > 0.05 else "", plan,
                     int(rng.integers(18, 70)), bool(rng.random() > 0.5), label])
    with open(folder / "customers.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["income", "plan", "age", "newsletter", "label"])
        writer.writerows(rows)
    return folder
