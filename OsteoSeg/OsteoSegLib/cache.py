"""Where OsteoSeg keeps files between runs (converted models, error logs): $OSTEOSEG_CACHE, else the
user's cache folder ($XDG_CACHE_HOME or ~/.cache) / osteoseg."""

from __future__ import annotations

import os
from pathlib import Path


def cache_folder(part: str) -> Path:
    """The cache sub-folder `part` (not created here)."""
    user_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return Path(os.environ.get("OSTEOSEG_CACHE") or user_cache / "osteoseg") / part
