"""The accelerator section of bench_embed.py: ViT-B/16, bf16 autocast, 224, on CUDA.

Reports images/s and model FLOP utilisation (MFU: achieved matmul FLOP/s over the GPU's
dense bf16 peak, see ``_flops.py``) for, interleaved in one run on the same weights:

* the peer: timm's own ``forward_features`` on a batch already in GPU memory (random
  pixels: the FLOPs do not depend on them), under the same autocast; no data movement at all;
* mmtok's per-batch forward (``Embedder``: host uint8 tokens -> pinned -> GPU, projector,
  blocks, pool, features back to the host) on all tokens held in host memory, eager and,
  unless disabled, with ``torch.compile`` (compiled during an untimed warm-up);
* ``mmtok.embed`` end to end (store read, compute, write, markers), eager, less model
  construction.

Goals (issues 12 and 19): MFU >= 50 % for every mmtok row, and the end-to-end rate >= 0.9x
timm's bare forward on the same batches.

The function takes the device so the same code runs on the CPU in the test suite (tiny
model, float32); MFU is then unknown (no peak figure).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import interleaved_times, link_or_copy, result_row, result_section
from _flops import mfu, peak_bf16_tflops, vit_dims, vit_forward_flops

TITLE = "GPU: ViT-B/16 at 224, bf16 autocast"
GOAL_MFU = 0.50
GOAL_END_TO_END_VS_TIMM = 0.9


def replicated_token_store(files: list[Path], count: int, workdir: Path) -> Path:
    """A token store of ``count`` images: hard links (copies where links fail) cycling over
    ``files`` in their class folders, so a large set needs no more generated images."""
    import mmtok

    folder = workdir / f"images_{count}_replicated"
    if len([p for p in folder.rglob("*") if p.is_file()]) != count:
        shutil.rmtree(folder, ignore_errors=True)
        for index in range(count):
            source = files[index % len(files)]
            link_or_copy(source, folder / source.parent.name / f"r{index:06d}_{source.name}")
    tokens = workdir / f"gpu_tokens_{count}.zarr"
    mmtok.tokenize(folder, tokens, "image", progress=False,  # resumes a finished store
                   workers=min(8, os.cpu_count() or 1))
    return tokens


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timm_forward(model, device, dtype, batch_size: int, count: int) -> Callable[[], None]:
    """The peer: ``count`` images' worth of ``forward_features`` on one resident batch."""
    import torch

    side = model.patch_embed.img_size
    pixels = torch.randn(batch_size, model.patch_embed.proj.in_channels, *side, device=device)
    batches = [min(batch_size, count - b) for b in range(0, count, batch_size)]

    @torch.inference_mode()
    def run() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            for rows in batches:
                model.forward_features(pixels[:rows])
        _sync(device)

    return run


def mmtok_forward(store, weights: Path, encoder: str, options: dict, device, precision: str,
                  batch_size: int, compile: bool) -> Callable[[], np.ndarray]:
    """mmtok's ``Embedder`` over every token row, held in host memory; warmed up (and, with
    ``compile``, compiled) before it is returned."""
    from mmtok.embedding.encoders import load_encoder
    from mmtok.embedding.pipeline import Embedder, input_arrays
    from mmtok.embedding.projectors import build_projector

    frozen = load_encoder(encoder, weights=weights, device=device, model_kwargs=options or None)
    projector, _ = build_projector(store.modality, store.config, frozen, 0)
    projector.to(device)
    embedder = Embedder(projector, frozen, "cls", device, precision, batch_size, compile=compile)
    rows = {name: store.group[name][:] for name in input_arrays(store)}
    embedder({name: values[:2 * batch_size] for name, values in rows.items()})  # warm-up
    return lambda: embedder(rows)


def _rate_rows(label: str, ips: float, peer_ips: float | None, flops: int,
               peak: float | None, goal: bool, goal_vs_timm: float | None = None) -> list[dict]:
    """An images/s row (against the timm peer, judged when ``goal_vs_timm`` is given) and
    its MFU row (judged when ``goal``)."""
    share = mfu(ips, flops, peak)
    ratio = None if peer_ips is None else ips / peer_ips
    judged = goal_vs_timm is not None and ratio is not None
    rows = [result_row(label, round(ips, 1), "img/s",
                       peer=None if peer_ips is None else "timm forward_features",
                       peer_value=None if peer_ips is None else round(peer_ips, 1),
                       ratio=None if ratio is None else round(ratio, 3),
                       ratio_of="vs timm" if peer_ips is not None else None,
                       goal=f">= {goal_vs_timm:g}x timm" if judged else None,
                       passed=ratio >= goal_vs_timm if judged else None)]
    rows.append(result_row(f"{label}: MFU", None if share is None else round(100 * share, 1),
                           "% of peak", goal=f">= {GOAL_MFU:.0%}" if goal else None,
                           passed=None if (share is None or not goal) else share >= GOAL_MFU,
                           note=None if share is not None else "unknown peak for this device"))
    return rows


def accelerated_section(model, weights: Path, tokens: Path, encoder: str, options: dict, *,
                        device: str, precision: str, batch_size: int, reps: int,
                        compile: bool, embed_seconds: Callable[[], float] | None) -> dict:
    """Measure and return the section. ``embed_seconds`` runs one fresh ``mmtok.embed`` on
    ``tokens`` with these settings and returns its wall time less model construction."""
    import torch

    import mmtok
    from mmtok.embedding.pipeline import PRECISIONS

    dev = torch.device(device)
    store = mmtok.open_store(tokens)
    count = len(store)
    model = model.to(dev)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{dev.type} (no GPU)"
    peak = peak_bf16_tflops(name) if dev.type == "cuda" else None
    flops = vit_forward_flops(vit_dims(model))
    contestants: dict[str, Callable[[], object]] = {
        "timm": timm_forward(model, dev, PRECISIONS[precision], batch_size, count)}
    contestants["timm"]()  # warm-up: cuBLAS handles, kernels picked
    contestants["mmtok"] = mmtok_forward(store, weights, encoder, options, dev, precision,
                                         batch_size, compile=False)
    if compile:
        started = time.perf_counter()
        contestants["mmtok compiled"] = mmtok_forward(store, weights, encoder, options, dev,
                                                      precision, batch_size, compile=True)
        compile_s = time.perf_counter() - started
    times = interleaved_times(contestants, reps)
    ips = {k: count / min(v) for k, v in times.items()}
    end_to_end = [embed_seconds() for _ in range(reps)] if embed_seconds else []
    for key, value in ips.items():
        print(f"{key}: {value:.1f} img/s", flush=True)

    rows = _rate_rows("timm forward_features, batch in GPU memory (peer, ceiling)",
                      ips["timm"], None, flops, peak, goal=False)
    rows += _rate_rows("mmtok forward (Embedder), tokens in host memory", ips["mmtok"],
                       ips["timm"], flops, peak, goal=True)
    if compile:
        rows += _rate_rows("mmtok forward (Embedder), --compile", ips["mmtok compiled"],
                           ips["timm"], flops, peak, goal=True)
    if end_to_end:
        rows += _rate_rows("mmtok embed end to end (store read + write), less model "
                           "construction", count / min(end_to_end), ips["timm"], flops, peak,
                           goal=True, goal_vs_timm=GOAL_END_TO_END_VS_TIMM)
    notes = [f"Device: {name}; peak dense bf16 "
             f"{'unknown' if peak is None else f'{peak:g} TFLOP/s'}; {flops / 1e9:.2f} GFLOP "
             f"per image (matmuls, 2 per multiply-add); {count} images, batch {batch_size}, "
             f"{precision} autocast; best of {reps} interleaved repetitions."]
    if compile:
        notes.append(f"torch.compile warm-up (untimed) took {compile_s:.0f} s.")
    print("\n".join(notes), flush=True)
    return result_section(TITLE, rows, notes)
