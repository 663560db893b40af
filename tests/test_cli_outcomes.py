"""Every outcome of a command can be told apart by a script (issue 20): a failing --json run
prints a JSON object, and a closed stdout (`mmtok predict ... | head`) ends quietly with 141."""

import json
import subprocess
import sys

import pytest
from featurestores import gaussian_classes, write_feature_store
from pyrun import subprocess_env


@pytest.mark.parametrize("command", [
    ("tokenize", "{missing}", "-o", "{out}", "--json", "--no-progress"),
    ("embed", "{missing}", "-o", "{out}", "--json", "--no-progress"),
    ("info", "{missing}", "--json"),
    ("validate", "{missing}", "--json"),
    ("train-head", "{missing}", "-o", "{out}", "--json", "--no-progress"),
])
def test_a_failing_json_run_prints_a_json_error(tmp_path, cli, command):
    args = [a.format(missing=tmp_path / "nosuch", out=tmp_path / "out") for a in command]
    result = cli(*args)
    assert result.exit_code != 0
    report = json.loads(result.stdout)
    assert report["status"] == "error"
    assert report["exit_code"] == result.exit_code
    assert report["message"] and report["message"].splitlines()[0] in result.stderr


def test_a_failing_run_without_json_prints_nothing_on_stdout(tmp_path, cli):
    result = cli("info", tmp_path / "nosuch")
    assert result.exit_code == 2 and result.stdout == ""


@pytest.fixture(scope="module")
def head_and_features(tmp_path_factory):
    import mmtok

    folder = tmp_path_factory.mktemp("pipe")
    features, labels = gaussian_classes(3000, 4, 2, 3.0, seed=0)
    write_feature_store(folder / "f.zarr", features, labels, shard_size=1024)
    mmtok.train_head(folder / "f.zarr", folder / "head", progress=False, device="cpu", l2=1e-3)
    return folder


def test_predict_into_a_closed_pipe_exits_141_quietly(head_and_features):
    folder = head_and_features
    process = subprocess.Popen(
        [sys.executable, "-m", "mmtok", "predict", str(folder / "head"), str(folder / "f.zarr"),
         "--device", "cpu"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env())
    first = process.stdout.readline()  # what `head -1` reads, then it closes the pipe
    process.stdout.close()
    assert process.wait(timeout=300) == 141
    assert first.startswith(b"index,")
    assert process.stderr.read() == b""


@pytest.mark.parametrize(("args", "message"), [
    (("embed", "{tokens}", "-o", "{out}", "--weights", "{missing}"),
     "--weights {missing} does not exist"),
    (("embed", "{tokens}", "-o", "{out}", "--projector", "{missing}"),
     "--projector {missing} does not exist"),
    (("embed", "{missing}", "-o", "{out}"), "{missing} does not exist"),
])
def test_embed_checks_its_files_before_importing_torch(tmp_path, args, message):
    """`embed --weights missing.safetensors` took 6 s (the timm import) to say so."""
    (tmp_path / "t.zarr").mkdir()
    values = {"tokens": tmp_path / "t.zarr", "out": tmp_path / "f.zarr",
              "missing": tmp_path / "missing.safetensors"}
    argv = [a.format(**values) for a in args]
    code = ("import sys\nfrom mmtok.cli import app\ntry:\n"
            f"    app({argv!r}, prog_name='mmtok')\n"
            "except SystemExit as exc:\n"
            "    print(exc.code, 'torch' in sys.modules, 'timm' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", code], env=subprocess_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert message.format(**values) in result.stderr


COMMANDS = ("tokenize", "embed", "export", "train-head", "predict", "modalities", "info",
            "validate", "demo")


def help_text(*args: str) -> str:
    from typer.testing import CliRunner

    from mmtok.cli import app

    result = CliRunner().invoke(app, [*args, "--help"], terminal_width=80,
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_help_reads_well_at_80_columns(command):
    """Issue 20: rich's tables wrapped descriptions to ~15 characters, cut names and
    defaults with an ellipsis and re-wrapped the epilogs' commands mid-line."""
    text = help_text(command)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "…" not in text and "<bool>" not in text and "╭" not in text
    if command == "tokenize":
        assert "--follow-external-symlinks" in text
        assert "\n    mmtok tokenize --manifest labels.csv -o t.zarr --json\n" in text
        assert "[default: folder]" in text


def test_the_command_list_is_not_cut_short():
    text = help_text()
    listed = text.split("Commands:")[1]
    assert "..." not in listed and all(f"  {c} " in listed for c in COMMANDS)
