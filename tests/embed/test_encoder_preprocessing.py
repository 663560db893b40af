"""Embed sees what the encoder was trained on: timm's own preprocessing, statistics chosen
and recorded at embed time, heads refusing features made with other statistics."""

import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from safetensors.torch import save_file
from timm.data import create_transform, resolve_data_config

import mmtok
from mmtok.errors import UsageError
from mmtok.heads.data import check_compatible, load_features
from mmtok.modalities import create_tokenizer
from mmtok.modalities.image.projector import ResizeMismatchWarning

# (name, tiny model options): data configs that differ in statistics (0.5; ImageNet; CLIP's;
# 0 / 1), crop fraction (0.9, 1.0, 0.875) and interpolation (bicubic, bilinear)
MODELS = [
    ("vit_tiny_patch16_224", {"depth": 1}),
    ("deit3_base_patch16_224.fb_in22k_ft_in1k", {"depth": 1, "embed_dim": 64, "num_heads": 2}),
    ("vit_base_patch16_clip_224.openai", {"depth": 1, "embed_dim": 64, "num_heads": 2}),
    ("vit_base_patch16_224_miil.in21k", {"depth": 1, "embed_dim": 64, "num_heads": 2}),
]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A 224 x 224 image (the issue's case) and a non-square one, with fine detail that any
    resampling difference would show in."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(7)
    for name, (h, w) in {"a_square.png": (224, 224), "b_wide.png": (201, 317)}.items():
        ramp = np.linspace(0, 255, w)[None, :, None] * np.ones((h, 1, 3))
        noise = rng.integers(0, 256, (h, w, 3))
        pixels = np.clip(0.5 * ramp + 0.5 * noise, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / name)
    return root


def timm_reference(model, path):
    """timm's own eval preprocessing and forward_features (every token)."""
    transform = create_transform(**resolve_data_config({}, model=model))
    with Image.open(path) as image:
        x = transform(image.convert("RGB"))[None]
    with torch.no_grad():
        return model.forward_features(x)[0].numpy()


@pytest.mark.parametrize("name,options", MODELS, ids=[m[0] for m in MODELS])
def test_features_equal_timm_on_its_own_preprocessing(name, options, photos, tmp_path):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=0, **options).eval()
    weights = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    mmtok.tokenize(photos, tmp_path / "t.zarr", "image", labels="none", like_encoder=name,
                   progress=False)
    config = mmtok.open_store(tmp_path / "t.zarr").config
    data = resolve_data_config({}, model=model)
    assert config["resize"] == "scale_crop" and config["crop_pct"] == data["crop_pct"]
    assert config["interpolation"] == data["interpolation"]
    mmtok.embed(tmp_path / "t.zarr", tmp_path / "f.zarr", name, weights=weights,
                encoder_options=options, pool_how="none", progress=False)  # default options
    feats = mmtok.open_store(tmp_path / "f.zarr")
    assert feats.config["statistics"] == {"source": "encoder", "mean": list(data["mean"]),
                                          "std": list(data["std"])}
    for i, file in enumerate(("a_square.png", "b_wide.png")):
        expected = timm_reference(model, photos / file)
        np.testing.assert_allclose(feats[i]["features"], expected, atol=1e-5, rtol=0)


def test_scale_crop_pixels_equal_timms_transform(photos):
    """The resize itself, pixel for pixel, for a crop fraction whose scale is not whole."""
    tokenizer = create_tokenizer("image", size=224, resize="scale_crop", crop_pct=0.9,
                                 interpolation="bicubic")
    transform = create_transform(224, crop_pct=0.9, interpolation="bicubic", normalize=False)
    for file in ("a_square.png", "b_wide.png"):
        pixels, _ = tokenizer.load(str(photos / file))
        with Image.open(photos / file) as image:
            expected = np.asarray(transform(image.convert("RGB")))
        np.testing.assert_array_equal(pixels, np.moveaxis(expected, 0, -1)
                                      if expected.shape[0] == 3 else expected)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, photos):
    root = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(1)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                              img_size=32, depth=1)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(root / "w.safetensors"))
    mmtok.tokenize(photos, root / "t.zarr", "image", labels="none", size=32, progress=False)
    return root, model.eval()


def embed_tiny(root, out, **kwargs):
    return mmtok.embed(root / "t.zarr", out, "vit_tiny_patch16_224",
                       weights=root / "w.safetensors", encoder_options={"img_size": 32,
                                                                        "depth": 1},
                       progress=False, **kwargs)


def test_statistics_encoder_store_or_given_are_applied_and_recorded(tiny, tmp_path):
    root, model = tiny
    tokens = mmtok.open_store(root / "t.zarr")
    pixels = torch.from_numpy(np.stack([tokens[i]["tokens"] for i in range(2)]))
    image = pixels.view(2, 2, 2, 3, 16, 16).permute(0, 3, 1, 4, 2, 5).reshape(2, 3, 32, 32)
    image = image.float() / 255
    runs = {"encoder": ((0.5,) * 3, (0.5,) * 3), "store": (tokens.config["mean"],
                                                           tokens.config["std"]),
            "given": ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))}
    for choice, (mean, std) in runs.items():
        statistics = {"mean": "0.1,0.2,0.3", "std": "0.4,0.5,0.6"} if choice == "given" else choice
        with pytest.warns(ResizeMismatchWarning, match="crop_pct 1.0 .encoder: 0.9"):
            embed_tiny(root, tmp_path / f"{choice}.zarr", statistics=statistics, pool_how="none")
        feats = mmtok.open_store(tmp_path / f"{choice}.zarr")
        assert feats.config["statistics"] == {"source": choice, "mean": list(mean),
                                              "std": list(std)}
        x = (image - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        with torch.no_grad():
            expected = model.forward_features(x).numpy()
        np.testing.assert_allclose(feats.group["features"][:], expected, atol=1e-5, rtol=0)
    with pytest.raises(UsageError, match="exactly mean, std"):
        embed_tiny(root, tmp_path / "bad.zarr", statistics={"mean": "0.5"})


def test_a_head_refuses_features_made_with_other_statistics(tiny, tmp_path):
    root, _ = tiny
    for choice in ("encoder", "store"):
        embed_tiny(root, tmp_path / f"{choice}.zarr", statistics=choice)
    ours, theirs = (load_features(tmp_path / f"{c}.zarr") for c in ("encoder", "store"))
    with pytest.raises(UsageError, match="statistics"):
        check_compatible(ours, theirs, "val")
    check_compatible(ours, load_features(tmp_path / "encoder.zarr"), "val")


def test_gray_tokens_with_an_rgb_encoders_statistics_embed_as_an_rgb_copy(tmp_path, photos):
    torch.manual_seed(2)
    model = timm.create_model("deit_tiny_patch16_224", pretrained=False, num_classes=0,
                              img_size=32, depth=1).eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(tmp_path / "w.safetensors"))
    mmtok.tokenize(photos, tmp_path / "t.zarr", "infrared", labels="none", size=32,
                   progress=False)
    mmtok.embed(tmp_path / "t.zarr", tmp_path / "f.zarr", "deit_tiny_patch16_224",
                weights=tmp_path / "w.safetensors", encoder_options={"img_size": 32, "depth": 1},
                pool_how="none", progress=False)
    tokens = mmtok.open_store(tmp_path / "t.zarr")
    gray = torch.from_numpy(tokens[0]["tokens"]).view(2, 2, 16, 16).permute(0, 2, 1, 3)
    rgb = gray.reshape(1, 1, 32, 32).expand(1, 3, 32, 32).float() / 255
    mean = torch.tensor((0.485, 0.456, 0.406)).view(1, 3, 1, 1)
    std = torch.tensor((0.229, 0.224, 0.225)).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.forward_features((rgb - mean) / std)[0].numpy()
    np.testing.assert_allclose(mmtok.open_store(tmp_path / "f.zarr")[0]["features"], expected,
                               atol=1e-5, rtol=0)


def test_like_encoder_from_the_cli_and_explicit_options_win(photos, tmp_path):
    from typer.testing import CliRunner

    from mmtok.cli import app

    result = CliRunner().invoke(app, ["tokenize", str(photos), "-o", str(tmp_path / "t.zarr"),
                                      "--labels", "none", "--like-encoder",
                                      "vit_base_patch16_224_miil.in21k", "--size", "32",
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "t.zarr" / "zarr.json").read_text())["attributes"]
    config = config["mmtok"]["config"]
    assert (config["size"], config["crop_pct"], config["interpolation"], config["resize"],
            config["mean"]) == (32, 0.875, "bilinear", "scale_crop", [0.0, 0.0, 0.0])
    with pytest.raises(UsageError, match="not a timm model"):
        mmtok.tokenize(photos, tmp_path / "u.zarr", "image", like_encoder="no_such_vit",
                       progress=False)
    with pytest.raises(UsageError, match="no encoder-specific"):
        mmtok.tokenize(photos, tmp_path / "u.zarr", "audio", like_encoder="vit_tiny_patch16_224",
                       progress=False)


def test_embed_cli_takes_statistics_and_refuses_conflicting_flags(tiny, tmp_path):
    from typer.testing import CliRunner

    from mmtok.cli import app

    root, _ = tiny
    base = ["embed", str(root / "t.zarr"), "--encoder", "vit_tiny_patch16_224", "--weights",
            str(root / "w.safetensors"), "--encoder-option", "img_size=32",
            "--encoder-option", "depth=1", "--no-progress"]
    given = CliRunner().invoke(app, base + ["-o", str(tmp_path / "g.zarr"), "--stat",
                                            "mean=0.1,0.2,0.3", "--stat", "std=0.4,0.5,0.6"])
    assert given.exit_code == 0, given.output
    assert mmtok.open_store(tmp_path / "g.zarr").config["statistics"] == {
        "source": "given", "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}
    both = CliRunner().invoke(app, base + ["-o", str(tmp_path / "b.zarr"), "--statistics",
                                           "store", "--stat", "mean=0.5"])
    assert both.exit_code == 2 and "cannot go with --statistics store" in both.output


def test_a_worker_that_loads_its_own_embedder_does_not_repeat_the_drivers_warning(tiny,
                                                                                 tmp_path):
    """Ray actors build the embedder again; the driver has already warned once."""
    import warnings

    from mmtok.embedding.pipeline import EmbedJob
    from mmtok.engines.base import WorkerContext

    root, _ = tiny
    with pytest.warns(ResizeMismatchWarning):  # the driver's build
        embed_tiny(root, tmp_path / "f.zarr")
    job = EmbedJob(str(root / "t.zarr"), str(tmp_path / "f.zarr"), "vit_tiny_patch16_224",
                   str(root / "w.safetensors"), False, None, "cls", None, "cpu", "float32", 0,
                   {"img_size": 32, "depth": 1}, False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        worker = job.setup(WorkerContext(device="cpu"))  # as a Ray actor: its own build
    assert worker.embedder is not None
    assert not [w for w in caught if issubclass(w.category, ResizeMismatchWarning)]
