"""`mmtok embed` on CUDA in float32, bfloat16 and float16 against the CPU's float32 features.

Marked gpu: skipped without CUDA; `benchmarks/gpu_check.sh` runs it on a GPU machine.
"""

import numpy as np
import pytest
import timm
import torch
from imagefiles import write_class_tree
from safetensors.torch import save_file

import mmtok

TINY = "vit_tiny_patch16_224"
OPTIONS = {"img_size": 32, "depth": 2}
# ||cuda - cpu|| / ||cpu|| over all features: float32 arithmetic (with TF32 where cuDNN picks
# it) stays far under 1e-3; float16 carries 11 bits, bfloat16 8 (METHOD.md's ranges)
RELATIVE_ERROR = {"float32": 1e-3, "float16": 5e-3, "bfloat16": 3e-2}


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """Tokens, weights and the CPU float32 features of a tiny ViT; needs CUDA to be useful."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    root = tmp_path_factory.mktemp("cuda_embed")
    write_class_tree(root / "data", per_class=6, size=(40, 40))
    mmtok.tokenize(root / "data", root / "t.zarr", "image", size=32, patch=16, shard_size=4,
                   progress=False)
    torch.manual_seed(0)
    model = timm.create_model(TINY, pretrained=False, num_classes=0, **OPTIONS)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(root / "w.safetensors"))
    embed(root, "cpu", "float32")
    return root


def embed(root, device: str, precision: str) -> np.ndarray:
    out = root / f"f_{device}_{precision}.zarr"
    summary = mmtok.embed(root / "t.zarr", out, TINY, weights=root / "w.safetensors",
                          encoder_options=OPTIONS, device=device, precision=precision,
                          batch_size=5, progress=False, overwrite=True)
    assert summary.status == "complete", summary.line()
    return mmtok.open_store(out).group["features"][:]


@pytest.mark.gpu
@pytest.mark.parametrize("precision", list(RELATIVE_ERROR))
def test_embed_on_cuda_matches_the_cpu(cpu_run, precision):
    reference = mmtok.open_store(cpu_run / "f_cpu_float32.zarr").group["features"][:]
    features = embed(cpu_run, "cuda", precision)
    assert features.shape == reference.shape and np.isfinite(features).all()
    error = np.linalg.norm(features.astype(np.float64) - reference) / np.linalg.norm(reference)
    assert error <= RELATIVE_ERROR[precision], f"{precision}: relative error {error:.2e}"
    assert error > 0 or precision == "float32"  # a reduced precision that changed nothing
    # would mean autocast never ran: the comparison itself would be hollow
