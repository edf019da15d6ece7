"""Compile time and throughput of the continuous task families (random actions, no learning).

Each family is wrapped for training (time limit + auto-reset) and stepped as ``[tasks, envs]``
by ``batch_step`` inside one jitted ``lax.scan`` of ``--steps`` steps. Compile time (tracing
plus XLA compilation of reset and of the scan) is reported apart from steps per second, which
counts environment steps (tasks × envs × steps) over the best of ``--repeats`` timed runs.

    python benchmarks/brax_families.py --families halfcheetah_vel ant_dir --tasks 4 --envs 16

Results, 4 tasks x 16 envs, 100-step scans, CPU with 2 cores shared with other jobs (two runs;
the spread is the machine's load, not the code):

    family             backend   compile s   steps/s
    point_mass         -         1.5-3.3     1.8-4.5M
    halfcheetah_vel    spring    33-56       4.6-11k
    halfcheetah_mass   spring    28-53       6.4-8.8k
    ant_dir            spring    23-52       8.8-11k
    ant_goal           spring    44-46       11-12k

For halfcheetah_vel, the positional backend compiled in 93 s and stepped 2.4k/s, generalized
83 s and 2.1k/s.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

from distral_jax.envs.base import batch_reset, batch_step
from distral_jax.envs.registry import BRAX_FAMILIES, make_family
from distral_jax.envs.wrappers import wrap_for_training


def measure(
    name: str, num_tasks: int, num_envs: int, steps: int, repeats: int, backend: str | None
) -> dict:
    """Builds, compiles and times one family: its backend, compile seconds and steps/s."""
    kwargs = {"num_tasks": num_tasks}
    if backend is not None and name != "point_mass":
        kwargs["backend"] = backend
    family = make_family(name, **kwargs)
    env = wrap_for_training(family, episode_length=1000)
    tasks = env.tasks()

    @jax.jit
    def reset(rng):
        keys = jax.random.split(rng, (num_tasks, num_envs))
        return batch_reset(env, keys, tasks)

    @jax.jit
    def rollout(state, rng):
        def body(state, key):
            shape = (num_tasks, num_envs, env.action_size)
            action = jax.random.uniform(key, shape, jnp.float32, -1.0, 1.0)
            state = batch_step(env, state, action, tasks)
            return state, state.reward.mean()

        return jax.lax.scan(body, state, jax.random.split(rng, steps))

    rng = jax.random.PRNGKey(0)
    start = time.perf_counter()
    state = jax.block_until_ready(reset(rng))
    state, _ = jax.block_until_ready(rollout(state, rng))
    compile_s = time.perf_counter() - start

    best = float("inf")
    for i in range(repeats):
        start = time.perf_counter()
        state, _ = jax.block_until_ready(rollout(state, jax.random.PRNGKey(i + 1)))
        best = min(best, time.perf_counter() - start)
    sps = num_tasks * num_envs * steps / best
    return {"backend": getattr(family, "backend", "-"), "compile_s": compile_s, "sps": sps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    families = ["point_mass", *BRAX_FAMILIES]
    parser.add_argument("--families", nargs="+", default=families, choices=families)
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--envs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default=None, help="override each family's default backend")
    args = parser.parse_args()

    print(f"device: {jax.devices()[0].device_kind}; {args.tasks} tasks x {args.envs} envs")
    print(f"{'family':<18} {'backend':<11} {'compile s':>10} {'steps/s':>10}")
    for name in args.families:
        result = measure(name, args.tasks, args.envs, args.steps, args.repeats, args.backend)
        print(
            f"{name:<18} {result['backend']:<11} "
            f"{result['compile_s']:>10.1f} {result['sps']:>10.0f}"
        )


if __name__ == "__main__":
    main()
