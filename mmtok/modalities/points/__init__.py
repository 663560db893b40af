"""Point clouds: readers (``readers.py``, ``mesh.py``) and the grouping tokenizer."""

from .tokenizer import PointsConfig, PointsTokenizer

__all__ = ["PointsConfig", "PointsTokenizer"]
