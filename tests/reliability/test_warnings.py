"""Warnings a user needs (issue 20): random encoder weights, checkpoints resized to fit, a
run in which every sample failed, and damage that only --repair (or validate) can see."""

import json
import shutil

import pytest
import timm
import torch
from imagefiles import write_class_tree
from safetensors.torch import save_file

SMALL = ("--size", "32", "--patch", "16", "--no-progress", "--shard-size", "4")
TINY = ("--encoder", "vit_tiny_patch16_224", "--encoder-option", "img_size=32",
        "--encoder-option", "depth=1", "--no-progress")


def one_line(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def tokens(tmp_path_factory):
    from typer.testing import CliRunner

    from mmtok.cli import app

    folder = tmp_path_factory.mktemp("warnings")
    write_class_tree(folder / "data", per_class=4, size=(32, 32))
    made = CliRunner().invoke(app, ["tokenize", str(folder / "data"), "-o",
                                    str(folder / "t.zarr"), *SMALL])
    assert made.exit_code == 0, made.output
    return folder


RANDOM_WEIGHTS = "mmtok: warning: the encoder vit_tiny_patch16_224 has random weights"


def test_random_encoder_weights_are_said_once_on_stderr(tokens, tmp_path, cli):
    """One warnings.warn, printed once by the CLI: not again in the summary line (each test
    makes one embed: Python shows a warning once per place and message in a process)."""
    result = cli("embed", tokens / "t.zarr", "-o", tmp_path / "f.zarr", *TINY)
    assert result.exit_code == 0, result.output
    assert result.stderr.count(RANDOM_WEIGHTS) == 1
    assert result.output.count("random weights") == 1  # stdout and stderr together
    assert result.stdout.startswith("complete:")


def test_random_encoder_weights_are_a_python_warning_not_a_summary_entry(tokens, tmp_path):
    from mmtok.embedding.encoders import RandomWeightsWarning
    from mmtok.embedding.pipeline import embed
    from mmtok.errors import MmtokWarning

    with pytest.warns(RandomWeightsWarning, match="has random weights") as caught:
        summary = embed(tokens / "t.zarr", tmp_path / "f.zarr", "vit_tiny_patch16_224",
                        encoder_options={"img_size": 32, "depth": 1}, progress=False)
    assert sum(issubclass(w.category, RandomWeightsWarning) for w in caught) == 1
    assert issubclass(RandomWeightsWarning, MmtokWarning)
    assert summary.warnings == [] and "random weights" not in summary.line()


def test_weights_from_a_file_give_no_warning(tokens, tmp_path, cli):
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=32, depth=1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    result = cli("embed", tokens / "t.zarr", "-o", tmp_path / "f.zarr", *TINY, "--weights",
                 tmp_path / "w.safetensors", "--json")
    assert result.exit_code == 0, result.output
    assert "random weights" not in result.stderr  # (a resize warning may still appear)
    assert json.loads(result.stdout)["warnings"] == []


@pytest.fixture(scope="module")
def patch32_weights(tmp_path_factory):
    """A p32 ViT checkpoint (what a p16 model must adapt)."""
    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", num_classes=0, img_size=64, patch_size=32,
                              depth=1)
    path = tmp_path_factory.mktemp("p32") / "p32.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def test_an_adapted_checkpoint_is_reported_with_its_shapes(tokens, tmp_path, cli,
                                                          patch32_weights):
    result = cli("embed", tokens / "t.zarr", "-o", tmp_path / "f.zarr", *TINY, "--weights",
                 patch32_weights)
    assert result.exit_code == 0, result.output
    stderr = one_line(result.stderr)
    assert stderr.count("resized to fit vit_tiny_patch16_224 by timm's checkpoint filter") == 1
    assert "checkpoint filter" not in result.stdout
    assert "patch_embed.proj.weight [192, 3, 32, 32] -> [192, 3, 16, 16]" in stderr
    assert "pos_embed [1, 5, 192] -> [1, 5, 192]" not in stderr  # only what changed


def test_a_failing_load_shows_the_files_own_shapes(patch32_weights, tmp_path):
    from safetensors.torch import load_file

    from mmtok.embedding.encoders import EncoderWeightsError, load_encoder

    state = load_file(str(patch32_weights))
    state["blocks.0.norm1.weight"] = torch.ones(7)
    save_file(state, str(tmp_path / "bad.safetensors"))
    with pytest.raises(EncoderWeightsError) as caught:
        load_encoder("vit_tiny_patch16_224", weights=tmp_path / "bad.safetensors",
                     model_kwargs={"img_size": 32, "depth": 1})
    message = str(caught.value)
    assert "mis-shaped: blocks.0.norm1.weight (expected [192], found [7])" in message
    assert ("resized by timm's checkpoint filter: patch_embed.proj.weight (in the file "
            "[192, 3, 32, 32], resized to [192, 3, 16, 16])") in message


def test_a_run_where_every_sample_fails_exits_8_with_a_modality_hint(tmp_path, cli):
    (tmp_path / "clouds").mkdir()
    for i in range(3):
        (tmp_path / "clouds" / f"{i}.wav").write_text("ply\nformat ascii 1.0\nend_header\n")
    result = cli("tokenize", tmp_path / "clouds", "-o", tmp_path / "a.zarr", "-m", "audio",
                 "--no-progress")
    assert result.exit_code == 8, result.output
    stderr = one_line(result.stderr)
    assert "every sample failed" in stderr
    assert "are these audio files? -m audio reads" in stderr and "`mmtok modalities`" in stderr
    assert "complete:" in result.stdout  # the summary is still printed
    assert "every sample failed" not in result.stdout  # the hint is said once, as the error


def test_a_run_with_some_valid_samples_exits_0(tokens, tmp_path, cli):
    shutil.copytree(tokens / "data", tmp_path / "data")
    (tmp_path / "data" / "cat" / "bad.png").write_bytes(b"nope")
    result = cli("tokenize", tmp_path / "data", "-o", tmp_path / "t.zarr", *SMALL)
    assert result.exit_code == 0, result.output


def damage_checksum_only(store):
    import zarr

    zarr.open_array(store / "orig_size", mode="r+")[1] = [1, 1]  # cheap checks pass


def test_a_plain_rerun_says_it_did_not_verify_checksums(tokens, tmp_path, cli):
    shutil.copytree(tokens / "t.zarr", tmp_path / "t.zarr")
    damage_checksum_only(tmp_path / "t.zarr")
    rerun = cli("tokenize", tokens / "data", "-o", tmp_path / "t.zarr", *SMALL)
    assert rerun.exit_code == 0, rerun.output
    assert "--repair also verifies their checksums" in one_line(rerun.stdout)
    repaired = cli("tokenize", tokens / "data", "-o", tmp_path / "t.zarr", *SMALL, "--repair")
    assert "rewrote 1 damaged shard(s)" in repaired.stdout
    assert "--repair also verifies" not in repaired.stdout


def test_validate_suggests_repair_when_a_checksum_fails(tokens, tmp_path, cli):
    shutil.copytree(tokens / "t.zarr", tmp_path / "t.zarr")
    damage_checksum_only(tmp_path / "t.zarr")
    result = cli("validate", tmp_path / "t.zarr")
    assert result.exit_code == 1
    assert "hint:" in result.stderr
    assert "(`mmtok tokenize ...`, same arguments) with --repair" in one_line(result.stderr)
    report = json.loads(cli("validate", tmp_path / "t.zarr", "--json").stdout)
    assert report["advice"] and "--repair" in report["advice"][0]
    healthy = json.loads(cli("validate", tokens / "t.zarr", "--json").stdout)
    assert healthy["advice"] == []
