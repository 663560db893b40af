"""Nothing a user does by mistake loses data (issue 20): a store of another kind is never
replaced, and a run whose output is its own input is refused before it touches anything."""

import hashlib
import os
from pathlib import Path

import pytest
from featurestores import gaussian_classes, write_feature_store
from imagefiles import write_class_tree

SMALL = ("--size", "32", "--patch", "16", "--no-progress")
TINY = ("--encoder", "vit_tiny_patch16_224", "--encoder-option", "img_size=32",
        "--encoder-option", "depth=1", "--no-progress")


def tree_digest(folder: Path) -> str:
    """Every file's relative path and bytes: equal digests mean an untouched folder."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    from typer.testing import CliRunner

    from mmtok.cli import app

    folder = tmp_path_factory.mktemp("safety")
    write_class_tree(folder / "images", per_class=2)
    made = CliRunner().invoke(app, ["tokenize", str(folder / "images"), "-o",
                                    str(folder / "tokens.zarr"), *SMALL])
    assert made.exit_code == 0, made.output
    features, labels = gaussian_classes(8, 4, 2, 1.0, seed=0)
    write_feature_store(folder / "features.zarr", features, labels, shard_size=4)
    return folder


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
def test_embed_never_replaces_a_token_store(stores, tmp_path, cli, overwrite):
    victim = tmp_path / "victim.zarr"
    import shutil

    shutil.copytree(stores / "tokens.zarr", victim)
    before = tree_digest(victim)
    result = cli("embed", stores / "tokens.zarr", "-o", victim, *TINY, *overwrite)
    assert result.exit_code == 2, result.output
    message = one_line(result.stderr)
    assert "is a token store (made by `mmtok tokenize`)" in message
    assert "never replaced, even with --overwrite" in message
    assert "differs in" not in message
    assert tree_digest(victim) == before


@pytest.mark.parametrize("overwrite", [(), ("--overwrite",)])
def test_tokenize_never_replaces_a_feature_store(stores, tmp_path, cli, overwrite):
    import shutil

    victim = tmp_path / "victim.zarr"
    shutil.copytree(stores / "features.zarr", victim)
    before = tree_digest(victim)
    result = cli("tokenize", stores / "images", "-o", victim, *SMALL, *overwrite)
    assert result.exit_code == 2, result.output
    assert "is a feature store (made by `mmtok embed`)" in one_line(result.stderr)
    assert tree_digest(victim) == before


def test_the_library_refuses_too(stores, tmp_path):
    import shutil

    import mmtok
    from mmtok.errors import StoreError

    victim = tmp_path / "victim.zarr"
    shutil.copytree(stores / "features.zarr", victim)
    with pytest.raises(StoreError, match="is a feature store"):
        mmtok.tokenize(stores / "images", victim, "image", size=32, patch=16, overwrite=True,
                       progress=False)


@pytest.fixture
def own_copy(stores, tmp_path, monkeypatch):
    """A copy of the token store in the working directory, and a symlink to it."""
    import shutil

    shutil.copytree(stores / "tokens.zarr", tmp_path / "v2.zarr")
    shutil.copytree(stores / "images", tmp_path / "images")
    os.symlink(tmp_path / "v2.zarr", tmp_path / "link.zarr")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("spelling", ["v2.zarr", "./v2.zarr", "v2.zarr/", "link.zarr",
                                      "../{name}/v2.zarr"])
def test_embed_into_its_own_input_is_refused_before_touching_it(own_copy, cli, spelling):
    before = tree_digest(own_copy / "v2.zarr")
    output = spelling.format(name=own_copy.name)
    result = cli("embed", "v2.zarr", "-o", output, "--overwrite", *TINY)
    assert result.exit_code == 2, result.output
    assert "is the token store it reads" in one_line(result.stderr)
    assert "Traceback" not in result.output
    assert tree_digest(own_copy / "v2.zarr") == before


def test_an_output_that_holds_the_input_is_refused(own_copy, cli):
    (own_copy / "work").mkdir()
    os.rename(own_copy / "v2.zarr", own_copy / "work" / "v2.zarr")
    result = cli("embed", "work/v2.zarr", "-o", "work", "--overwrite", *TINY)
    assert result.exit_code == 2, result.output
    assert "contains the token store it reads" in one_line(result.stderr)


@pytest.mark.parametrize("spelling", ["images", "./images/", "link"])
def test_tokenize_into_its_own_source_is_refused(own_copy, cli, spelling):
    os.symlink(own_copy / "images", own_copy / "link")
    before = tree_digest(own_copy / "images")
    result = cli("tokenize", "images", "-o", spelling, "--overwrite", *SMALL)
    assert result.exit_code == 2, result.output
    assert "is the source folder it reads" in one_line(result.stderr)
    assert tree_digest(own_copy / "images") == before


def test_tokenize_into_its_own_manifest_is_refused(own_copy, cli):
    manifest = own_copy / "labels.csv"
    manifest.write_text("path,label\nimages/cat/00.png,cat\n")
    result = cli("tokenize", "--manifest", manifest, "-o", "./labels.csv", "--overwrite", *SMALL)
    assert result.exit_code == 2, result.output
    assert "is the manifest it reads" in one_line(result.stderr)
    assert manifest.read_text().startswith("path,label")


@pytest.mark.parametrize("tune", [(), ("--tune", "tokenizer")])
def test_train_head_never_writes_into_a_store_it_reads(stores, cli, tune):
    store = stores / ("tokens.zarr" if tune else "features.zarr")
    before = tree_digest(store)
    result = cli("train-head", store, "-o", store, "--overwrite", "--no-progress", *tune)
    assert result.exit_code == 2, result.output
    assert "is the training store it reads" in one_line(result.stderr)
    assert tree_digest(store) == before
