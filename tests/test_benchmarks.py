"""The benchmark harness (benchmarks/report.py) and the embed benchmark's FLOP/MFU helpers.

The harness runs here on the quickest real benchmark and on stand-in scripts (one that
passes, one that crashes, one that writes no result); nothing here asserts a timing.
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

from _flops import mfu, peak_bf16_tflops, vit_dims, vit_forward_flops, vit_forward_macs  # noqa: E402


def run_report(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH / "report.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=300, cwd=cwd)


def only_report(results: Path) -> str:
    reports = list(results.glob("report-*.md"))
    assert len(reports) == 1, reports
    return reports[0].read_text()


def test_report_runs_a_real_benchmark_in_quick_mode(tmp_path):
    done = run_report("--quick", "--only", "knn", "--results-dir", tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = only_report(tmp_path)
    assert "- Mode: **quick**" in report
    assert "| CPU |" in report and "| GPU |" in report and "torch " in report
    # three goals; whether they pass is a timing on a shared machine, so it is not checked
    assert re.search(r"\| \[knn\]\(#bench-knn\) \| ok \| [0-3] / 3 \|", report)
    for size in ("N = 1024, G = 64", "N = 1024, G = 256", "N = 8192, G = 512"):
        assert f"| knn | {size}: mmtok |" in report  # one goal row per size
        assert f"### KNN {size}, k = 32, one cloud" in report
    assert report.count("| cKDTree build+query+gather |") >= 3
    result = json.loads(next(tmp_path.glob("*/knn.json")).read_text())
    assert result["schema"] == 1 and result["quick"] is True and result["benchmark"] == "knn"


PASSING = '''
import argparse, json
p = argparse.ArgumentParser(); p.add_argument("--result"); p.add_argument("--quick", action="store_true")
a = p.parse_args()
row = dict(figure="widgets", value=12.5, unit="MiB", peer="gadgets", peer_value=10.0, ratio=1.25,
           ratio_of="vs gadgets", goal="<= 2x", note=None)
json.dump({"schema": 1, "benchmark": "ok", "title": "Stand-in", "quick": a.quick, "params": {},
           "sections": [{"title": "Main", "rows": [dict(row, **{"pass": True})], "notes": ["n1"],
                         "skipped": None},
                        {"title": "GPU part", "rows": [], "notes": [], "skipped": "no CUDA"}]},
          open(a.result, "w"))
'''


def test_report_goes_on_past_benchmarks_that_fail(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_a_crash.py").write_text("raise RuntimeError('the widget broke')\n")
    (bench / "bench_b_ok.py").write_text(PASSING)
    (bench / "bench_c_silent.py").write_text("print('no result written')\n")
    (bench / "not_a_bench.py").write_text("raise SystemExit(3)\n")
    done = run_report("--quick", "--bench-dir", bench, "--results-dir", tmp_path / "r")
    assert done.returncode == 1 and "failed: a_crash, c_silent" in done.stderr
    report = only_report(tmp_path / "r")
    assert "| [a_crash](#bench-a-crash) | **failed (exit 1)** |" in report
    assert "RuntimeError: the widget broke" in report  # the log's tail is in the report
    assert "| [b_ok](#bench-b-ok) | ok | 1 / 1 |" in report
    assert "| [c_silent](#bench-c-silent) | **no result (FileNotFoundError)** |" in report
    assert "not_a_bench" not in report
    row = "| widgets | 12.5 MiB | gadgets | 10 MiB | 1.25x vs gadgets | <= 2x | PASS |"
    assert row in report and f"| b_ok {row}" in report  # in its section and under Goals
    assert "## Peak memory as the data grows" in report  # MiB rows are gathered there
    assert "### GPU part\n\nskipped: no CUDA" in report


def test_fusion_benchmark_runs_and_writes_its_two_goals(tmp_path):
    """bench_fusion.py end to end at a toy size: both goal rows judged, sizes as asked."""
    result = tmp_path / "fusion.json"
    done = subprocess.run([sys.executable, str(BENCH / "bench_fusion.py"), "--quick",
                           "--samples", "48", "--reps", "1", "--block-mib", "1",
                           "--workdir", str(tmp_path / "work"), "--result", str(result)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "same initial weights: True" in done.stdout
    payload = json.loads(result.read_text())
    assert payload["benchmark"] == "fusion" and payload["quick"] is True
    assert payload["params"]["samples"] == 48 and payload["params"]["block_bytes"] == 1 << 20
    (section,) = payload["sections"]
    speed, memory = section["rows"]
    assert speed["unit"] == "samples/s" and speed["value"] > 0 and speed["peer_value"] > 0
    assert memory["unit"] == "MiB" and memory["figure"] == "peak RSS, one epoch of 48 samples"
    assert memory["peer"] == "same at 16 samples"  # N/4 = 12 is raised to one batch of 16
    assert isinstance(speed["pass"], bool) and isinstance(memory["pass"], bool)


def test_standard_args_fill_quick_and_full_defaults():
    from _common import standard_args

    parser = standard_args("doc", quick="small", reps=(5, 2), workdir=Path("/tmp/w"),
                           json_help="also write x.json")
    parser.add_sized("--clips", 40, 8, "clips")
    full = parser.parse_args([])
    assert (full.quick, full.reps, full.clips, full.result, full.json) == (False, 5, 40, None, False)
    quick = parser.parse_args(["--quick", "--clips", "3", "--result", "r.json"])
    assert (quick.reps, quick.clips, quick.result) == (2, 3, Path("r.json"))
    assert quick.workdir == Path("/tmp/w")
    assert "(default 40; 8 with --quick)" in parser.format_help()
    plain = standard_args("doc", quick="small", reps=3).parse_args(["--quick"])
    assert plain.reps == 3 and not hasattr(plain, "workdir") and not hasattr(plain, "json")


def test_report_refuses_an_unknown_benchmark_name(tmp_path):
    done = run_report("--only", "no_such_bench", "--results-dir", tmp_path)
    assert done.returncode != 0 and "no benchmark named no_such_bench" in done.stderr


def test_vit_macs_equal_torch_flop_counter():
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                              img_size=32, depth=2).eval()
    for block in model.blocks:  # explicit matmuls: the counter does not see CPU fused attention
        block.attn.fused_attn = False
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.forward_features(torch.zeros(1, 3, 32, 32))
    assert vit_forward_flops(vit_dims(model)) == counter.get_total_flops()


def test_vit_b16_macs_match_the_published_figure():
    with torch.device("meta"):  # shapes only
        model = timm.create_model("vit_base_patch16_224", pretrained=False, num_classes=0)
    macs = vit_forward_macs(vit_dims(model))
    assert macs == pytest.approx(17.58e9, rel=0.005)  # timm's table: 17.58 GMACs
    assert vit_forward_flops(vit_dims(model)) == 2 * macs


def test_peak_table_and_mfu():
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756
    assert peak_bf16_tflops("NVIDIA H200") == 989
    assert peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312
    assert peak_bf16_tflops("NVIDIA GeForce RTX 4090") is None
    assert mfu(1000.0, 35_000_000_000, None) is None
    assert mfu(14_130.0, 35_000_000_000, 989.0) == pytest.approx(0.5, rel=1e-3)


def test_gpu_section_code_runs_on_the_cpu(tmp_path):
    """The CUDA section's code on the CPU with a tiny ViT: every row there, MFU unknown."""
    from imagefiles import write_class_tree
    from safetensors.torch import save_file

    import mmtok
    from _embed_gpu import accelerated_section

    write_class_tree(tmp_path / "data", per_class=3, size=(40, 40))
    mmtok.tokenize(tmp_path / "data", tmp_path / "t.zarr", "image", size=32, patch=16,
                   progress=False)
    options = {"img_size": 32, "depth": 2}
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0,
                              **options).eval()
    save_file(model.state_dict(), str(tmp_path / "w.safetensors"))
    section = accelerated_section(model, tmp_path / "w.safetensors", tmp_path / "t.zarr",
                                  "vit_tiny_patch16_224", options, device="cpu",
                                  precision="float32", batch_size=4, reps=1, compile=False,
                                  embed_seconds=lambda: 2.0)
    figures = [row["figure"] for row in section["rows"]]
    assert figures == [
        "timm forward_features, batch in GPU memory (peer, ceiling)",
        "timm forward_features, batch in GPU memory (peer, ceiling): MFU",
        "mmtok forward (Embedder), tokens in host memory",
        "mmtok forward (Embedder), tokens in host memory: MFU",
        "mmtok embed end to end (store read + write), less model construction",
        "mmtok embed end to end (store read + write), less model construction: MFU"]
    end_to_end = section["rows"][4]
    count = len(mmtok.open_store(tmp_path / "t.zarr"))
    assert end_to_end["value"] == pytest.approx(count / 2.0, abs=0.05)
    assert all(row["value"] is None and row["pass"] is None for row in section["rows"][1::2])
    assert section["rows"][2]["peer"] == "timm forward_features"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")
def test_gpu_section_says_skipped_without_cuda(tmp_path):
    import argparse

    from bench_embed import gpu_section

    section = gpu_section(argparse.Namespace(), tmp_path, [])
    assert section["skipped"] == "no CUDA" and section["rows"] == []
