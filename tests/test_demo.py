"""The README's main job: `mmtok demo` generates, tokenizes, embeds, trains a probe on and
validates every modality."""

import json
import re

import pytest

from mmtok.demo import demo_data_maker, demo_modalities
from mmtok.store.writer import read_attrs

DEMO_MODALITIES = demo_modalities()


def test_demo_runs_end_to_end(tmp_path, cli):
    result = cli("demo", tmp_path, "-j", "1")
    assert result.exit_code == 0, result.output
    for modality in DEMO_MODALITIES:
        assert f"complete: {tmp_path / modality}.zarr: 60 samples, 60 valid" in result.stdout
        assert (f"complete: {tmp_path / modality}.features.zarr: 60 samples, 60 valid"
                in result.stdout)
    assert result.stdout.count("validate: ok") == len(DEMO_MODALITIES)
    accuracy_line = result.stdout.strip().splitlines()[-1]
    shown = dict(re.findall(r"(\w+) (\d\.\d{3})", accuracy_line))
    assert set(shown) == set(DEMO_MODALITIES)
    for modality, accuracy in shown.items():
        metrics = json.loads((tmp_path / f"{modality}.head" / "metrics.json").read_text())
        assert metrics["samples"]["test"] == 30  # the separately drawn test set
        assert float(accuracy) == round(metrics["test"]["top1"], 3)
        assert metrics["test"]["top1"] > 1 / 3  # better than chance on three classes
    fitted = []
    for modality in DEMO_MODALITIES:  # test sets are tokenized with the train config
        train, test = (read_attrs(tmp_path / f"{name}.zarr")
                       for name in (modality, f"{modality}-test"))
        assert (test["config"], test["config_hash"]) == (train["config"], train["config_hash"])
        assert test["config_from"]["path"] == str(tmp_path / f"{modality}.zarr")
        assert test.get("fitted") == train.get("fitted")
        fitted += [modality] if "fitted" in train else []
    assert "audio" in fitted  # fbank mean/std fitted on the training set only


@pytest.mark.parametrize("modality", sorted(DEMO_MODALITIES))
def test_demo_data_is_reproducible(tmp_path, modality):
    make = demo_data_maker(DEMO_MODALITIES[modality])
    first = make(tmp_path / "a", per_class=2)
    second = make(tmp_path / "b", per_class=2)
    files = sorted(p.relative_to(first) for p in first.rglob("*.*"))
    assert len(files) == 6  # three classes of two
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
