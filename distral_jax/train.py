"""The on-device Distral trainer: every task, environment and update in one compiled program.

Data flow of one iteration (DESIGN.md §2)::

    params, env states [N, E]
      -> lax.scan of T steps (policies of all tasks applied by vmap)   -> Transition [N, E, T]
      -> learner (A2C or PPO): Distral losses vmapped over E then N   -> one optax update
      -> metrics [N]

``Trainer`` exposes the pure pieces (``init``, ``run``, ``evaluate``) so that a caller can
``vmap`` whole runs over seeds or hyperparameters; ``train`` is the host loop around them, with
Brax's ``train(...) -> (make_policy, params, metrics)`` shape and ``progress_fn`` callback.
The complete state of a run is one pytree (``TrainState``), ready for checkpointing and for
sharding its leading task axis.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from distral_jax.agents.a2c import a2c_update
from distral_jax.agents.common import Transition, make_optimizer, observations
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.envs.base import State, TaskFamily, batch_reset, batch_step
from distral_jax.envs.wrappers import EpisodeLimit, wrap_for_training
from distral_jax.networks import DistralNetworks, DistralParams
from distral_jax.normalization import RunningStats

Metrics = dict[str, Any]
ProgressFn = Callable[[int, Metrics], None]


@struct.dataclass
class PolicyParams:
    """What a trained policy needs: parameters, observation statistics, hyperparameters."""

    params: DistralParams
    obs_stats: RunningStats
    hparams: Hyperparams


@struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: one pytree.

    Attributes:
      params: all network parameters (θ_0, stacked θ_i, stacked values).
      opt_state: optimiser state.
      hparams: traced numeric hyperparameters.
      obs_stats: running observation statistics (identity when normalisation is off).
      env_state: environment states ``[N, E]``.
      tasks: task parameters, leading axis N.
      key: PRNG key.
      iteration: number of updates done.
    """

    params: DistralParams
    opt_state: optax.OptState
    hparams: Hyperparams
    obs_stats: RunningStats
    env_state: State
    tasks: Any
    key: jax.Array
    iteration: jax.Array


def _success(state: State) -> jax.Array:
    """The family's ``metrics["success"]``; NaN for families that define no success."""
    if "success" in state.metrics:
        return state.metrics["success"].astype(jnp.float32)
    return jnp.full_like(state.reward, jnp.nan)


def _learner(config: TrainConfig):
    if config.learner == "ppo":
        from distral_jax.agents.ppo import ppo_update  # noqa: PLC0415 (keeps A2C imports light)

        return ppo_update
    return a2c_update


class Trainer:
    """The pure functions of a training run for one task family and one configuration.

    Args:
      env: the task family (unwrapped; time limit and auto-reset are added here).
      config: structure and budget of the run.
    """

    def __init__(self, env: TaskFamily, config: TrainConfig):
        self.config = config
        self.raw_env = env
        self.env = wrap_for_training(env, config.episode_length)
        self.eval_env = EpisodeLimit(env, config.episode_length)
        architecture, _, _, _ = config.resolved
        self.num_tasks = env.num_tasks
        self.networks = DistralNetworks(
            observation_size=env.observation_size,
            action_size=env.action_size,
            num_tasks=env.num_tasks,
            discrete=env.discrete,
            architecture=architecture,
            hidden_sizes=config.hidden_sizes,
            # Normalised one-hot vectors are no longer one-hot.
            one_hot_observations=env.one_hot_observations and not config.normalize_observations,
        )
        self.optimizer = make_optimizer(config)
        self.update = _learner(config)

    # ------------------------------------------------------------------ pure functions

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_tasks * self.config.num_envs * self.config.unroll_length

    def init(self, key: jax.Array, hparams: Hyperparams | None = None) -> TrainState:
        """A fresh training state (vmap over ``key``/``hparams`` for many runs at once)."""
        hparams = self.config.hyperparams() if hparams is None else hparams
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.networks.init(k_params)
        env_keys = jax.random.split(k_env, (self.num_tasks, self.config.num_envs))
        tasks = self.raw_env.tasks()
        return TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            hparams=hparams,
            obs_stats=RunningStats.create(self.raw_env.observation_size),
            env_state=batch_reset(self.env, env_keys, tasks),
            tasks=tasks,
            key=k_run,
            iteration=jnp.zeros((), jnp.int32),
        )

    def _observe(self, state: TrainState, obs: jax.Array) -> jax.Array:
        return observations(state.obs_stats, obs, self.config)

    def _rollout(self, state: TrainState, key: jax.Array) -> tuple[State, Transition]:
        dist = self.networks.dist
        hp = state.hparams

        def step(env_state: State, step_key: jax.Array):
            pi, _, _ = self.networks.apply(
                state.params, self._observe(state, env_state.obs), hp.column_alpha
            )
            action = dist.sample(step_key, pi)
            nxt = batch_step(self.env, env_state, dist.postprocess(action), state.tasks)
            terminated = nxt.done * (1.0 - nxt.info["truncation"])
            transition = Transition(
                obs=env_state.obs,
                action=action,
                reward=nxt.reward,
                discount=hp.gamma * (1.0 - terminated),
                done=nxt.done,
                final_obs=nxt.info["final_obs"],
                behaviour_log_prob=dist.log_prob(pi, action),
                episode_return=nxt.info["episode_return"],
                success=_success(nxt),
            )
            return nxt, transition

        keys = jax.random.split(key, self.config.unroll_length)
        env_state, traj = jax.lax.scan(step, state.env_state, keys)
        # [T, N, E, ...] -> [N, E, T, ...]: each learner works on whole trajectories.
        traj = jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 2), traj)
        return env_state, traj

    def _iteration(self, state: TrainState, _) -> tuple[TrainState, Metrics]:
        key, rollout_key, update_key = jax.random.split(state.key, 3)
        env_state, traj = self._rollout(state, rollout_key)
        # The update sees the statistics the rollout acted with (PPO's ratios start at 1); the
        # new observations are folded in for the next rollout.
        out = self.update(
            state.params,
            state.opt_state,
            self.optimizer,
            self.networks,
            state.hparams,
            state.obs_stats,
            traj,
            update_key,
            self.config,
        )
        obs_stats = state.obs_stats
        if self.config.normalize_observations:
            obs_stats = obs_stats.update(traj.obs)
        episodes = jnp.sum(traj.done, axis=(1, 2))
        metrics = dict(out.metrics)
        metrics["episode_return_sum"] = jnp.sum(traj.episode_return * traj.done, axis=(1, 2))
        metrics["success_sum"] = jnp.sum(traj.success * traj.done, axis=(1, 2))
        metrics["episodes"] = episodes
        new_state = state.replace(
            params=out.params,
            opt_state=out.opt_state,
            obs_stats=obs_stats,
            env_state=env_state,
            key=key,
            iteration=state.iteration + 1,
        )
        return new_state, metrics

    def run(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """``config.iterations_per_call`` updates; per-task metrics ``[N]`` for the chunk."""
        state, per_iter = jax.lax.scan(
            self._iteration, state, None, length=self.config.iterations_per_call
        )
        episodes = jnp.sum(per_iter.pop("episodes"), axis=0)
        return_sum = jnp.sum(per_iter.pop("episode_return_sum"), axis=0)
        success_sum = jnp.sum(per_iter.pop("success_sum"), axis=0)
        metrics = {k: jnp.mean(v, axis=0) for k, v in per_iter.items()}
        no_episodes = episodes == 0
        metrics["episode_return"] = jnp.where(
            no_episodes, jnp.nan, return_sum / jnp.maximum(episodes, 1)
        )
        metrics["success"] = jnp.where(no_episodes, jnp.nan, success_sum / jnp.maximum(episodes, 1))
        metrics["episodes"] = episodes
        return state, metrics

    def evaluate(self, state: TrainState, key: jax.Array) -> Metrics:
        """Returns of π_i and of π_0 alone, sampled and greedy, over one episode per env.

        Returns a dict of ``[N]`` arrays (mean over ``config.eval_envs`` episodes per task):
        ``episode_return`` (π_i sampled), ``episode_return_greedy``, ``pi0_episode_return``,
        ``pi0_episode_return_greedy`` and the matching ``success`` rates.
        """
        dist = self.networks.dist
        n, e = self.num_tasks, self.config.eval_envs
        # Modes: (use π_0, greedy) for the four policies evaluated.
        use_prior = jnp.array([False, False, True, True])
        greedy = jnp.array([False, True, False, True])

        def one_mode(mode_key, prior, greedy_):
            reset_key, step_key = jax.random.split(mode_key)
            env_state = batch_reset(self.eval_env, jax.random.split(reset_key, (n, e)), state.tasks)

            def step(carry, k):
                env_state, ret, success, alive = carry
                pi, pi0, _ = self.networks.apply(
                    state.params, self._observe(state, env_state.obs), state.hparams.column_alpha
                )
                p = jax.tree_util.tree_map(lambda a, b: jnp.where(prior, b, a), pi, pi0)
                action = jnp.where(greedy_, dist.mode(p), dist.sample(k, p))
                nxt = batch_step(self.eval_env, env_state, dist.postprocess(action), state.tasks)
                done_success = _success(nxt) * nxt.done
                ret = ret + alive * nxt.reward
                success = success + alive * done_success
                alive = alive * (1.0 - nxt.done)
                return (nxt, ret, success, alive), None

            zeros = jnp.zeros((n, e))
            carry = (env_state, zeros, zeros, jnp.ones((n, e)))
            keys = jax.random.split(step_key, self.config.episode_length)
            (_, ret, success, _), _ = jax.lax.scan(step, carry, keys)
            return ret.mean(axis=1), success.mean(axis=1)

        keys = jax.random.split(key, 4)
        returns, successes = jax.vmap(one_mode)(keys, use_prior, greedy)
        names = ["", "_greedy"]
        out = {}
        for m in range(4):
            prefix = "pi0_" if m >= 2 else ""
            suffix = names[m % 2]
            out[f"{prefix}episode_return{suffix}"] = returns[m]
            out[f"{prefix}success{suffix}"] = successes[m]
        return out

    def make_policy(
        self, policy_params: PolicyParams, deterministic: bool = False, prior: bool = False
    ) -> Callable[[jax.Array, jax.Array], jax.Array]:
        """Brax-style policy factory: ``policy(obs [N, ..., O], key) -> action [N, ...]``.

        Args:
          policy_params: what ``train`` returns (one run: no leading run axis).
          deterministic: act with the mode instead of sampling.
          prior: act with the distilled policy π_0 instead of the task policies.
        """
        dist = self.networks.dist

        def policy(obs: jax.Array, key: jax.Array) -> jax.Array:
            pi, pi0, _ = self.networks.apply(
                policy_params.params,
                observations(policy_params.obs_stats, obs, self.config),
                policy_params.hparams.column_alpha,
            )
            p = pi0 if prior else pi
            action = dist.mode(p) if deterministic else dist.sample(key, p)
            return dist.postprocess(action)

        return policy


def _summarise(metrics: Metrics, prefix: str) -> Metrics:
    """Host-side: numpy arrays, plus task means and worst tasks of the returns."""
    out = {}
    for name, value in metrics.items():
        value = np.asarray(value)
        out[f"{prefix}/{name}"] = value
        if "episode_return" in name or name.startswith("success"):
            with warnings.catch_warnings():  # all-NaN (no episode ended, no success defined)
                warnings.simplefilter("ignore", RuntimeWarning)
                out[f"{prefix}/{name}_mean"] = np.nanmean(value, axis=-1)
                out[f"{prefix}/{name}_worst"] = np.nanmin(value, axis=-1)
    return out


def check_finite(metrics: Metrics, step: int) -> None:
    """Stops a run whose losses went NaN/inf instead of letting it continue silently."""
    for name, value in metrics.items():
        if name.startswith("training/") and ("loss" in name or "grad_norm" in name):
            if not np.all(np.isfinite(np.asarray(value))):
                raise FloatingPointError(
                    f"non-finite {name} at env step {step}: {np.asarray(value)}. Lower the "
                    "learning rate, raise beta, or check the rewards for NaN."
                )


def train(
    env: TaskFamily,
    config: TrainConfig,
    *,
    progress_fn: ProgressFn | None = None,
    num_runs: int = 1,
    hparams: Hyperparams | None = None,
    show_progress: bool = True,
) -> tuple[Callable, DistralParams, Metrics]:
    """Trains Distral (or a baseline) on a task family; Brax's ``train`` convention.

    Args:
      env: the task family.
      config: the run's configuration; ``config.variant`` picks one of the paper's variants.
      progress_fn: called as ``progress_fn(env_steps, metrics)`` after every evaluation, with
        keys such as ``eval/episode_return`` (``[N]``, or ``[runs, N]``),
        ``eval/episode_return_mean``, ``training/sps`` (env steps per second of one run),
        ``training/sps_all_runs`` and ``training/compile_time_s``.
      num_runs: independent runs vmapped in one compiled program, each with its own PRNG key
        (split from ``config.seed``) and, when ``hparams`` has a leading axis, its own
        hyperparameters: seeds and hyperparameter sweeps cost one compilation.
      hparams: traced hyperparameters, scalar leaves or a leading ``[num_runs]`` axis; default
        from ``config``.
      show_progress: display a progress bar.
    Returns:
      ``(make_policy, policy_params, metrics)``: ``make_policy(policy_params,
      deterministic=False, prior=False)`` gives ``policy(obs [N, ..., O], key) -> action``;
      ``policy_params`` (a ``PolicyParams``) has a leading run axis if ``num_runs > 1`` (slice
      one run before ``make_policy``); ``metrics`` are those of the last evaluation.
    """
    if int(num_runs) < 1:
        raise ValueError(f"`num_runs` must be a positive integer, got {num_runs!r}")
    trainer = Trainer(env, config)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), num_runs)
    if hparams is None:
        base = config.hyperparams()
        hparams = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_runs,)), base)
    elif np.ndim(hparams.alpha) == 0:
        hparams = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_runs,)), hparams)

    state, compile_time, run, evaluate = _compile(trainer, keys, hparams)
    steps_per_call = trainer.env_steps_per_iteration * config.iterations_per_call
    num_calls = max(1, math.ceil(config.total_env_steps / steps_per_call))
    eval_every_calls = max(1, round(config.eval_every / steps_per_call))

    bar = _progress_bar(num_calls * steps_per_call, show_progress)
    eval_key = jax.random.PRNGKey(config.seed + 10_000)
    squeeze = (lambda x: x[0]) if num_runs == 1 else (lambda x: x)
    metrics: Metrics = {}
    env_steps, train_time = 0, 0.0

    def emit(step: int, training: Metrics) -> Metrics:
        nonlocal eval_key
        eval_key, k = jax.random.split(eval_key)
        eval_metrics = evaluate(state, jax.random.split(k, num_runs))
        out = _summarise(jax.tree_util.tree_map(squeeze, eval_metrics), "eval")
        out.update(training)
        out["training/env_steps"] = step
        # Per run, and for the whole program (all vmapped runs together).
        out["training/sps"] = step / max(train_time, 1e-9)
        out["training/sps_all_runs"] = num_runs * step / max(train_time, 1e-9)
        out["training/compile_time_s"] = compile_time
        if progress_fn is not None:
            progress_fn(step, out)
        return out

    metrics = emit(0, {})
    for call in range(num_calls):
        start = time.perf_counter()
        state, chunk = run(state)
        jax.block_until_ready(chunk)
        train_time += time.perf_counter() - start
        env_steps += steps_per_call
        training = _summarise(jax.tree_util.tree_map(squeeze, chunk), "training")
        check_finite(training, env_steps)
        bar.update(steps_per_call)
        if (call + 1) % eval_every_calls == 0 or call == num_calls - 1:
            metrics = emit(env_steps, training)
            bar.set_postfix(
                ret=f"{float(np.mean(metrics['eval/episode_return_mean'])):.3f}",
                sps=f"{metrics['training/sps']:.3g}",
            )
    bar.close()
    policy_params = jax.tree_util.tree_map(
        squeeze, PolicyParams(params=state.params, obs_stats=state.obs_stats, hparams=state.hparams)
    )
    return trainer.make_policy, policy_params, metrics


def _compile(trainer: Trainer, keys: jax.Array, hparams: Hyperparams):
    """Initial state and AOT-compiled run/evaluate, timing compilation on its own."""
    start = time.perf_counter()
    init = jax.jit(jax.vmap(trainer.init))
    state = init(keys, hparams)
    run = jax.jit(jax.vmap(trainer.run)).lower(state).compile()
    evaluate = jax.jit(jax.vmap(trainer.evaluate)).lower(state, keys).compile()
    jax.block_until_ready(state)
    return state, time.perf_counter() - start, run, evaluate


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="step", unit_scale=True, disable=not enabled, leave=False)
