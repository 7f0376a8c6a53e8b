"""Puts the repository root on ``sys.path``, so a tool run as ``python3 misc/<tool>.py`` imports
the project's packages (``utils``, ``data_loader``, ``model``, ``trainer``, ``report``).

Python puts only the script's own folder, ``misc/``, on the path; every tool here therefore
starts with ``import repo_root`` before its project imports. The test suite puts ``misc/`` on the
path too (tests/conftest.py), so the tools also import as modules there.
"""
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
