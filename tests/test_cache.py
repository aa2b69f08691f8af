"""Where the compiled kernels are cached: a folder per version of the package's source."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cache_folder(env: dict[str, str]) -> str:
    script = "import os, sim; print(os.environ.get('NUMBA_CACHE_DIR', ''))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_compiled_code_is_cached_in_a_folder_named_after_the_source(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"} | {"XDG_CACHE_HOME": str(tmp_path)}
    for stale in range(6):  # folders of older versions of the code
        (tmp_path / "loyalty-sim" / f"old{stale}").mkdir(parents=True)
        os.utime(tmp_path / "loyalty-sim" / f"old{stale}", (stale, stale))
    folder = Path(_cache_folder(env))
    assert folder.parent == tmp_path / "loyalty-sim" and folder.is_dir()
    assert _cache_folder(env) == str(folder)  # the same code, the same folder
    kept = sorted(p.name for p in folder.parent.iterdir())
    assert len(kept) == 4 and folder.name in kept and "old5" in kept and "old0" not in kept
    assert _cache_folder(env | {"NUMBA_CACHE_DIR": str(tmp_path / "mine")}) == str(tmp_path / "mine")
