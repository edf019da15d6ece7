"""Training on a mesh of 8 (fake) CPU devices, for tests/test_mesh.py (not collected by pytest).

    XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/mesh_worker.py WORKDIR

Prints one JSON object: per mesh, the largest parameter difference from the one-device run,
the largest return difference, and the shardings of the state's leaves; the same for runs
resumed across placements (a checkpoint written sharded restored on one device and the other
way round); and the errors of meshes that do not divide the runs or tasks.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
from jax.sharding import Mesh

from distral_jax import presets, sharding
from distral_jax.envs.gridworld import spread_goals
from distral_jax.envs.registry import make_family
from distral_jax.train import train
from distral_jax.trainer import Trainer

RUNS = 2
CONFIG = presets.tiny(total_env_steps=3_840, eval_every=1_920, checkpoint_every=1_920)
# What else shares quantities across tasks: PPO's pooled advantage scale, the observation
# statistics, a curriculum (task 5 enters half-way, task 7 never) and a recurrent core. One
# epoch: a second adds nothing shared, and compiling this pair is half of the worker's time.
FEATURES = CONFIG.replace(
    learner="ppo",
    ppo_epochs=1,
    ppo_minibatches=2,
    normalize_observations=True,
    core="lstm",
    task_start_steps=(0, 0, 0, 0, 0, 1_920, 0, 10**9),
)

# SAC (discrete actions): per-task replay buffers split over the tasks, the target critics and
# per-task temperatures, with the same curriculum.
SAC = CONFIG.replace(
    learner="sac",
    replay_capacity=200,
    sac_batch_size=16,
    sac_grad_updates=2,
    sac_warmup_steps=40,
    sac_auto_temperature=True,
    task_start_steps=FEATURES.task_start_steps,
)


def _difference(a, b) -> float:
    diffs = jax.tree_util.tree_map(
        lambda x, y: float(np.max(np.abs(np.asarray(x) - np.asarray(y)))), a, b
    )
    return max(jax.tree_util.tree_leaves(diffs))


def _shardings(env, config, mesh):
    """The shardings ``Trainer.compile`` places the state with on ``mesh`` (its programs'
    in- and out-shardings), without compiling them again."""
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(0), RUNS)
    hparams = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (RUNS,)), config.hyperparams())
    abstract = jax.eval_shape(jax.vmap(trainer.init), keys, hparams)
    return trainer.state_shardings(abstract, sharding.auto_axes(mesh))


def _specs(state) -> dict[str, str]:
    """PartitionSpec of a few leaves (of a tree of shardings), by role."""
    leaf = lambda tree: jax.tree_util.tree_leaves(tree)[0]
    spec = lambda s: list(s.spec) if hasattr(s, "spec") else "single device"
    return {
        "task_params": spec(leaf(state.params.task)),
        "prior_params": spec(leaf(state.params.prior)),
        "adam_moments_task": spec(leaf(state.opt_state[1].mu.task)),
        "adam_counts_task": spec(leaf(state.opt_state[1].count.task)),
        "env_state": spec(leaf(state.env_state)),
        "obs_stats": spec(leaf(state.obs_stats)),
        "key": spec(leaf(state.key)),
    }


def main(workdir: str) -> int:
    workdir = Path(workdir)
    env = make_family("gridworld", layout="two_rooms", goals=spread_goals("two_rooms", 8))
    devices = np.array(jax.devices())
    meshes = {
        "tasks_8": jax.make_mesh((8,), ("tasks",)),  # Explicit axes: train makes them Auto
        "runs_2_tasks_4": Mesh(devices.reshape(2, 4), ("runs", "tasks")),
    }
    out: dict = {"devices": len(devices)}
    _, reference, ref_metrics = train(env, CONFIG, num_runs=RUNS, show_progress=False)
    for name, mesh in meshes.items():
        _, params, metrics = train(env, CONFIG, num_runs=RUNS, mesh=mesh, show_progress=False)
        out[name] = {
            "param_difference": _difference(params, reference),
            "return_difference": float(
                np.max(np.abs(metrics["eval/episode_return"] - ref_metrics["eval/episode_return"]))
            ),
            "specs": _specs(_shardings(env, CONFIG, mesh)),
            # Where the trained parameters really are: the shardings above, applied.
            "trained_specs": {
                "task_params": list(jax.tree_util.tree_leaves(params.params.task)[0].sharding.spec),
                "prior_params": list(
                    jax.tree_util.tree_leaves(params.params.prior)[0].sharding.spec
                ),
            },
            "addressable_shards": len(
                jax.tree_util.tree_leaves(params.params.task)[0].addressable_shards
            ),
        }
    _, features_reference, ref_metrics = train(env, FEATURES, num_runs=RUNS, show_progress=False)
    mesh = meshes["runs_2_tasks_4"]
    _, params, metrics = train(env, FEATURES, num_runs=RUNS, mesh=mesh, show_progress=False)
    out["features_runs_2_tasks_4"] = {
        "param_difference": _difference(params, features_reference),
        "return_difference": float(
            np.max(np.abs(metrics["eval/episode_return"] - ref_metrics["eval/episode_return"]))
        ),
    }
    _, sac_reference, ref_metrics = train(env, SAC, num_runs=RUNS, show_progress=False)
    _, params, metrics = train(env, SAC, num_runs=RUNS, mesh=mesh, show_progress=False)
    replay_leaf = jax.tree_util.tree_leaves(_shardings(env, SAC, mesh).learner_state.replay)[0]
    out["sac_runs_2_tasks_4"] = {
        "param_difference": _difference(params, sac_reference),
        "return_difference": float(
            np.max(np.abs(metrics["eval/episode_return"] - ref_metrics["eval/episode_return"]))
        ),
        "replay_spec": list(replay_leaf.spec),
    }
    # Half the run on one placement, the rest on another, from its checkpoint.
    half = CONFIG.replace(total_env_steps=CONFIG.total_env_steps // 2)
    mesh = meshes["runs_2_tasks_4"]
    for name, first, second in (
        ("sharded_then_single", mesh, None),
        ("single_then_sharded", None, mesh),
    ):
        directory = workdir / name
        train(env, half, num_runs=RUNS, mesh=first, checkpoint_dir=directory, show_progress=False)
        _, params, _ = train(
            env, CONFIG, num_runs=RUNS, mesh=second, checkpoint_dir=directory, show_progress=False
        )
        out[name] = {"param_difference": _difference(params, reference)}
    errors = {}
    for name, shape, axes, runs in (
        ("tasks_3", (3,), ("tasks",), 2),
        ("runs_4", (4, 2), ("runs", "tasks"), 2),
    ):
        mesh = Mesh(devices[: int(np.prod(shape))].reshape(shape), axes)
        try:
            train(env, CONFIG, num_runs=runs, mesh=mesh, show_progress=False)
            errors[name] = None
        except ValueError as error:
            errors[name] = str(error)
    out["errors"] = errors
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
