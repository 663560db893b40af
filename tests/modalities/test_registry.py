"""The modality registry drives everything modality-specific outside mmtok/modalities/."""

import ast
import dataclasses
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from mmtok.modalities import (
    ModalitySpec,
    create_tokenizer,
    get_modality,
    modality_names,
    register_modality,
    registered_modalities,
)
from mmtok.modalities.image import ImageConfig, ImageTokenizer

ROOT = Path(__file__).resolve().parents[2]
SPECS = [spec for spec in registered_modalities() if spec.tokenizer.__module__.startswith("mmtok.")]


def test_a_name_registered_twice_is_an_error():
    spec = dataclasses.replace(get_modality("image"))
    with pytest.raises(ValueError, match="registered twice"):
        register_modality(spec)
    assert get_modality("image").defaults == {}  # the first registration stands


def test_a_spec_naming_unknown_config_fields_is_refused():
    with pytest.raises(TypeError, match="unknown config fields"):
        ModalitySpec(name="broken", config_class=ImageConfig, tokenizer=ImageTokenizer,
                     extensions=(), help="", projector="x:y", tiny_options={"colour": 1})


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_every_modality_names_a_projector_reading_arrays_its_tokenizer_writes(spec):
    tokenizer = create_tokenizer(spec.name, **spec.tiny_options)
    arrays = set(tokenizer.sample_arrays())
    assert spec.inputs and set(spec.inputs) <= arrays
    module_name, _, function = spec.projector.partition(":")
    assert callable(getattr(importlib.import_module(module_name), function))
    assert module_name.startswith(f"{spec.tokenizer.__module__.rpartition('.')[0]}.")
    assert (ROOT / spec.docs).is_file()


def test_tokenize_workers_do_not_import_torch():
    """Tokenizing must not pay for torch: only projectors (embed) import it."""
    code = ("import sys, mmtok.modalities as m\n"
            "for name in m.modality_names(): m.create_tokenizer(name)\n"
            "print('torch' in sys.modules)")
    assert python_prints(code) == "False"


def test_the_registry_does_not_import_a_modalitys_heavy_solvers():
    """Every tokenize (and CLI) start imports the registry: scipy.linalg is the graph
    modality's alone and comes with its first graph."""
    code = ("import sys, mmtok.modalities as m\n"
            "m.create_tokenizer('image')\n"
            "print('scipy.linalg' in sys.modules, 'scipy.sparse' in sys.modules)")
    assert python_prints(code) == "False False"


def test_importing_mmtok_leaves_pillows_decompression_bomb_guard_on():
    code = ("from PIL import Image; before = Image.MAX_IMAGE_PIXELS\n"
            "import mmtok, mmtok.modalities, mmtok.cli\n"
            "print(before is not None and Image.MAX_IMAGE_PIXELS == before)")
    assert python_prints(code) == "True"


def python_prints(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter (imports start from nothing)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    return done.stdout.strip()


def _modality_literals_compared(path: Path, names: set[str]) -> list[str]:
    """``x == "points"``, ``x in ("image", ...)``, ``{"audio": ..., "points": ...}`` style
    uses of a modality's name in one source file."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        constants = []
        if isinstance(node, ast.Compare):
            for part in (node.left, *node.comparators):
                elements = part.elts if isinstance(part, (ast.Tuple, ast.List, ast.Set)) else [part]
                constants += [e for e in elements if isinstance(e, ast.Constant)]
        elif isinstance(node, ast.Dict):  # a per-modality table has two or more such keys
            keys = [k for k in node.keys if isinstance(k, ast.Constant) and k.value in names]
            constants = keys if len(keys) > 1 else []
        found += [f"{path.relative_to(ROOT)}:{c.lineno}: {c.value!r}" for c in constants
                  if c.value in names]
    return found


def test_no_code_outside_the_modality_packages_branches_on_a_modality_name():
    # "depth" is also the encoder's block count (`metatransformer:depth=2,...`)
    names = set(modality_names()) - {"depth"}
    outside = [p for p in (ROOT / "mmtok").rglob("*.py")
               if (ROOT / "mmtok" / "modalities") not in p.parents]
    assert outside
    found = [hit for path in outside for hit in _modality_literals_compared(path, names)]
    assert found == []


def test_the_branch_detector_sees_a_branch():
    probe = ROOT / "mmtok" / "embedding" / "projectors.py"
    assert _modality_literals_compared(probe, {"source"})  # `"source" not in record`


def test_modalities_name_describes_one_modality_in_full(cli):
    result = cli("modalities", "points")
    assert result.exit_code == 0
    text = result.stdout
    for expected in ("extensions: .ply", "num_points=1024", "presets (--set preset=NAME):",
                     "point-mae: num_points=1024 num_groups=64", "centers: float32 (256, 3)",
                     "mmtok/modalities/points/projector.py", "docs/modalities/points.md"):
        assert expected in text
    assert "--device cuda: the heavy steps batched on the GPU" in text
    assert "no batched GPU path" in cli("modalities", "text").stdout
    typo = cli("modalities", "pionts")
    assert typo.exit_code == 2 and "did you mean 'points'" in typo.stderr


def test_help_and_docs_name_every_registered_modality(cli):
    help_text = " ".join(cli("tokenize", "--help").stdout.split())
    tokenize_doc = (ROOT / "docs" / "commands" / "tokenize.md").read_text()
    for spec in SPECS:
        assert spec.name in help_text
        assert f"`{spec.name}`" in tokenize_doc
