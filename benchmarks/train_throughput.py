"""Training throughput of the on-device trainer (learning included) and its compile time.

    python benchmarks/train_throughput.py                        # two_rooms, 8 tasks x 32 envs
    python benchmarks/train_throughput.py --tasks 8 --envs 32 64 128 --learner a2c ppo
    python benchmarks/train_throughput.py --core mlp lstm gru     # the recurrent cores' cost

Prints one row per setting: env steps per second over the timed calls (compile excluded, the
first call after compilation included as warm-up and dropped), compile time, and the device.
Results are appended to ``benchmarks/results.md`` with ``--record``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import jax
import numpy as np

from distral_jax.configs import TrainConfig
from distral_jax.envs.gridworld import GridWorld, spread_goals
from distral_jax.trainer import Trainer


def measure(
    tasks: int,
    envs: int,
    variant: str,
    learner: str,
    unroll: int,
    iters: int,
    calls: int,
    hidden: tuple[int, ...] = (64,),
    core: str = "mlp",
) -> dict:
    env = GridWorld("two_rooms", goals=spread_goals("two_rooms", tasks))
    config = TrainConfig(
        variant=variant,
        learner=learner,
        num_envs=envs,
        unroll_length=unroll,
        iterations_per_call=iters,
        episode_length=50,
        ppo_minibatches=4 if envs % 4 == 0 else 1,
        hidden_sizes=hidden,
        core=core,
    )
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    hp = jax.tree_util.tree_map(lambda x: x[None], config.hyperparams())
    state, run, _, compile_time = trainer.compile(keys, hp)
    state, m = run(state)  # warm-up
    jax.block_until_ready(m)
    start = time.perf_counter()
    for _ in range(calls):
        state, m = run(state)
    jax.block_until_ready(m)
    elapsed = time.perf_counter() - start
    steps = calls * trainer.env_steps_per_iteration * iters
    return {
        "tasks": tasks,
        "envs": envs,
        "variant": variant,
        "learner": learner,
        "core": core,
        "sps": steps / elapsed,
        "compile_s": compile_time,
        "finite": bool(np.all(np.isfinite(np.asarray(m["loss"])))),
    }


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--tasks", type=int, nargs="+", default=[8])
    p.add_argument("--envs", type=int, nargs="+", default=[32])
    p.add_argument("--variant", default="distral_klent_2col")
    p.add_argument("--learner", nargs="+", default=["a2c"])
    p.add_argument("--unroll-length", type=int, default=10)
    p.add_argument("--iterations-per-call", type=int, default=50)
    p.add_argument("--calls", type=int, default=5)
    p.add_argument("--hidden-sizes", type=int, nargs="+", default=[64])
    p.add_argument("--core", nargs="+", default=["mlp"], choices=["mlp", "lstm", "gru"])
    p.add_argument("--record", action="store_true", help="append rows to benchmarks/results.md")
    args = p.parse_args()
    cpu = platform.processor() or platform.machine()
    device = f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {cpu}"
    rows = []
    settings = [
        (learner, core, tasks, envs)
        for learner in args.learner
        for core in args.core
        for tasks in args.tasks
        for envs in args.envs
    ]
    for learner, core, tasks, envs in settings:
        r = measure(
            tasks,
            envs,
            args.variant,
            learner,
            args.unroll_length,
            args.iterations_per_call,
            args.calls,
            tuple(args.hidden_sizes),
            core,
        )
        line = (
            f"| train_throughput | {r['variant']} {learner} {core} | {tasks} tasks x {envs} envs, "
            f"T={args.unroll_length}, hidden {tuple(args.hidden_sizes)} | "
            f"{r['sps'] / 1e6:.2f}M steps/s | "
            f"compile {r['compile_s']:.1f} s | {device} |"
        )
        print(line, flush=True)
        rows.append(line)
    if args.record:
        with open(Path(__file__).parent / "results.md", "a") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
