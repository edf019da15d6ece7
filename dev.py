#!/usr/bin/env python3
"""Set-up and entry points that need nothing but Python.

    python3 dev.py run     # first use: creates .venv and installs; then runs the main study
    python3 dev.py test    # same set-up, then the test suite

Extra arguments after the command go to the study or to pytest. The package is reinstalled
into the virtual environment when pyproject.toml changes (its hash is kept in .venv/.installed).
"""

from __future__ import annotations

import ensurepip
import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
STAMP = VENV / ".installed"
MAIN_STUDY = ["experiments/gridworld_deep.py"]


def _python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _ensure_env() -> Path:
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text().strip() == want and _python().exists():
        return _python()
    if not _python().exists():
        print(f"[dev] creating virtual environment in {VENV.name}/", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("[dev] installing distral_jax and its dependencies (first use only)", flush=True)
    # Byte-compiled at install (pip's default, half the install's time): with
    # PYTHONDONTWRITEBYTECODE set, as on some CI machines, every test subprocess would
    # otherwise compile its imports again.
    pip = [str(_python()), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    # The pip that venv installed (this Python's bundled one) must do editable installs from
    # pyproject.toml (PEP 660, pip 21.3); Python 3.10's first releases bundled 21.2.
    bundled = tuple(int(p) for p in ensurepip.version().split(".")[:2])
    if bundled < (21, 3):
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(want)
    return _python()


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        return 2
    python = str(_ensure_env())
    command, rest = argv[0], argv[1:]
    if command == "run":
        cmd = [python, *MAIN_STUDY, *rest]
    else:
        # Two workers: compilation is mostly single-threaded, so a second process keeps the
        # second core busy; each module stays on one worker, handed out in the order
        # tests/conftest.py gives (longest first), not by number of tests.
        workers = ["-n", "2", "--dist", "loadscope", "--no-loadscope-reorder"]
        cmd = [python, "-m", "pytest", "-q", *workers, *rest]
    return subprocess.run(cmd, cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
