"""The image and video projectors normalise stored patches through
mmtok.kernels.patchify.normalize_patches: today's torch ops on the CPU (the same bits as
before), the patchify Triton kernel's fused path on CUDA (here under the interpreter), and
`embed` on CUDA in float32 / bfloat16 / float16 against the CPU's features."""

from __future__ import annotations

import importlib.util
import warnings

import numpy as np
import pytest
import torch
from pyrun import run_interpreted

import mmtok
from mmtok.embedding.encoders import load_encoder
from mmtok.embedding.projectors import build_projector
from mmtok.modalities import create_tokenizer, make_config
from mmtok.modalities.base import config_to_dict
from mmtok.modalities.image.projector import ResizeMismatchWarning

RGB = {"mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}

# (modality, statistics overriding the preset's): 8-bit RGB; 16-bit gray with gray
# statistics (the summed patch embedding); 16-bit gray with an RGB encoder's statistics (the
# gray block repeated); 8-bit gray repeated
IMAGE_CASES = {
    "rgb8": ("image", RGB),
    "gray16": ("xray", {}),
    "gray16-repeated": ("xray", RGB),
    "gray8-repeated": ("infrared", RGB),
}


def _tiny_vit():
    return load_encoder("vit_tiny_patch16_224", seed=0,
                        model_kwargs={"depth": 1, "img_size": 32})


def _image_projector(name: str, encoder):
    modality, statistics = IMAGE_CASES[name]
    config = config_to_dict(make_config(modality, size=32, patch=16))
    config.update({k: list(v) for k, v in statistics.items()})  # as embed_statistics does
    with warnings.catch_warnings():  # these tokens are not resized as timm would: no matter
        warnings.simplefilter("ignore", ResizeMismatchWarning)
        return build_projector(modality, config, encoder, seed=0)[0], config


def _video_projector(encoder):
    config = config_to_dict(make_config("video", num_frames=4, size=32, patch=16))
    statics = create_tokenizer("video", num_frames=4, size=32, patch=16).static_arrays()
    return build_projector("video", config, encoder, seed=0, statics=statics)[0], config


def _tokens(shape, bit_depth: int, seed: int = 0) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    return torch.from_numpy(rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True)
                            .astype(dtype))


def _recording(monkeypatch, module):
    """Records every normalize_patches result the projector module computes."""
    seen = []
    original = module.normalize_patches

    def record(*args, **kwargs):
        seen.append(original(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(module, "normalize_patches", record)
    return seen


@pytest.mark.parametrize("name", list(IMAGE_CASES))
def test_image_pixels_on_the_cpu_are_the_old_ops_bit_for_bit(name, monkeypatch):
    from mmtok.modalities.image import projector as module

    projector, config = _image_projector(name, _tiny_vit())
    channels, bits = config["channels"], config["bit_depth"]
    tokens = _tokens((2, 4, channels * 256), bits)
    seen = _recording(monkeypatch, module)
    with torch.no_grad():
        projector({"tokens": tokens})
    # the projector's arithmetic before the kernel: a copied repeat, per-element statistics
    repeat = 3 if name.endswith("repeated") else 1
    mean = torch.tensor(config["mean"]).expand(channels * repeat).repeat_interleave(256)
    std = torch.tensor(config["std"]).expand(channels * repeat).repeat_interleave(256)
    scale = 1.0 / (255.0 if bits == 8 else 65535.0)
    old = (tokens.repeat(1, 1, repeat).float() * scale - mean) / std
    assert len(seen) == 1 and seen[0].dtype == torch.float32
    assert torch.equal(seen[0], old)


def test_video_pixels_on_the_cpu_are_the_old_ops_bit_for_bit(monkeypatch):
    from mmtok.modalities.video import projector as module

    projector, config = _video_projector(_tiny_vit())
    tokens = _tokens((2, 8, 3 * 2 * 256), 8)  # (4 frames / 2) x 2 x 2 tubelets
    seen = _recording(monkeypatch, module)
    with torch.no_grad():
        projector({"tokens": tokens})
    mean = torch.tensor(config["mean"]).expand(3).repeat_interleave(512)
    std = torch.tensor(config["std"]).expand(3).repeat_interleave(512)
    assert len(seen) == 1 and torch.equal(seen[0], (tokens.float() / 255.0 - mean) / std)


def test_cpu_autocast_keeps_float32_pixels(monkeypatch):
    from mmtok.modalities.image import projector as module

    projector, _ = _image_projector("rgb8", _tiny_vit())
    seen = _recording(monkeypatch, module)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        projector({"tokens": _tokens((1, 4, 768), 8)})
    assert seen[0].dtype == torch.float32  # on the CPU: today's ops, whatever the autocast


def test_the_projectors_trace_as_one_graph_for_torch_compile():
    """`embed --compile` traces the projector: normalize_patches must not split its graph
    (on CUDA it takes the torch ops while tracing, which inductor fuses itself)."""
    encoder = _tiny_vit()
    cases = []
    for name in ("rgb8", "gray16-repeated"):
        projector, config = _image_projector(name, encoder)
        cases.append((projector, _tokens((2, 4, config["channels"] * 256), config["bit_depth"])))
    cases.append((_video_projector(encoder)[0], _tokens((2, 8, 3 * 2 * 256), 8)))
    for projector, tokens in cases:
        explained = torch._dynamo.explain(lambda t: projector({"tokens": t}).x)(tokens)
        assert explained.graph_break_count == 0, explained.break_reasons
        torch._dynamo.reset()


_INTERPRET_PRELUDE = f"""
import numpy as np
import torch
import test_projector_kernels as cases
IMAGE_CASES = {list(IMAGE_CASES)!r}
"""


@pytest.mark.interpret
def test_triton_interpreter_projectors_equal_their_torch_path():
    """The CUDA path of both projectors, run by Triton's interpreter on CPU tensors, gives
    the CPU path's projected tokens within float32 tolerance."""
    pytest.importorskip("triton")
    run_interpreted(_INTERPRET_PRELUDE, """
        encoder = cases._tiny_vit()

        def compare(projector, tokens):
            with torch.no_grad():
                projector.kernel_impl = "torch"
                ops = projector({"tokens": tokens}).x
                projector.kernel_impl = "triton"
                kernel = projector({"tokens": tokens}).x
            torch.testing.assert_close(kernel, ops, rtol=1e-5, atol=1e-5)

        for name in IMAGE_CASES:
            projector, config = cases._image_projector(name, encoder)
            compare(projector, cases._tokens((2, 4, config["channels"] * 256),
                                             config["bit_depth"], seed=1))
        projector, _ = cases._video_projector(encoder)
        compare(projector, cases._tokens((2, 8, 3 * 2 * 256), 8, seed=2))
    """)


# --------------------------------------------------------------------------------------
# embed on CUDA
# --------------------------------------------------------------------------------------

# features' tolerance per --precision, against the CPU's float32 features (2-block
# encoders with random weights: features of order 1). CPU autocast on these stores differs
# by at most 0.027 (bfloat16) and 0.003 (float16): a few times that, where a wrong
# normalisation would be off by order 1.
CUDA_TOLERANCES = {"float32": dict(rtol=1e-4, atol=1e-4),
                   "bfloat16": dict(rtol=8e-2, atol=8e-2),
                   "float16": dict(rtol=1.5e-2, atol=1.5e-2)}
TINY_VIT = "vit_tiny_patch16_224"
TINY_VIT_OPTIONS = {"img_size": 32, "depth": 2}
METATRANSFORMER = "metatransformer:depth=2,width=32,heads=4"


@pytest.fixture(scope="module")
def cuda_stores(tmp_path_factory):
    """Image (RGB 8-bit and 16-bit gray), video and audio token stores, made here."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    import soundfile
    from imagefiles import write_class_tree

    root = tmp_path_factory.mktemp("cuda_embed")
    write_class_tree(root / "images", per_class=3, size=(48, 40))
    mmtok.tokenize(root / "images", root / "rgb.zarr", "image", size=32, patch=16,
                   progress=False)
    mmtok.tokenize(root / "images", root / "gray16.zarr", "xray", size=32, patch=16,
                   progress=False)
    stores = {"rgb": (root / "rgb.zarr", TINY_VIT), "gray16": (root / "gray16.zarr", TINY_VIT)}
    rng = np.random.default_rng(0)
    (root / "audio" / "a").mkdir(parents=True)
    for k in range(3):
        soundfile.write(root / "audio" / "a" / f"{k}.wav",
                        (rng.normal(size=8000) * 0.1).astype(np.float32), 16000)
    mmtok.tokenize(root / "audio", root / "audio.zarr", "audio", target_frames=96,
                   progress=False)
    stores["audio"] = (root / "audio.zarr", METATRANSFORMER)
    if importlib.util.find_spec("av") is not None:  # without PyAV the video case skips
        import videofiles as vf

        (root / "video" / "a").mkdir(parents=True)
        for k in range(3):
            vf.write_clip(root / "video" / "a" / f"{k}.avi", 12)
        mmtok.tokenize(root / "video", root / "video.zarr", "video", num_frames=4, rate=2,
                       size=32, patch=16, progress=False)
        stores["video"] = (root / "video.zarr", TINY_VIT)
    return root, stores


def _embed(store, encoder, out, device, precision):
    options = TINY_VIT_OPTIONS if encoder == TINY_VIT else None
    summary = mmtok.embed(store, out, encoder, pool_how="cls+mean+max", device=device,
                          precision=precision, encoder_options=options, progress=False)
    assert summary.num_valid > 0
    return mmtok.open_store(out).group["features"][:]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", list(CUDA_TOLERANCES))
@pytest.mark.parametrize("kind", ["rgb", "gray16", "video", "audio"])
def test_embed_on_cuda_equals_the_cpu_features_through_the_kernel(cuda_stores, kind, precision,
                                                                  monkeypatch):
    from mmtok.kernels import patchify as kernels

    root, stores = cuda_stores
    if kind not in stores:
        pytest.skip("PyAV is not installed: no video store")
    store, encoder = stores[kind]
    cpu = root / f"{kind}-cpu.zarr"
    reference = (mmtok.open_store(cpu).group["features"][:] if cpu.exists()
                 else _embed(store, encoder, cpu, "cpu", "float32"))
    launches = []
    launch = kernels._patchify_triton
    monkeypatch.setattr(kernels, "_patchify_triton",
                        lambda *args: launches.append(args[0].device) or launch(*args))
    features = _embed(store, encoder, root / f"{kind}-cuda-{precision}.zarr", "cuda", precision)
    # the normalisation (image, video) and the patch cut (audio) ran as the Triton kernel
    assert launches and all(device.type == "cuda" for device in launches)
    assert features.dtype == np.float32 and np.isfinite(features).all()
    np.testing.assert_allclose(features, reference, **CUDA_TOLERANCES[precision])


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cuda_autocast_pixels_are_the_autocast_dtype_and_project_alike(dtype, monkeypatch):
    """Under autocast the kernel writes the matmul's dtype directly; the projected tokens
    equal those from float32 pixels (which the matmul would have rounded the same way)."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    pytest.importorskip("triton")
    from mmtok.modalities.image import projector as module

    encoder = _tiny_vit()
    projector, config = _image_projector("rgb8", encoder)
    projector = projector.cuda()
    tokens = _tokens((8, 4, 768), 8, seed=3).cuda()
    seen = _recording(monkeypatch, module)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype):
        kernel = projector({"tokens": tokens}).x
        projector.kernel_impl = "torch"
        ops = projector({"tokens": tokens}).x
    assert seen[0].dtype == dtype and seen[1].dtype == dtype
    torch.testing.assert_close(seen[0], seen[1])  # the same rounding, bar an FMA's last bit
    torch.testing.assert_close(kernel.float(), ops.float(), rtol=2e-2, atol=2e-2)
