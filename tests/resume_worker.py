"""A training process for tests/test_resume.py to kill and relaunch (not collected by pytest).

    python tests/resume_worker.py CHECKPOINT_DIR OUT.npz --family gridworld --runs 1
        [--kill-in-commit K] [--kill-after-save K]

Trains a small run with checkpoints in CHECKPOINT_DIR (resuming whatever is there), prints one
line per finished jitted call, and writes the final policy parameters and every evaluation it
reported (replayed ones included) to OUT.npz. ``--kill-in-commit K`` SIGKILLs the process while
Orbax commits its K-th save of this launch (files written, step not yet renamed into place);
``--kill-after-save K`` right after the K-th save returned (the files still being written).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import jax
import jax.numpy as jnp
import numpy as np
from orbax.checkpoint._src.path import atomicity  # the commit step, for --kill-in-commit

from distral_jax import checkpoint, presets
from distral_jax.envs.gridworld import spread_goals
from distral_jax.envs.registry import make_family
from distral_jax.train import train

TIMING = ("training/sps", "training/sps_all_runs", "training/compile_time_s")

# Checkpoints every 640 steps, the two newest kept.
_SAVES = dict(checkpoint_every=640, keep_checkpoints=2)
CONFIGS = {
    "gridworld": presets.tiny(total_env_steps=4_800, eval_every=960, **_SAVES),
    # SAC: the replay buffers, target critics and temperatures resume with the rest.
    "point_mass": presets.tiny(
        learner="sac",
        variant="distral_klent_2col",
        normalize_observations=True,
        unroll_length=10,
        iterations_per_call=2,
        total_env_steps=4_800,
        eval_every=960,
        episode_length=40,
        replay_capacity=1_000,
        sac_batch_size=32,
        sac_grad_updates=2,
        sac_warmup_steps=200,
        sac_auto_temperature=True,
        **_SAVES,
    ),
}


def _kill_self() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(kill_in_commit: int | None, kill_after_save: int | None) -> None:
    saves = {"n": 0}
    original_save = checkpoint.RunCheckpoints.save

    def save(self, *args, **kwargs):
        saves["n"] += 1
        original_save(self, *args, **kwargs)
        if saves["n"] == kill_in_commit:
            # Orbax writes a step into a temporary folder, then renames it: die before that.
            atomicity.AtomicRenameTemporaryPath.finalize = lambda *a, **k: _kill_self()
            self.wait_until_finished()
        if saves["n"] == kill_after_save:
            _kill_self()

    checkpoint.RunCheckpoints.save = save


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint_dir")
    parser.add_argument("out")
    parser.add_argument("--family", choices=sorted(CONFIGS), default="gridworld")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--kill-in-commit", type=int)
    parser.add_argument("--kill-after-save", type=int)
    args = parser.parse_args()
    _arm(args.kill_in_commit, args.kill_after_save)
    if args.family == "gridworld":
        env = make_family("gridworld", layout="two_rooms", goals=spread_goals("two_rooms", 3))
    else:
        env = make_family("point_mass", num_tasks=2)
    config = CONFIGS[args.family]
    hparams = None
    if args.runs > 1:  # a sweep: each run its own α
        base = config.hyperparams()
        alphas = jnp.linspace(0.3, 0.9, args.runs, dtype=jnp.float32)
        hparams = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (args.runs,)), base)
        hparams = hparams.replace(alpha=alphas)
    history = []

    def progress(step, metrics):
        history.append((step, metrics))
        print(f"evaluated {step}", flush=True)

    _, params, _ = train(
        env,
        config,
        num_runs=args.runs,
        hparams=hparams,
        checkpoint_dir=args.checkpoint_dir,
        progress_fn=progress,
        show_progress=False,
    )
    out = {}
    for i, leaf in enumerate(jax.tree_util.tree_leaves(params)):
        out[f"params/{i}"] = np.asarray(leaf)
    out["steps"] = np.array([s for s, _ in history])
    for k, (_, metrics) in enumerate(history):
        for name, value in metrics.items():
            if name not in TIMING:
                out[f"history/{k}/{name}"] = np.asarray(value)
    np.savez(args.out, **out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
