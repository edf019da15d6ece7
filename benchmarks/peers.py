"""This trainer against a peer library at the peer's own settings: rejax's PPO on gymnax.

    python benchmarks/peers.py                       # CartPole-v1 and Pendulum-v1, 4 seeds
    python benchmarks/peers.py --envs CartPole-v1 --steps 100000

rejax (``pip install rejax==0.1.3 --no-deps``; it needs nothing this project does not have) is
a single-task PPO whose whole training loop is one jitted function, vmapped over seeds: the
closest peer to this project's one compiled program. Both run PureJaxRL's settings
(``matched_config``), this project as ``a3c`` on a one-task ``GymnaxFamily``, seeds vmapped in
one program, an evaluation at the start and at the end only. Rates are env steps per second of
all seeds together, compilation excluded (reported apart); the final return is the mean over
seeds of each library's own evaluation of its sampled policy (128 episodes each).

Differences that remain: rejax normalises advantages per minibatch and treats a truncated
episode as terminated; this project does neither (docs/maths.md §6, and a truncated step is
bootstrapped). gymnax 1.0's ``step`` returns terminated and truncated apart, rejax 0.1.3 expects
one ``done``: ``_FiveTuple`` adapts it.

``compare.py`` calls ``measure`` for its standing rows; run alone, this prints them and writes
``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.configs import TrainConfig
from distral_jax.envs.gymnax_tasks import GymnaxFamily
from distral_jax.train import train

# Pendulum needs a larger step size to learn in 500k steps; both libraries get it.
PER_ENV_LEARNING_RATE = {"Pendulum-v1": 1e-3}


def matched_config(env_id: str, steps: int) -> TrainConfig:
    """This project's ``a3c`` PPO at PureJaxRL's settings; rejax's arguments are read from it.

    16 envs × 128 steps, 4 epochs × 4 minibatches, 64×64 tanh networks, Adam at 2.5e-4 (1e-3
    for Pendulum, which needs it to learn in 500k steps; both libraries get it), ratio clip 0.2,
    gradient-norm clip 0.5, γ 0.99, λ 0.95, entropy weight 0.01 = 1/β, value weight 0.5; one
    evaluation at the start and one at the end.
    """
    family_length = GymnaxFamily(env_id, num_tasks=1).episode_length
    return TrainConfig(
        variant="a3c",
        learner="ppo",
        beta=100.0,
        num_envs=16,
        unroll_length=128,
        ppo_epochs=4,
        ppo_minibatches=4,
        learning_rate=PER_ENV_LEARNING_RATE.get(env_id, 2.5e-4),
        ppo_clip=0.2,
        max_grad_norm=0.5,
        gamma=0.99,
        lambda_=0.95,
        value_coef=0.5,
        hidden_sizes=(64, 64),
        episode_length=family_length,
        total_env_steps=steps,
        iterations_per_call=max(1, steps // (16 * 128) // 4),
        eval_every=steps,
        eval_envs=128,
    )


def measure_rejax(env_id: str, steps: int, seeds: int) -> dict:
    """rejax's PPO: ``seeds`` runs of ``steps`` env steps each, vmapped in one program."""
    import gymnax  # noqa: PLC0415
    import rejax  # noqa: PLC0415

    c = matched_config(env_id, steps)
    env, env_params = gymnax.make(env_id)
    algo = rejax.PPO.create(
        env=_FiveTuple(env),
        env_params=env_params,
        num_envs=c.num_envs,
        num_steps=c.unroll_length,
        num_epochs=c.ppo_epochs,
        num_minibatches=c.ppo_minibatches,
        learning_rate=c.learning_rate,
        clip_eps=c.ppo_clip,
        max_grad_norm=c.max_grad_norm,
        gamma=c.gamma,
        gae_lambda=c.lambda_,
        ent_coef=1.0 / c.beta,
        vf_coef=c.value_coef,
        total_timesteps=steps,
        eval_freq=steps,
        agent_kwargs={"activation": "tanh", "hidden_layer_sizes": c.hidden_sizes},
    )
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    start = time.perf_counter()
    compiled = jax.jit(jax.vmap(algo.train)).lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    _, (_, returns) = jax.block_until_ready(compiled(keys))
    seconds = time.perf_counter() - start
    final = np.asarray(returns)[:, -1].mean(axis=-1)  # [seeds, evaluations, episodes]
    return _row("rejax ppo", env_id, steps, seeds, seconds, compile_s, final)


def measure_trainer(env_id: str, steps: int, seeds: int) -> dict:
    """This project's ``a3c`` PPO at the same settings, ``seeds`` runs in one program."""
    config = matched_config(env_id, steps)
    start = time.perf_counter()
    _, _, metrics = train(
        GymnaxFamily(env_id, num_tasks=1), config, num_runs=seeds, show_progress=False
    )
    wall = time.perf_counter() - start
    compile_s = float(metrics["training/compile_time_s"])
    final = np.asarray(metrics["eval/episode_return"]).reshape(seeds, -1).mean(axis=-1)
    return _row("trainer a3c ppo", env_id, steps, seeds, wall - compile_s, compile_s, final)


def _row(method, env_id, steps, seeds, seconds, compile_s, final) -> dict:
    return {
        "method": method,
        "env": env_id,
        "steps_per_seed": steps,
        "seeds": seeds,
        "sps": steps * seeds / seconds,
        "run_s": seconds,
        "compile_s": compile_s,
        "final_return": [float(x) for x in final],
        "final_return_mean": float(np.mean(final)),
    }


def measure(env_ids, steps: int, seeds: int) -> list[dict]:
    """Rows for each environment: rejax's, then this trainer's, each in turn."""
    rows = []
    for env_id in env_ids:
        for fn in (measure_rejax, measure_trainer):
            row = fn(env_id, steps, seeds)
            print(
                f"  {row['method']:16s} {env_id:12s} {row['sps']:10,.0f} steps/s (all seeds), "
                f"compile {row['compile_s']:5.1f} s, final return {row['final_return_mean']:.1f}",
                flush=True,
            )
            rows.append(row)
    return rows


class _FiveTuple:
    """A gymnax 1.0 environment whose ``step`` returns ``(obs, state, reward, done, info)``,
    done = terminated or truncated, as rejax 0.1.3 expects."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name == "_env":  # not set yet (rejax deep-copies its config)
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", nargs="+", default=["CartPole-v1", "Pendulum-v1"])
    parser.add_argument("--steps", type=int, default=500_000, help="env steps per seed")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--out", default="benchmarks/results/peers.json")
    args = parser.parse_args()
    rows = measure(args.envs, args.steps, args.seeds)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"jax": jax.__version__, "rows": rows}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
