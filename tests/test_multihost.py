"""Two processes, two (fake) CPU devices each, one job: the launcher under
``jax.distributed.initialize()`` splits the tasks over all four devices, process 0 writes the
metrics, both write one checkpoint, and a relaunch of both resumes it; the result matches a
one-device run within float tolerance and the checkpoint loads in a single process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from distral_jax.checkpoint import load_policy
from distral_jax.envs.gridworld import two_rooms_design

pytestmark = pytest.mark.slow

LAUNCHER = Path(__file__).resolve().parents[1] / "experiments" / "train.py"
COMMON = [
    "two_rooms", "--num-tasks", "4", "--num-envs", "4", "--unroll-length", "5",
    "--iterations-per-call", "4", "--eval-every", "640", "--eval-envs", "2",
    "--hidden-sizes", "8", "--episode-length", "20", "--checkpoint-every", "640",
    "--quiet", "--no-tensorboard",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _env(devices: int, cache: Path) -> dict:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache)}
    flags = os.environ.get("XLA_FLAGS", "")  # conftest's faster compilation
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}".strip()
    env.pop("JAX_PLATFORMS", None)
    return env


def _two_process_launch(args: list[str], cache: Path) -> None:
    port = _free_port()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(LAUNCHER),
                *args,
                "--mesh",
                "tasks=4",
                "--distributed",
                "--coordinator-address",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(rank),
            ],  # fmt: skip
            env=_env(2, cache),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_train_checkpoint_and_resume_as_one_device(tmp_path):
    cache, ckpt = tmp_path / "cache", tmp_path / "ckpt"
    job = [*COMMON, "--runs-dir", str(tmp_path / "job"), "--name", "x"]
    _two_process_launch([*job, "--total-env-steps", "640", "--checkpoint-dir", str(ckpt)], cache)
    _two_process_launch([*job, "--total-env-steps", "1280", "--checkpoint-dir", str(ckpt)], cache)
    single = [*COMMON, "--runs-dir", str(tmp_path / "one"), "--name", "x"]
    done = subprocess.run(
        [
            sys.executable,
            str(LAUNCHER),
            *single,
            "--total-env-steps",
            "1280",
            "--checkpoint-dir",
            str(tmp_path / "ckpt_one"),
        ],  # fmt: skip
        env=_env(1, cache),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    summary = json.loads((tmp_path / "job" / "x" / "summary.json").read_text())
    assert (summary["devices"], summary["processes"]) == (4, 2)
    job_lines = _lines(tmp_path / "job" / "x" / "metrics.jsonl")
    one_lines = _lines(tmp_path / "one" / "x" / "metrics.jsonl")
    assert [line["step"] for line in job_lines] == [0, 640, 1280]
    for a, b in zip(job_lines, one_lines, strict=True):
        np.testing.assert_allclose(a["eval/episode_return"], b["eval/episode_return"], atol=1e-3)

    env = two_rooms_design(4)
    _, job_params = load_policy(ckpt, env)
    _, one_params = load_policy(tmp_path / "ckpt_one", env)
    for a, b in zip(
        jax.tree_util.tree_leaves(job_params), jax.tree_util.tree_leaves(one_params), strict=True
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)
