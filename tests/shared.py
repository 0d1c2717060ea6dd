"""Where the project's shared reference files are (`../shared/` next to the checkout).

Tests read MLE-bench's real data files and the offline-testing notes from there.
A checkout elsewhere can point at them with GOME_SHARED_DIR; tests that need them
skip with that reason when they cannot be found.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    candidates = [os.environ.get("GOME_SHARED_DIR"), ROOT.parent / "shared", "/work/shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "mlebench").is_dir():
            return Path(candidate)
    return None


SHARED = shared_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="the shared reference files (../shared) are not here; "
                                                         "set GOME_SHARED_DIR to their folder")


def shared(*parts: str) -> Path:
    """A path under the shared folder (a path that does not exist when the folder is missing)."""
    return (SHARED or ROOT / "missing-shared").joinpath(*parts)
