"""Every command that reads a store refuses one of the other kind, or one left unfinished,
and names the command that makes (or finishes) the store it needs."""

import pytest
import zarr
from featurestores import gaussian_classes, write_feature_store
from imagefiles import write_class_tree

SMALL = ("--size", "32", "--patch", "16", "--no-progress")


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from typer.testing import CliRunner

    from mmtok.cli import app

    folder = tmp_path_factory.mktemp("kinds")
    write_class_tree(folder / "images", per_class=2)
    tokenized = CliRunner().invoke(app, ["tokenize", str(folder / "images"), "-o",
                                         str(folder / "tokens.zarr"), *SMALL])
    assert tokenized.exit_code == 0, tokenized.output
    features, labels = gaussian_classes(8, 4, 2, 1.0, seed=0)
    write_feature_store(folder / "features.zarr", features, labels, shard_size=4)
    return folder


@pytest.mark.parametrize(("command", "store", "needs"), [
    (("embed", "{store}", "-o", "{out}"), "features.zarr",
     "embed reads token stores made by `mmtok tokenize`"),
    (("export", "{store}", "{out}.npz"), "tokens.zarr",
     "export reads feature stores made by `mmtok embed`"),
    (("train-head", "{store}", "-o", "{out}"), "tokens.zarr",
     "train-head reads feature stores made by `mmtok embed` (or use --tune tokenizer"),
    (("train-head", "{store}", "-o", "{out}", "--tune", "tokenizer"), "features.zarr",
     "--tune tokenizer reads token stores made by `mmtok tokenize`"),
])
def test_a_store_of_the_other_kind_is_refused(stores, tmp_path, cli, command, store, needs):
    args = [a.format(store=stores / store, out=tmp_path / "out") for a in command]
    result = cli(*args, "--no-progress") if command[0] != "export" else cli(*args)
    assert result.exit_code == 2, result.output
    assert needs in " ".join(result.stderr.split())


def test_an_unfinished_feature_store_is_refused_with_the_command_that_finishes_it(
        stores, tmp_path, cli):
    import shutil

    unfinished = tmp_path / "unfinished.zarr"
    shutil.copytree(stores / "features.zarr", unfinished)
    zarr.open_array(unfinished / "commits", mode="r+")[1] = ""
    result = cli("export", unfinished, tmp_path / "f.npz")
    assert result.exit_code == 2, result.output
    assert "is not complete; rerun `mmtok embed` to finish it" in " ".join(
        result.stderr.split())
    assert not list(tmp_path.glob("f.*"))
