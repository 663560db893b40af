"""The wheel a user installs holds every package of the checkout and works from outside it.

An editable install (what the other tests use) reads the checkout directly, so it hides a
package the wheel leaves out; this test builds the real wheel, installs it into a folder of
its own and runs mmtok from there, in another working directory.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _packages_in_checkout() -> set[str]:
    return {str(p.parent.relative_to(ROOT)) for p in (ROOT / "mmtok").rglob("__init__.py")}


def test_wheel_holds_every_package_and_runs_outside_the_checkout(tmp_path):
    source = tmp_path / "src"  # build a copy: an in-tree build would leave build/ behind
    shutil.copytree(ROOT / "mmtok", source / "mmtok",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps",
                    "--no-build-isolation", "-w", str(wheels), str(source)],
                   check=True, capture_output=True)
    (wheel,) = wheels.glob("mmtok-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    in_wheel = {str(Path(n).parent) for n in names if n.endswith("/__init__.py")}
    assert _packages_in_checkout() <= in_wheel, _packages_in_checkout() - in_wheel

    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    outside = tmp_path / "elsewhere"
    (outside / "data" / "cats").mkdir(parents=True)
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(outside / "data" / "cats" / "a.png")
    env = {**os.environ, "PYTHONPATH": str(target)}

    def run(*args: str) -> str:
        done = subprocess.run([sys.executable, *args], cwd=outside, env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    where = run("-c", "import mmtok, mmtok.kernels; print(mmtok.__file__)")
    assert where.startswith(str(target))
    listing = run("-m", "mmtok", "modalities")
    assert "points:" in listing and "audio:" in listing
    run("-m", "mmtok", "tokenize", "data", "-o", "t.zarr", "--set", "size=32", "--no-progress")
    assert (outside / "t.zarr" / "zarr.json").exists()
