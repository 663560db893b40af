"""The frozen shared encoder: timm ViTs and the Meta-Transformer layout, loaded strictly from
weights the tests make themselves (never downloaded)."""

import hashlib
import re
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from mmtok.embedding.encoders import (
    EncoderHubError,
    EncoderWeightsError,
    check_state_dict,
    load_encoder,
    metatransformer_blocks,
)
from mmtok.errors import MmtokError, UsageError

timm = pytest.importorskip("timm")

TINY_VIT = "vit_tiny_patch16_224"
TINY_KW = {"img_size": 32, "depth": 2}  # 2 blocks, width 192, 3 heads, 2x2 patches + cls
TINY_MT = "metatransformer:depth=2,width=64,heads=4"
MT_KEY = re.compile(
    r"^(\d+)\.(norm1|attn\.qkv|attn\.proj|norm2|mlp\.fc1|mlp\.fc2)\.(weight|bias)$"
)


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tiny_vit(num_classes=0, **kw):
    torch.manual_seed(1)
    return timm.create_model(TINY_VIT, pretrained=False, num_classes=num_classes, **{**TINY_KW, **kw}).eval()


def mt_state(depth=2, width=64, mlp=256, seed=0):
    """A Meta-Transformer-layout state dict from random tensors, shapes written out by hand."""
    g = torch.Generator().manual_seed(seed)
    shapes = {
        "norm1.weight": (width,), "norm1.bias": (width,),
        "attn.qkv.weight": (3 * width, width), "attn.qkv.bias": (3 * width,),
        "attn.proj.weight": (width, width), "attn.proj.bias": (width,),
        "norm2.weight": (width,), "norm2.bias": (width,),
        "mlp.fc1.weight": (mlp, width), "mlp.fc1.bias": (mlp,),
        "mlp.fc2.weight": (width, mlp), "mlp.fc2.bias": (width,),
    }
    return {f"{i}.{k}": torch.randn(s, generator=g) * 0.1 for i in range(depth) for k, s in shapes.items()}


def reference_mt_encoder(state, depth=2, width=64, heads=4):
    """The official Meta-Transformer demo's construction, loaded with torch's strict loader."""
    from timm.models.vision_transformer import Block

    enc = nn.Sequential(*[
        Block(dim=width, num_heads=heads, mlp_ratio=4.0, qkv_bias=True, norm_layer=nn.LayerNorm, act_layer=nn.GELU)
        for _ in range(depth)
    ])
    enc.load_state_dict(state, strict=True)
    return enc.eval()


def assert_frozen(encoder):
    params = list(encoder.module.parameters())
    assert params and all(not p.requires_grad for p in params)
    assert all(not m.training for m in encoder.module.modules())
    assert not encoder.norm.training


# ------------------------------------------------------------------------------------------
# Meta-Transformer layout


def test_metatransformer_layouts_have_the_documented_keys():
    with torch.device("meta"):  # no memory, no init: just the layout
        b16 = metatransformer_blocks("b16").state_dict()
        l14 = metatransformer_blocks("l14").state_dict()
    assert (len(b16), len(l14)) == (144, 288)
    for sd, depth, width in ((b16, 12, 768), (l14, 24, 1024)):
        assert all(MT_KEY.match(k) for k in sd), [k for k in sd if not MT_KEY.match(k)]
        assert {int(MT_KEY.match(k).group(1)) for k in sd} == set(range(depth))
        assert sd["0.attn.qkv.weight"].shape == (3 * width, width)
        assert sd["0.mlp.fc1.weight"].shape == (4 * width, width)
    # no patch embed, cls token, position embedding or final norm
    assert not any(k.startswith(("patch_embed", "cls_token", "pos_embed", "norm.")) for k in b16)
    # the official layout's LayerNorm: torch's default eps (1e-5), as in its demo
    block = metatransformer_blocks("depth=1,width=8,heads=2")[0]
    assert isinstance(block.norm1, nn.LayerNorm) and block.norm1.eps == 1e-5


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_metatransformer_checkpoint_loads_strictly(tmp_path, suffix):
    state = mt_state()
    path = tmp_path / f"Meta-Transformer_tiny_encoder{suffix}"
    (save_file if suffix == ".safetensors" else torch.save)(state, str(path))

    enc = load_encoder(TINY_MT, weights=path)
    assert (enc.width, enc.num_heads, enc.depth, enc.vit) == (64, 4, 2, None)
    assert isinstance(enc.norm, nn.Identity)
    assert enc.weights_sha256 == sha256(path)
    assert enc.weights_source == f"file:{path.resolve()}"
    loaded = enc.blocks.state_dict()
    assert sorted(loaded) == sorted(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)

    x = torch.randn(3, 7, 64)
    with torch.no_grad():
        assert torch.allclose(enc.forward_tokens(x), reference_mt_encoder(state)(x), atol=1e-6)
    assert_frozen(enc)


def test_corrupted_metatransformer_checkpoint_names_every_bad_key(tmp_path):
    state = mt_state()
    del state["1.mlp.fc2.bias"]
    state["cls_token"] = torch.zeros(1, 1, 64)
    state["0.attn.qkv.weight"] = torch.zeros(64, 64)
    path = tmp_path / "bad.pth"
    torch.save(state, path)

    with pytest.raises(EncoderWeightsError) as info:
        load_encoder(TINY_MT, weights=path)
    err = info.value
    msg = str(err)
    assert "1.mlp.fc2.bias" in msg and "[64]" in msg
    assert "cls_token" in msg and "[1, 1, 64]" in msg
    assert "0.attn.qkv.weight (expected [192, 64], found [64, 64])" in msg
    assert err.missing == ("1.mlp.fc2.bias",) and err.unexpected == ("cls_token",)
    assert err.mismatched == {"0.attn.qkv.weight": ((192, 64), (64, 64))}
    assert isinstance(err, MmtokError) and err.exit_code == 2


def test_wrong_size_checkpoint_says_what_it_looks_like(tmp_path):
    path = tmp_path / "mt.safetensors"
    save_file(mt_state(depth=3, width=32, mlp=128), str(path))
    with pytest.raises(EncoderWeightsError, match=r"Meta-Transformer layout .* 3 blocks, width 32"):
        load_encoder(TINY_MT, weights=path)


def test_check_state_dict_lists_all_sorted():
    expected = {"b": torch.Size([2]), "a": torch.Size([1]), "c": torch.Size([3]), "d": torch.Size([4])}
    check_state_dict(expected, {k: torch.zeros(s) for k, s in expected.items()})  # fits: no error
    found = {"a": torch.zeros(1), "d": torch.zeros(5), "z": torch.zeros(1), "y": torch.zeros(1)}
    with pytest.raises(EncoderWeightsError) as info:
        check_state_dict(expected, found)
    assert (info.value.missing, info.value.unexpected) == (("b", "c"), ("y", "z"))
    msg = str(info.value)
    assert msg.index("missing:    b") < msg.index("missing:    c") < msg.index("unexpected: y")
    assert "d (expected [4], found [5])" in msg


def test_random_init_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = load_encoder(TINY_MT, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = load_encoder(TINY_MT, seed=7)
    c = load_encoder(TINY_MT, seed=8)
    assert a.weights_source == "random(seed=7)" and a.weights_sha256 is None
    w = "0.attn.qkv.weight"
    assert torch.equal(a.blocks.state_dict()[w], b.blocks.state_dict()[w])
    assert not torch.equal(a.blocks.state_dict()[w], c.blocks.state_dict()[w])
    assert_frozen(a)


def test_padding_keys_are_masked_out():
    enc = load_encoder(TINY_MT, seed=0)
    real = torch.randn(1, 5, 64)
    outs = []
    for total in (5, 8, 13):
        x = torch.cat([real, 100 * torch.randn(1, total - 5, 64)], dim=1)
        with torch.no_grad():
            outs.append(enc.forward_tokens(x, lengths=torch.tensor([5]))[:, :5])
    torch.testing.assert_close(outs[1], outs[0], rtol=0, atol=1e-5)
    torch.testing.assert_close(outs[2], outs[0], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------
# timm ViTs


@pytest.fixture(scope="module")
def vit_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("vit")
    model = tiny_vit()
    sd = model.state_dict()
    save_file(sd, str(d / "vit.safetensors"))
    torch.save(sd, d / "vit.pth")
    return model, d


@pytest.mark.parametrize("fname", ["vit.safetensors", "vit.pth"])
def test_timm_vit_round_trips_through_a_weights_file(vit_files, fname):
    model, d = vit_files
    path = d / fname
    enc = load_encoder(TINY_VIT, weights=path, model_kwargs=TINY_KW)
    assert (enc.width, enc.num_heads, enc.depth) == (192, 3, 2)
    assert enc.weights_sha256 == sha256(path)
    assert enc.weights_source == f"file:{path.resolve()}"
    assert enc.adapted == ()
    assert enc.blocks is enc.vit.blocks and enc.norm is enc.vit.norm

    img = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        want = model.forward_features(img)
        got = enc.vit.forward_features(img)
        # what the image projector will do: the ViT's own embedding, then the shared encoder
        v = enc.vit
        tokens = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(img))))
        shared = enc.forward_tokens(tokens)
    assert want.shape == (2, 5, 192)
    assert torch.equal(got, want)
    assert torch.equal(shared, want)
    assert_frozen(enc)


def test_timm_checkpoint_nested_with_module_prefix_and_head(tmp_path):
    model = tiny_vit(num_classes=10)  # a classifier checkpoint: head.* is ignored
    sd = {f"module.{k}": v for k, v in model.state_dict().items()}
    path = tmp_path / "ckpt.pth"
    torch.save({"model": sd, "epoch": 3, "args": {"lr": 0.1}}, path)

    enc = load_encoder(TINY_VIT, weights=path, model_kwargs=TINY_KW, dtype=torch.float64)
    assert enc.dtype == torch.float64
    img = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(
            enc.vit.forward_features(img.double()).float(), model.forward_features(img), rtol=0, atol=1e-5
        )


def test_timm_filter_resizes_pos_embed_and_reports_it(vit_files):
    model, d = vit_files
    enc = load_encoder(TINY_VIT, weights=d / "vit.safetensors", model_kwargs={"img_size": 48, "depth": 2})
    assert enc.adapted == ("pos_embed",)
    assert enc.vit.pos_embed.shape == (1, 10, 192)


def test_corrupted_timm_checkpoint_names_every_bad_key(tmp_path):
    sd = tiny_vit().state_dict()
    del sd["blocks.1.mlp.fc2.bias"]
    sd["blocks.2.norm1.weight"] = torch.ones(192)
    sd["blocks.0.attn.proj.weight"] = torch.zeros(192, 96)
    path = tmp_path / "bad.safetensors"
    save_file(sd, str(path))
    with pytest.raises(EncoderWeightsError) as info:
        load_encoder(TINY_VIT, weights=path, model_kwargs=TINY_KW)
    msg = str(info.value)
    assert "blocks.1.mlp.fc2.bias" in msg
    assert "blocks.2.norm1.weight" in msg
    assert "blocks.0.attn.proj.weight (expected [192, 192], found [192, 96])" in msg
    assert "timm ViT with 3 blocks" in msg


def test_random_timm_vit_is_frozen_and_seeded():
    enc = load_encoder(TINY_VIT, model_kwargs=TINY_KW, seed=4)
    assert enc.weights_source == "random(seed=4)" and enc.weights_sha256 is None
    assert_frozen(enc)


# ------------------------------------------------------------------------------------------
# Refusals


class Marker:
    """Unpickling this would create a file: the loader must never get that far."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": mt_state(), "extra": Marker(marker)}, path)
    with pytest.raises(EncoderWeightsError, match="never unpickles"):
        load_encoder(TINY_MT, weights=path)
    assert not marker.exists()


@pytest.mark.parametrize("fname,content", [
    ("garbage.pth", b"not a checkpoint"),
    ("garbage.safetensors", b"\x00" * 64),
    ("list.pth", None),
])
def test_unreadable_weights_files(tmp_path, fname, content):
    path = tmp_path / fname
    if content is None:
        torch.save([torch.zeros(1)], path)
    else:
        path.write_bytes(content)
    with pytest.raises(EncoderWeightsError):
        load_encoder(TINY_MT, weights=path)
    with pytest.raises(EncoderWeightsError, match="does not exist"):
        load_encoder(TINY_MT, weights=tmp_path / "missing.pth")


@pytest.mark.parametrize("name,kwargs,match", [
    ("resnet18", {}, "ResNet, not a VisionTransformer"),
    ("eva02_tiny_patch14_224", {}, "not a VisionTransformer"),
    ("vit_tiny_patch16_22", {}, "did you mean vit_tiny_patch16_224"),
    ("no_such_encoder", {}, "unknown encoder"),
    ("metatransformer-b15", {}, "metatransformer-b16, metatransformer-l14"),
    ("metatransformer:depth=2,width=64", {}, "depth=D,width=W,heads=H"),
    ("metatransformer:depth=2,width=66,heads=4", {}, "not divisible"),
    ("metatransformer-b16", {"pretrained": True}, "--weights FILE"),
    (TINY_VIT, {"pretrained": True, "weights": "x.pth"}, "not both"),
])
def test_bad_encoder_names_and_options(name, kwargs, match):
    with pytest.raises(UsageError, match=match):
        load_encoder(name, **kwargs)


def test_pretrained_offline_gives_a_clear_hub_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hf

    # HF_HUB_OFFLINE is read once at import: patch the constant too, and an empty cache,
    # so that this fails at once instead of retrying DNS for ~45 s.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    t0 = time.monotonic()
    with pytest.raises(EncoderHubError, match=r"hub is unreachable.*--weights FILE") as info:
        load_encoder(TINY_VIT, pretrained=True, model_kwargs=TINY_KW)
    assert time.monotonic() - t0 < 10
    # refused before any hub call (issue 20), so no hub exception is chained any more
    assert isinstance(info.value, MmtokError) and "HF_HUB_OFFLINE is set" in str(info.value)
