"""The trainer: the training state, the jitted loop (acting -> learner) and the host loop.

One iteration, in one compiled program (``Trainer.iteration``)::

    policy params, env states [N, E]
      -> acting.rollout: lax.scan of T steps, all tasks × envs by vmap   -> Transition [N, E, T]
      -> learner.update (A2C or PPO): Distral losses vmapped over E, N  -> new params
      -> per-task metrics [N]

``Trainer`` exposes the pure pieces (``init``, ``run``, ``evaluate``) so that a caller can
``vmap`` whole runs over seeds or hyperparameters; ``train`` is the host loop around them, with
Brax's ``train(...) -> (make_policy, params, metrics)`` shape and ``progress_fn`` callback.
The complete state of a run is one pytree (``TrainState``).
"""

from __future__ import annotations

import functools
import math
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from distral_jax import acting
from distral_jax.acting import PolicyParams, Transition
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.envs.base import State, TaskFamily, batch_reset
from distral_jax.envs.checks import check_family
from distral_jax.envs.wrappers import wrap_for_training
from distral_jax.learners import make_learner, make_optimizer
from distral_jax.learners.base import Metrics
from distral_jax.networks import DistralParams, make_networks
from distral_jax.normalization import RunningStats

ProgressFn = Callable[[int, Metrics], None]


@struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: one pytree.

    Attributes:
      params: all network parameters (θ_0, stacked θ_i, stacked values).
      opt_state: optimiser state.
      hparams: traced numeric hyperparameters.
      obs_stats: running observation statistics (unused when normalisation is off).
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

    @property
    def policy_params(self) -> PolicyParams:
        return PolicyParams(params=self.params, obs_stats=self.obs_stats, hparams=self.hparams)


class CompiledRun(NamedTuple):
    """``Trainer.compile``'s output: the initial states and the compiled programs."""

    state: TrainState
    run: Callable[[TrainState], tuple[TrainState, Metrics]]
    evaluate: Callable[[TrainState, jax.Array], Metrics]
    compile_time_s: float


def episode_sums(traj: Transition) -> Metrics:
    """Per-task sums ``[N]`` of the episodes that ended during a rollout ``[N, E, T]``."""
    return {
        "episode_return_sum": jnp.sum(traj.episode_return * traj.done, axis=(1, 2)),
        "success_sum": jnp.sum(traj.success * traj.done, axis=(1, 2)),
        "episodes": jnp.sum(traj.done, axis=(1, 2)),
    }


def chunk_metrics(per_iteration: Metrics) -> Metrics:
    """Metrics ``[iterations, N]`` of a jitted call -> ``[N]``: means, and episode averages.

    ``episode_return`` and ``success`` average every episode that ended in the chunk (NaN for a
    task where none did); the learners' metrics are means over the iterations.
    """
    per_iteration = dict(per_iteration)
    episodes = jnp.sum(per_iteration.pop("episodes"), axis=0)
    return_sum = jnp.sum(per_iteration.pop("episode_return_sum"), axis=0)
    success_sum = jnp.sum(per_iteration.pop("success_sum"), axis=0)
    metrics = {k: jnp.mean(v, axis=0) for k, v in per_iteration.items()}
    no_episodes = episodes == 0
    per_episode = lambda total: jnp.where(no_episodes, jnp.nan, total / jnp.maximum(episodes, 1))
    metrics["episode_return"] = per_episode(return_sum)
    metrics["success"] = per_episode(success_sum)
    metrics["episodes"] = episodes
    return metrics


class Trainer:
    """The pure functions of a training run for one task family and one configuration.

    Args:
      env: the task family (unwrapped; time limit and auto-reset are added here). Its contract
        is checked first (``envs.checks.check_family``: named errors, not shape errors in jit).
      config: structure and budget of the run.
    """

    def __init__(self, env: TaskFamily, config: TrainConfig):
        check_family(env)
        self.config = config
        self.family = env
        self.env = wrap_for_training(env, config.episode_length)
        self.num_tasks = env.num_tasks
        self.networks = make_networks(env, config)
        self.optimizer = make_optimizer(config)
        self.learner = make_learner(config, self.networks, self.optimizer)

    @property
    def env_steps_per_iteration(self) -> int:
        return self.num_tasks * self.config.num_envs * self.config.unroll_length

    def init(self, key: jax.Array, hparams: Hyperparams | None = None) -> TrainState:
        """A fresh training state (vmap over ``key``/``hparams`` for many runs at once)."""
        hparams = self.config.hyperparams() if hparams is None else hparams
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.networks.init(k_params)
        env_keys = jax.random.split(k_env, (self.num_tasks, self.config.num_envs))
        tasks = self.family.tasks()
        return TrainState(
            params=params,
            opt_state=self.optimizer.init(params),
            hparams=hparams,
            obs_stats=RunningStats.create(self.family.observation_size),
            env_state=batch_reset(self.env, env_keys, tasks),
            tasks=tasks,
            key=k_run,
            iteration=jnp.zeros((), jnp.int32),
        )

    def iteration(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One rollout and one learner update; per-task metrics ``[N]``."""
        key, rollout_key, update_key = jax.random.split(state.key, 3)
        env_state, traj = acting.rollout(
            self.env,
            self.networks,
            state.policy_params,
            state.env_state,
            state.tasks,
            rollout_key,
            self.config.unroll_length,
        )
        # The update sees the statistics the rollout acted with (PPO's ratios start at 1); the
        # new observations are folded in for the next rollout.
        out = self.learner.update(
            state.params, state.opt_state, state.hparams, state.obs_stats, traj, update_key
        )
        obs_stats = state.obs_stats
        if self.config.normalize_observations:
            obs_stats = obs_stats.update(traj.obs)
        new_state = state.replace(
            params=out.params,
            opt_state=out.opt_state,
            obs_stats=obs_stats,
            env_state=env_state,
            key=key,
            iteration=state.iteration + 1,
        )
        return new_state, {**out.metrics, **episode_sums(traj)}

    def run(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """``config.iterations_per_call`` iterations; per-task metrics ``[N]`` for the chunk."""
        state, per_iteration = jax.lax.scan(
            lambda s, _: self.iteration(s), state, None, length=self.config.iterations_per_call
        )
        return state, chunk_metrics(per_iteration)

    def evaluate(self, state: TrainState, key: jax.Array) -> Metrics:
        """``acting.evaluate`` of the current policies: a dict of ``[N]`` returns and successes."""
        return acting.evaluate(
            self.family,
            self.networks,
            state.policy_params,
            state.tasks,
            key,
            self.config.eval_envs,
            self.config.episode_length,
        )

    def make_policy(
        self,
        policy_params: PolicyParams,
        deterministic: bool = False,
        prior: bool = False,
        task: int | None = None,
        with_extras: bool = False,
    ) -> acting.Policy:
        """``acting.make_policy`` with these networks: ``policy(obs [N, ..., O], key)``."""
        return acting.make_policy(
            self.networks, policy_params, deterministic, prior, task, with_extras
        )

    def compile(self, keys: jax.Array, hparams: Hyperparams) -> CompiledRun:
        """Initial states of ``len(keys)`` runs and their AOT-compiled ``run``/``evaluate``.

        Args:
          keys: ``[runs, 2]`` PRNG keys, one per run.
          hparams: hyperparameters with a leading ``[runs]`` axis.
        """
        start = time.perf_counter()
        state = jax.jit(jax.vmap(self.init))(keys, hparams)
        run = jax.jit(jax.vmap(self.run)).lower(state).compile()
        evaluate = jax.jit(jax.vmap(self.evaluate)).lower(state, keys).compile()
        jax.block_until_ready(state)
        return CompiledRun(state, run, evaluate, time.perf_counter() - start)


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
) -> tuple[Callable[..., acting.Policy], PolicyParams, Metrics]:
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
    hparams = config.hyperparams() if hparams is None else hparams
    if np.ndim(hparams.alpha) == 0:  # the same hyperparameters for every run
        hparams = jax.tree_util.tree_map(lambda x: jnp.broadcast_to(x, (num_runs,)), hparams)
    state, run, evaluate, compile_time = trainer.compile(keys, hparams)
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
        # NaN before any training (step 0): no rate has been measured yet.
        out["training/sps"] = step / train_time if train_time > 0 else float("nan")
        out["training/sps_all_runs"] = num_runs * out["training/sps"]
        out["training/compile_time_s"] = compile_time
        if progress_fn is not None:
            with bar.external_write_mode():  # what progress_fn prints stays clear of the bar
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
    policy_params = jax.tree_util.tree_map(squeeze, state.policy_params)
    return functools.partial(acting.make_policy, trainer.networks), policy_params, metrics


def _progress_bar(total: int, enabled: bool):
    from tqdm.auto import tqdm  # noqa: PLC0415

    return tqdm(total=total, unit="step", unit_scale=True, disable=not enabled, leave=False)
