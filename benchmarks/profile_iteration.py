"""Where one training iteration's time goes, part by part, for the standing cases (``CASES``).

    python benchmarks/profile_iteration.py                      # every case
    python benchmarks/profile_iteration.py --cases cartpole_a3c_ppo --repeats 5

Each part is its own jitted program over the same state, vmapped over ``--runs`` seeds as
``Trainer.compile`` does, and timed after compilation (best of ``--repeats`` calls of
``--iterations`` applications each, ``lax.scan``-ed so that dispatch does not count):

  * ``env``: the wrapped family alone (time limit, auto-reset) stepped T times, fixed actions;
  * ``rollout``: ``Trainer.rollout``: the environment plus the task policies and sampling;
  * ``targets``: the learner's values and returns/advantages of one rollout (PPO only);
  * ``update``: ``learner.update`` on one stored rollout (targets included);
  * ``iteration``: ``Trainer.iteration``: rollout + update + observation statistics;
  * ``run``: ``Trainer.run`` per iteration: the iteration plus the per-update finite checks
    and the chunk's metrics;
  * ``evaluate``: one evaluation (``Trainer.evaluate``), per call, not per iteration.

``iteration − rollout − update`` is the glue; ``run − iteration`` the per-update bookkeeping.
Prints a table (milliseconds per iteration and env steps per second) and writes the rows to
``--out`` as JSON. benchmarks/README.md keeps the figures and what was changed because of them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp

from distral_jax.configs import TrainConfig
from distral_jax.envs.base import TaskFamily, batch_step
from distral_jax.envs.gymnax_tasks import GymnaxFamily
from distral_jax.trainer import Trainer, runs_hparams

sys.path.insert(0, str(Path(__file__).parent))
import brax_sac  # noqa: E402
import compare  # noqa: E402
import peers  # noqa: E402


def _quick_family(name: str, variant: str, learner: str) -> tuple[TaskFamily, TrainConfig]:
    """A family of ``compare.py --quick`` with its settings there."""
    (family,) = [f for f in compare.PROFILES["quick"].families if f.name == name]
    config = family.config.replace(
        num_envs=family.envs,
        iterations_per_call=family.iterations,
        variant=variant,
        learner=learner,
    )
    return compare.make_family(name, family.tasks), config


def _peer_case(env_id: str) -> tuple[GymnaxFamily, TrainConfig]:
    """One task at rejax's (PureJaxRL's) settings for ``env_id``, as ``peers.py`` trains it."""
    config = peers.matched_config(env_id, 500_000).replace(iterations_per_call=10)
    return GymnaxFamily(env_id, num_tasks=1), config


def _sac_case() -> tuple[TaskFamily, TrainConfig]:
    """One task of ``halfcheetah_vel`` at ``compare.py --quick``'s SAC settings (its Brax row)."""
    settings = compare.PROFILES["quick"].sac
    env = compare.make_family(compare.SAC_FAMILY, 1)
    config = brax_sac.trainer_config(settings, env.action_size)
    return env, config.replace(iterations_per_call=20)


CASES = {
    "cartpole_a3c_ppo": lambda: _peer_case("CartPole-v1"),
    "pendulum_a3c_ppo": lambda: _peer_case("Pendulum-v1"),  # the continuous peer row (lr 1e-3)
    "halfcheetah_distral_ppo": lambda: _quick_family(
        "halfcheetah_vel", "distral_klent_2col", "ppo"
    ),
    "gridworld_distral_a2c": lambda: _quick_family("gridworld", "distral_klent_2col", "a2c"),
    "halfcheetah_a3c_sac": _sac_case,
}


def _timed(fn, *args, repeats: int) -> tuple[float, float]:
    """(compile seconds, best seconds per call) of a jitted ``fn(*args)``."""
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    compile_s = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return compile_s, best


def profile(name: str, runs: int, iterations: int, repeats: int) -> list[dict]:
    env, config = CASES[name]()
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(0), runs)
    hparams = runs_hparams(config, None, runs)
    state = jax.jit(jax.vmap(trainer.init))(keys, hparams)
    steps_per_iteration = trainer.env_steps_per_iteration * runs

    def repeat(one):
        """``iterations`` applications of ``one(state) -> (state, aux)``; the auxiliary outputs
        are returned, so that what a part computes is not dead code to XLA."""
        return lambda s: jax.lax.scan(lambda c, _: one(c), s, None, length=iterations)

    def live(tree) -> jax.Array:
        return sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree_util.tree_leaves(tree))

    def env_only(s):
        shape = (trainer.num_tasks, config.num_envs) + (() if env.discrete else (env.action_size,))
        action = jnp.zeros(shape, jnp.int32 if env.discrete else jnp.float32)

        def body(env_state, _):
            return batch_step(trainer.env, env_state, action, s.tasks), None

        env_state = jax.lax.scan(body, s.env_state, None, length=config.unroll_length)[0]
        return s.replace(env_state=env_state), live(env_state.obs)

    def rollout_only(s):
        key, k = jax.random.split(s.key)
        env_state, core_state, traj = trainer.rollout(s, k)
        return s.replace(env_state=env_state, core_state=core_state, key=key), live(traj)

    stored = jax.jit(jax.vmap(lambda s: trainer.rollout(s, s.key)[2]))(state)

    def update_only(s, traj):
        out = trainer.learner.update(
            s.params,
            s.opt_state,
            s.hparams,
            s.obs_stats,
            traj,
            s.key,
            trainer.task_weights(s.iteration),
            s.learner_state,
        )
        new = s.replace(params=out.params, opt_state=out.opt_state, learner_state=out.learner_state)
        return new, live(out.metrics)

    def targets_only(s, traj):
        return s, live(trainer.learner.targets(s.params, s.hparams, s.obs_stats, traj))

    def iteration(s):
        s, metrics = trainer.iteration(s)
        return s, live(metrics)

    with_stored = lambda part: jax.vmap(lambda s, traj: repeat(lambda c: part(c, traj))(s))
    parts = {
        "env": lambda s, _: jax.vmap(repeat(env_only))(s),
        "rollout": lambda s, _: jax.vmap(repeat(rollout_only))(s),
        "update": with_stored(update_only),
        "iteration": lambda s, _: jax.vmap(repeat(iteration))(s),
    }
    if config.learner == "ppo":
        parts["targets"] = with_stored(targets_only)
    rows = []
    for part, fn in parts.items():
        compile_s, seconds = _timed(fn, state, stored, repeats=repeats)
        rows.append(_row(name, part, compile_s, seconds / iterations, steps_per_iteration))
    run = jax.vmap(trainer.run)  # config.iterations_per_call updates
    compile_s, seconds = _timed(run, state, repeats=repeats)
    rows.append(
        _row(name, "run", compile_s, seconds / config.iterations_per_call, steps_per_iteration)
    )
    evaluate = jax.vmap(trainer.evaluate)
    compile_s, seconds = _timed(evaluate, state, keys, repeats=repeats)
    rows.append(_row(name, "evaluate (per call)", compile_s, seconds, None))
    return rows


def _row(case: str, part: str, compile_s: float, seconds: float, steps: int | None) -> dict:
    row = {"case": case, "part": part, "ms": 1e3 * seconds, "compile_s": compile_s}
    if steps is not None:
        row["env_steps_per_s"] = steps / seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--runs", type=int, default=4, help="seeds vmapped in each program")
    parser.add_argument("--iterations", type=int, default=10, help="iterations per timed call")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/profile_iteration.json")
    args = parser.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.cases:
        print(f"# {name}", flush=True)
        for row in profile(name, args.runs, args.iterations, args.repeats):
            rate = row.get("env_steps_per_s")
            rate = f"{rate:12,.0f} steps/s" if rate else ""
            print(
                f"  {row['part']:20s} {row['ms']:9.2f} ms  {rate}  compile {row['compile_s']:.1f} s"
            )
            rows.append(row)
        # After each case, so that a long run cut short keeps the cases it finished.
        record = {"jax": jax.__version__, "device": str(jax.devices()[0]), "runs": args.runs}
        out.write_text(json.dumps({**record, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
