"""The benchmark harness (benchmarks/report.py), the GPU check (benchmarks/gpu_check.sh) and
the embed benchmark's FLOP/MFU helpers.

The harness runs here on the quickest real benchmark and on stand-in scripts (one that
passes, one that crashes, one that writes no result); the GPU sections' code runs on the CPU
through Triton's interpreter at toy sizes, and their skip paths as they are on a machine
without CUDA. Nothing here asserts a timing.
"""

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA path")

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
    # three goals (five where CUDA adds the GPU section's); whether they pass is a timing
    assert re.search(r"\| \[knn\]\(#bench-knn\) \| ok \| [0-5] / [35] \|", report)
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


@NO_CUDA
def test_gpu_section_says_skipped_without_cuda(tmp_path):
    import argparse

    from bench_embed import gpu_section

    section = gpu_section(argparse.Namespace(), tmp_path, [])
    assert section["skipped"] == "no CUDA" and section["rows"] == []


# --------------------------------------------------------------------------------------
# the GPU check: benchmarks/gpu_check.sh, report.py --gpu-only / --gpu-tests / --publish-gpu
# --------------------------------------------------------------------------------------


@NO_CUDA
def test_gpu_check_stops_at_once_without_cuda(tmp_path):
    started = time.perf_counter()
    done = subprocess.run(["bash", str(BENCH / "gpu_check.sh")], capture_output=True,
                          text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                       "PYTHON": sys.executable,
                                                       "OUT": str(tmp_path)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "no CUDA here" in done.stderr and "nothing was run" in done.stderr
    assert time.perf_counter() - started < 60 and not list(tmp_path.iterdir())


GPU_STAND_IN = """
import argparse, json
p = argparse.ArgumentParser(); p.add_argument("--result"); p.add_argument("--quick", action="store_true")
p.add_argument("--gpu-only", action="store_true")
a = p.parse_args()
row = dict(figure="kernel", value=0.2, unit="ms", peer=None, peer_value=None, ratio=None,
           ratio_of=None, goal="<= 0.3 ms", note=None, **{"pass": True})
json.dump({"schema": 1, "benchmark": "k", "title": "Stand-in kernel", "quick": a.quick,
           "params": {"gpu_only": a.gpu_only},
           "sections": [{"title": "GPU: kernel", "rows": [row], "notes": [], "skipped": None}]},
          open(a.result, "w"))
"""

GPU_TESTS = """
import pytest

@pytest.mark.gpu
def test_runs():
    pass

@pytest.mark.gpu
def test_breaks():
    assert 1 + 1 == 3, "the widget broke"

@pytest.mark.gpu
def test_needs_more():
    pytest.skip("needs CUDA")

def test_unmarked_is_left_out():
    raise AssertionError("not marked gpu: must not run")
"""


def test_gpu_tests_are_run_and_reported(tmp_path):
    from report import TestRun, gpu_test_files, run_gpu_tests, tests_lines

    assert BENCH.parent / "tests" / "kernels" / "test_fps.py" in gpu_test_files()
    assert BENCH.parent / "tests" / "test_benchmarks.py" not in gpu_test_files()  # unmarked
    tests = tmp_path / "test_stand_in.py"
    tests.write_text(GPU_TESTS)
    run = run_gpu_tests(tmp_path, 120, files=[tests])
    assert run.status == "failed (exit 1)" and not run.ok
    assert run.counts == {"passed": 1, "failed": 1, "error": 0, "skipped": 1}
    assert [case["name"].split("::")[1] for case in run.cases] == [
        "test_runs", "test_breaks", "test_needs_more"]
    text = "\n".join(tests_lines(run))
    assert "Status: **failed (exit 1)**" in text and "| **failed** |" in text
    assert "the widget broke" in text and "needs CUDA" in text
    assert not run_gpu_tests(tmp_path, None, files=[tests]).ok  # the budget was spent
    assert TestRun("ok", 1.0, "pytest", [{"name": "a::b", "outcome": "passed",
                                          "seconds": 1.0, "message": ""}]).ok


def test_gpu_report_runs_gpu_sections_only_within_the_budget(tmp_path):
    bench = tmp_path / "bench"
    bench.mkdir()
    (bench / "bench_kernel.py").write_text(GPU_STAND_IN)
    (bench / "bench_late.py").write_text("import time; time.sleep(60)\n")
    done = run_report("--gpu-only", "--only", "kernel,late", "--bench-dir", bench,
                      "--results-dir", tmp_path / "r", "--budget", "20", "--timeout", "90")
    assert done.returncode == 1 and "failed: late" in done.stderr, done.stdout + done.stderr
    report = only_report(tmp_path / "r")
    assert report.startswith("# mmtok GPU check\n") and "the GPU sections alone" in report
    assert "| [kernel](#gpu-bench-kernel) | ok | 1 / 1 |" in report
    assert re.search(r"\| \[late\]\(#gpu-bench-late\) \| \*\*(timed out|not run)", report)
    result = json.loads(next((tmp_path / "r").glob("*/kernel.json")).read_text())
    assert result["params"] == {"gpu_only": True}  # the script was asked for its GPU part
    refused = run_report("--gpu-only", "--results-dir", tmp_path / "r2")
    assert refused.returncode == 2 and "--gpu-only needs --only" in refused.stderr


def test_the_gpu_block_of_the_published_page(tmp_path):
    from report import GPU_BLOCK_END, GPU_BLOCK_START, GPU_PLACEHOLDER, publish_cpu, publish_gpu

    page = tmp_path / "benchmarks.md"
    publish_cpu("# mmtok benchmarks\n\nCPU figures, first run\n", page)
    assert page.read_text().count(GPU_BLOCK_START) == 1 and GPU_PLACEHOLDER.strip() in page.read_text()
    gpu = "# mmtok GPU check\n\n## Summary\n\n```\n# a log line, kept as it is\n```\n"
    publish_gpu(gpu, page)
    text = page.read_text()
    assert text.startswith("# mmtok benchmarks\n\nCPU figures, first run\n")
    assert "## mmtok GPU check\n\n### Summary" in text and "\n# a log line, kept as it is\n" in text
    assert GPU_PLACEHOLDER.strip() not in text and text.rstrip().endswith(GPU_BLOCK_END)
    publish_cpu("# mmtok benchmarks\n\nCPU figures, second run\n", page)
    text = page.read_text()
    assert "second run" in text and "first run" not in text  # the CPU part is replaced ...
    assert "### Summary" in text and text.count(GPU_BLOCK_START) == 1  # ... the GPU block kept
    with pytest.raises(SystemExit, match="not a GPU check report"):
        publish_gpu("# mmtok benchmarks\n", page)


def test_publish_gpu_from_the_command_line(tmp_path, monkeypatch):
    import report

    page = tmp_path / "benchmarks.md"
    page.write_text("# mmtok benchmarks\n")
    monkeypatch.setattr(report, "PUBLISHED", page)
    (tmp_path / "gpu_report.md").write_text("# mmtok GPU check\n\nfigures\n")
    assert report.main(["--publish-gpu", str(tmp_path / "gpu_report.md")]) == 0
    assert "## mmtok GPU check\n\nfigures" in page.read_text()


def test_the_published_page_has_its_gpu_block():
    from report import GPU_BLOCK_END, GPU_BLOCK_START

    text = (BENCH.parent / "docs" / "benchmarks.md").read_text()
    assert text.count(GPU_BLOCK_START) == 1 and text.rstrip().endswith(GPU_BLOCK_END)


GPU_SECTIONS_INTERPRETED = """
import json, sys
sys.path.insert(0, BENCH)
from _gpu import interpreted
import bench_fps, bench_knn, bench_patchify

acc = interpreted()
sections = {"fps": bench_fps.measure_gpu(acc, 2, 64, 8, "gauss", 2, 1),
            "knn": bench_knn.measure_gpu(acc, 2, 64, 8, "gauss", 2, 1),
            "patchify": bench_patchify.measure_gpu(acc, 2, 32, 1 << 20, 2)}
print("SECTIONS " + json.dumps(sections))
"""


def test_gpu_sections_run_through_the_triton_interpreter():
    """The GPU sections' code at toy sizes on the CPU (Triton interpreted): rows, goals and
    the exactness checks as a GPU run writes them; the figures themselves mean nothing."""
    from pyrun import subprocess_env

    done = subprocess.run([sys.executable, "-c", f"BENCH = {str(BENCH)!r}\n"
                           + GPU_SECTIONS_INTERPRETED], capture_output=True, text=True,
                          timeout=300, env=subprocess_env(TRITON_INTERPRET="1"))
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("SECTIONS "))
    sections = json.loads(line.removeprefix("SECTIONS "))
    by_figure = {name: {(r["figure"], r["peer"]): r for r in s["rows"]}
                 for name, s in sections.items()}
    fps = by_figure["fps"]
    assert fps[("indices identical to the numba CPU path", None)]["pass"] is True
    assert fps[("mmtok farthest_point_sample, device tensor (Triton)", None)]["goal"] == "<= 0.3 ms"
    knn = by_figure["knn"]
    assert knn[("indices and neighbourhoods identical to the numba CPU path", None)]["pass"] is True
    assert knn[("mmtok knn_group, device tensors (Triton)", None)]["goal"] == "<= 0.15 ms"
    assert ("mmtok knn_group, device tensors (Triton)",
            "torch.cdist + topk + gather (same device)") in knn
    patch = sections["patchify"]["rows"]
    judged = [r for r in patch if r["goal"] == ">= 80% of copy"]
    assert len(judged) == 2 and all(r["peer"] == "device-to-device copy" for r in judged)
    assert patch[-1]["pass"] is True  # the kernel's output within float16 rounding
    assert all(s["title"].startswith("GPU: ") and s["notes"] for s in sections.values())


@NO_CUDA
def test_gpu_sections_say_skipped_without_cuda():
    import bench_fps
    import bench_knn
    import bench_patchify

    args = argparse.Namespace(cloud="gauss", gpu_reps=1, reps=1)
    for module in (bench_fps, bench_knn, bench_patchify):
        section = module.gpu_section(args)
        assert section["skipped"] == "no CUDA" and section["rows"] == []
        assert section["title"] == module.GPU_TITLE


POINTS_INTERPRETED = """
import json, sys
from pathlib import Path
sys.path.insert(0, BENCH)
from _gpu import interpreted
import bench_tokenize_points as points

work = Path(WORK)
files = points.ensure_clouds(work / "clouds", 4, points=64)
section = points.measure_gpu(interpreted(), files[0].parent.parent, work,
                             {"num_points": 64, "num_groups": 8, "group_size": 8}, 1)
print("SECTION " + json.dumps(section))
"""


def test_points_gpu_section_runs_through_the_triton_interpreter(tmp_path):
    from pyrun import subprocess_env

    done = subprocess.run([sys.executable, "-c", f"BENCH = {str(BENCH)!r}\n"
                           f"WORK = {str(tmp_path)!r}\n" + POINTS_INTERPRETED],
                          capture_output=True, text=True, timeout=300,
                          env=subprocess_env(TRITON_INTERPRET="1"))
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("SECTION "))
    speed, same = json.loads(line.removeprefix("SECTION "))["rows"]
    assert speed["goal"] == ">= 10x the 2-worker CPU path" and speed["value"] > 0
    assert same["pass"] is True  # the device path's store equals the CPU path's

