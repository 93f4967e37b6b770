"""The generator tests import `benchmarks`, a top-level folder that is not an installed package: make it importable
from the project root, wherever pytest is started (pyproject's pytest options set no pythonpath)."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[3])
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
