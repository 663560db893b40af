import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers (imagefiles.py)

from mmtok.cli import app  # noqa: E402


@pytest.fixture
def cli():
    """Run the mmtok CLI in-process; returns the click Result."""
    runner = CliRunner()

    def run(*args: str, input: bytes | str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return run
