"""`--pretrained` without network fails in seconds with what to do, and loads cached weights
without network attempts (issue 20; it used to retry for about a minute)."""

import subprocess
import sys
import textwrap

from pyrun import subprocess_env

REPO = "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k"
LOAD = textwrap.dedent("""
    import time
    import timm  # noqa: F401  (seconds to import; not what is measured)
    from mmtok.embedding.encoders import load_encoder
    started = time.monotonic()
    try:
        encoder = load_encoder("vit_tiny_patch16_224", pretrained=True)
        print("loaded", encoder.weights_source)
    except Exception as exc:
        print(type(exc).__name__, exc)
    print("seconds", time.monotonic() - started)
""")


def run_offline(hf_home, **env):
    """Load with an unreachable hub: an endpoint on a closed local port."""
    environment = subprocess_env(HF_HOME=str(hf_home), HF_ENDPOINT="http://127.0.0.1:9", **env)
    environment.pop("HF_HUB_OFFLINE", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-c", LOAD], env=environment, capture_output=True,
                          text=True, timeout=300)


def seconds(result) -> float:
    return float(result.stdout.split("seconds")[-1])


def test_no_network_and_no_cache_fails_at_once_with_what_to_do(tmp_path):
    result = run_offline(tmp_path / "hf")
    assert result.stdout.startswith("EncoderHubError"), result.stdout + result.stderr
    assert "the hub is unreachable (cannot connect to 127.0.0.1:9" in result.stdout
    assert f"the weights of {REPO} are not in the local cache" in result.stdout
    assert "pass --weights FILE" in result.stdout
    assert "Retrying" not in result.stderr
    assert seconds(result) < 5, "the imports aside, failing must take no time"


def test_hf_hub_offline_is_honoured(tmp_path):
    result = run_offline(tmp_path / "hf", HF_HUB_OFFLINE="1")
    assert "the hub is unreachable (HF_HUB_OFFLINE is set)" in result.stdout, result.stdout
    assert "Retrying" not in result.stderr


def test_cached_weights_load_without_network(tmp_path):
    import timm
    from safetensors.torch import save_file

    model = timm.create_model("vit_tiny_patch16_224", pretrained=False)
    repo = tmp_path / "hf" / "hub" / ("models--" + REPO.replace("/", "--"))
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(snapshot / "model.safetensors"))
    result = run_offline(tmp_path / "hf")
    assert result.stdout.startswith(f"loaded hub:{REPO}"), result.stdout + result.stderr
    assert "Retrying" not in result.stderr
    assert seconds(result) < 10, "no network attempts before the cache"
