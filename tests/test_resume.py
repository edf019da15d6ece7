"""Runs killed with SIGKILL (mid-training and mid-save) and relaunched end bit for bit as the
uninterrupted run: the same parameters and the same evaluations (timings aside).

Each launch is a subprocess (``tests/resume_worker.py``); relaunches share a persistent
compilation cache, as a relaunched experiment does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("resume_worker.py")


def _command(ckpt: Path, out: Path, options: list[str]) -> list[str]:
    return [sys.executable, "-u", str(WORKER), str(ckpt), str(out), *options]


def _env(cache: Path) -> dict:
    return {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}


def _kill_at_random(command: list[str], env: dict, rng: np.random.Generator) -> bool:
    """Launches, waits for the first evaluation after training began, kills at a random moment
    within the next second; True if the process was killed (not already finished)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for line in proc.stdout:
        if line.startswith(b"evaluated") and int(line.split()[1]) > 0:
            break
    time.sleep(rng.uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stdout.close()
    return proc.returncode == -signal.SIGKILL


def _faulted_run(tmp: Path, options: list[str], faults: list[str], seed: int) -> dict:
    ckpt, out, env = tmp / "ckpt", tmp / "faulted.npz", _env(tmp / "cache")
    rng = np.random.default_rng(seed)
    random_kills = 0
    for fault in faults:
        command = _command(ckpt, out, options)
        if fault == "random":
            random_kills += _kill_at_random(command, env, rng)
            continue
        done = subprocess.run([*command, f"--{fault}", "2"], env=env, capture_output=True)
        assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
        # The save was cut short: its temporary folder is there, and it is not a step.
        assert list(ckpt.glob("*.orbax-checkpoint-tmp*")), sorted(p.name for p in ckpt.iterdir())
    assert random_kills >= min(1, faults.count("random")), "no random kill landed mid-run"
    done = subprocess.run(command, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return dict(np.load(out))


def _uninterrupted_run(tmp: Path, options: list[str]) -> dict:
    out = tmp / "reference.npz"
    done = subprocess.run(
        _command(tmp / "reference", out, options), env=_env(tmp / "cache"), capture_output=True
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return dict(np.load(out))


def _assert_identical(faulted: dict, reference: dict) -> None:
    assert sorted(faulted) == sorted(reference)
    different = [k for k in reference if not np.array_equal(faulted[k], reference[k], True)]
    assert not different, different[:10]
    assert any(k.startswith("params/") for k in reference)
    assert len(reference["steps"]) > 3  # the whole history, replayed evaluations included


@pytest.mark.parametrize(
    "options, faults",
    [
        # The grid world as one vmapped program of 3 runs (an α sweep). Each kind of fault is
        # planted once; every launch costs some 8-10 s (imports, tracing, the saves), so the
        # random kill is the SAC case's, whose replay makes a mid-run kill the harder one.
        (["--family", "gridworld", "--runs", "3"], ["kill-in-commit"]),
        (["--family", "point_mass"], ["kill-after-save", "random"]),
    ],
    ids=["gridworld-3-runs-sweep", "point-mass-sac"],
)
def test_killed_and_relaunched_run_ends_bit_for_bit_as_the_uninterrupted_one(
    tmp_path, options, faults
):
    reference = _uninterrupted_run(tmp_path, options)
    faulted = _faulted_run(tmp_path, options, faults, seed=len(faults))
    _assert_identical(faulted, reference)
