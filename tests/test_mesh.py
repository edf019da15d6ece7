"""Runs and tasks split over 8 devices (fake CPU devices, in a subprocess): the one-device
result within float tolerance, the state really split, checkpoints movable between placements."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

# Summation order over tasks differs between placements (XLA's all-reduce vs one device's
# reduction); after 32 updates the parameters agree to this.
PARAM_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def mesh_results(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mesh")
    env = {
        **os.environ,
        "XLA_FLAGS": (
            os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
        ).strip(),
        # The resumed runs compile the same programs again: served from this cache.
        "JAX_COMPILATION_CACHE_DIR": str(workdir / "cache"),
    }
    env.pop("JAX_PLATFORMS", None)
    done = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("mesh_worker.py")), str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "mesh", ["tasks_8", "runs_2_tasks_4", "features_runs_2_tasks_4", "sac_runs_2_tasks_4"]
)
def test_a_mesh_gives_the_single_device_result(mesh_results, mesh):
    """The A2C grid world on both meshes; PPO (pooled advantage scale) with observation
    normalisation, a curriculum and an LSTM core on the runs × tasks mesh; and SAC with the
    curriculum and per-task temperatures, its replay buffers split over the tasks."""
    if mesh.startswith("sac"):
        assert mesh_results[mesh]["replay_spec"][:2] == ["runs", "tasks"]
    assert mesh_results["devices"] == 8
    result = mesh_results[mesh]
    assert result["param_difference"] < PARAM_TOLERANCE
    assert result["return_difference"] < 1e-3


def test_the_state_is_really_split(mesh_results):
    specs = mesh_results["tasks_8"]["specs"]
    assert specs["task_params"] == [None, "tasks"]
    assert specs["adam_moments_task"] == [None, "tasks"]
    assert specs["adam_counts_task"] == [None, "tasks"]  # a step count per task, split too
    assert specs["env_state"] == [None, "tasks"]
    assert specs["prior_params"] == [None]  # θ_0 replicated over tasks
    specs = mesh_results["runs_2_tasks_4"]["specs"]
    assert specs["task_params"] == ["runs", "tasks"]
    assert specs["prior_params"] == ["runs"]
    assert specs["obs_stats"] == ["runs"]
    assert specs["key"] == ["runs"]
    assert mesh_results["runs_2_tasks_4"]["addressable_shards"] == 8
    for name in ("tasks_8", "runs_2_tasks_4"):  # the trained parameters are placed so
        trained, specs = mesh_results[name]["trained_specs"], mesh_results[name]["specs"]
        assert trained == {k: specs[k] for k in trained}, name


@pytest.mark.parametrize("order", ["sharded_then_single", "single_then_sharded"])
def test_a_checkpoint_moves_between_placements(mesh_results, order):
    assert mesh_results[order]["param_difference"] < PARAM_TOLERANCE


def test_meshes_that_do_not_divide_runs_or_tasks_are_refused(mesh_results):
    errors = mesh_results["errors"]
    assert "'tasks' has 3 devices, which does not divide num_tasks=8" in errors["tasks_3"]
    assert "'runs' has 4 devices, which does not divide num_runs=2" in errors["runs_4"]
