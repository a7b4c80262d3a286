"""Shared test setup: a kernel cache inside the checkout, and small helpers."""

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("SYMGRAD_CACHE_DIR", str(ROOT / "build" / "kernel-cache"))
