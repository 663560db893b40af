"""The README's main job: `mmtok demo` generates, tokenizes, embeds, trains a probe on and
validates every modality."""

import json
import re

import pytest

from mmtok.demo import TEST_PER_CLASS, demo_data_maker, demo_modalities
from mmtok.store.writer import read_attrs

DEMO_MODALITIES = demo_modalities()


def test_demo_runs_end_to_end(tmp_path, cli):
    result = cli("demo", tmp_path, "-j", "1")
    assert result.exit_code == 0, result.output
    classes = {m: len(read_attrs(tmp_path / f"{m}.zarr")["class_names"]) for m in DEMO_MODALITIES}
    for modality, count in classes.items():
        assert count >= 2
        n = 20 * count  # the demo's per_class
        assert f"complete: {tmp_path / modality}.zarr: {n} samples, {n} valid" in result.stdout
        assert (f"complete: {tmp_path / modality}.features.zarr: {n} samples, {n} valid"
                in result.stdout)
    assert result.stdout.count("validate: ok") == len(DEMO_MODALITIES)
    # the demo says once that its encoders have random weights, not once per embed
    assert result.output.count("random weights") == 1
    assert "mmtok: warning: the demo embeds with tiny encoders of random weights" in result.stderr
    assert result.stderr.count("mmtok: warning:") == 1  # (nor a resize advice per image store)
    accuracy_line = result.stdout.strip().splitlines()[-1]
    shown = dict(re.findall(r"(\w+) (\d\.\d{3})", accuracy_line))
    assert set(shown) == set(DEMO_MODALITIES)
    for modality, accuracy in shown.items():
        metrics = json.loads((tmp_path / f"{modality}.head" / "metrics.json").read_text())
        assert metrics["samples"]["test"] == TEST_PER_CLASS * classes[modality]  # drawn apart
        assert float(accuracy) == round(metrics["test"]["top1"], 3)
        assert metrics["test"]["top1"] > 1 / classes[modality]  # better than chance
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
    assert files  # one file per sample, or one table holding them all
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)
