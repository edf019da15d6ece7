"""The trainer: the training state and the jitted programs (acting -> learner), device-placed.

One iteration, in one compiled program (``Trainer.iteration``)::

    policy params, env states [N, E]
      -> acting.rollout: lax.scan of T steps, all tasks × envs by vmap   -> Transition [N, E, T]
      -> learner.update (A2C or PPO): Distral losses vmapped over E, N  -> new params
      -> per-task metrics [N]

``Trainer`` exposes the pure pieces (``init``, ``run``, ``evaluate``) so that a caller can
``vmap`` whole runs over seeds or hyperparameters, and ``compile`` places them on devices (one,
or a mesh: ``distral_jax.sharding``). The host loop around them is ``distral_jax.train.train``.
The complete state of a run is one pytree (``TrainState``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct
from jax.sharding import Mesh

from distral_jax import acting, replay, sharding
from distral_jax.acting import PolicyParams, Transition
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.envs.base import State, TaskFamily, batch_reset
from distral_jax.envs.checks import check_family
from distral_jax.envs.wrappers import wrap_for_training
from distral_jax.learners import make_learner, make_optimizer
from distral_jax.learners.base import Metrics
from distral_jax.networks import CoreState, DistralParams, make_networks
from distral_jax.normalization import RunningStats

# ``Trainer.init`` runs once per launch: its program is compiled without LLVM optimisation,
# which halves its compile time (10 s -> 4.3 s for a Brax family on CPU) at no cost that shows.
INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}
# Options for the ``run`` program's compilation (none: XLA's defaults, or what XLA_FLAGS set).
# The test suite lowers LLVM's optimisation for the whole process, since compilation dominates
# most tests; tests whose running time dominates restore it here for ``run`` alone.
RUN_COMPILER_OPTIONS: dict[str, Any] = {}


@struct.dataclass
class TrainState:
    """Everything a run needs to continue exactly: one pytree.

    Attributes:
      params: all network parameters (θ_0, stacked θ_i, stacked values).
      opt_state: optimiser state.
      learner_state: what the learner carries between updates (``Learner.init_state``; PPO:
        the last rollout's advantage statistics; ``()`` for A2C).
      hparams: traced numeric hyperparameters.
      obs_stats: running observation statistics (unused when normalisation is off).
      env_state: environment states ``[N, E]``.
      core_state: the networks' recurrent state ``[N, E]`` (no leaves for the MLP core).
      tasks: task parameters, leading axis N.
      key: PRNG key.
      iteration: number of updates done.
    """

    params: DistralParams
    opt_state: optax.OptState
    learner_state: Any
    hparams: Hyperparams
    obs_stats: RunningStats
    env_state: State
    core_state: CoreState
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


def runs_hparams(config: TrainConfig, hparams: Hyperparams | None, num_runs: int) -> Hyperparams:
    """Hyperparameters with a leading ``[num_runs]`` axis: ``hparams`` (default: the config's),
    broadcast when its leaves are scalars."""
    hparams = config.hyperparams() if hparams is None else hparams
    if np.ndim(hparams.alpha) == 0:  # the same hyperparameters for every run
        hparams = jax.tree_util.tree_map(lambda x: np.broadcast_to(x, (num_runs,)), hparams)
    return hparams


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
        if config.task_start_steps and len(config.task_start_steps) != env.num_tasks:
            raise ValueError(
                f"`task_start_steps` must have one entry per task ({env.num_tasks}), got "
                f"{len(config.task_start_steps)}"
            )
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

    def task_weights(self, iteration: jax.Array) -> jax.Array | None:
        """``[N]`` 1 for the tasks in the objective at this update (``config.task_start_steps``,
        counted in env steps of all tasks before it), 0 for the others; None without a
        curriculum."""
        if not self.config.task_start_steps:
            return None
        per_iteration = self.env_steps_per_iteration
        # The first update with at least that many steps before it (in updates: no int32
        # overflow of env steps on long runs).
        first = jnp.asarray([-(-t // per_iteration) for t in self.config.task_start_steps])
        return (iteration >= first).astype(jnp.float32)

    def init(self, key: jax.Array, hparams: Hyperparams | None = None) -> TrainState:
        """A fresh training state (vmap over ``key``/``hparams`` for many runs at once)."""
        hparams = self.config.hyperparams() if hparams is None else hparams
        k_params, k_env, k_run = jax.random.split(key, 3)
        params = self.networks.init(k_params)
        env_keys = jax.random.split(k_env, (self.num_tasks, self.config.num_envs))
        tasks = self.family.tasks()
        return TrainState(
            params=params,
            opt_state=self.learner.init_opt_state(params),
            learner_state=self.learner.init_state(self.num_tasks, params),
            hparams=hparams,
            obs_stats=RunningStats.create(self.family.observation_shape),
            env_state=batch_reset(self.env, env_keys, tasks),
            core_state=self.networks.initial_state((self.num_tasks, self.config.num_envs)),
            tasks=tasks,
            key=k_run,
            iteration=jnp.zeros((), jnp.int32),
        )

    def rollout(self, state: TrainState, key: jax.Array) -> tuple[State, CoreState, Transition]:
        """``acting.rollout`` of the task policies from ``state``: ``(env_state [N, E],
        core_state [N, E], trajectories [N, E, T])``."""
        acts_randomly = getattr(self.learner, "acts_randomly", None)
        return acting.rollout(
            self.env,
            self.networks,
            state.policy_params,
            state.env_state,
            state.core_state,
            state.tasks,
            key,
            self.config.unroll_length,
            random_actions=None if acts_randomly is None else acts_randomly(state.learner_state),
        )

    def iteration(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """One rollout and one learner update; per-task metrics ``[N]``."""
        key, rollout_key, update_key = jax.random.split(state.key, 3)
        env_state, core_state, traj = self.rollout(state, rollout_key)
        # The update sees the statistics the rollout acted with (PPO's ratios start at 1); the
        # new observations are folded in for the next rollout.
        task_weights = self.task_weights(state.iteration)
        out = self.learner.update(
            state.params,
            state.opt_state,
            state.hparams,
            state.obs_stats,
            traj,
            update_key,
            task_weights,
            state.learner_state,
        )
        new_state = state.replace(
            params=out.params,
            opt_state=out.opt_state,
            learner_state=out.learner_state,
            obs_stats=self.update_obs_stats(state.obs_stats, traj.obs, task_weights),
            env_state=env_state,
            core_state=core_state,
            key=key,
            iteration=state.iteration + 1,
        )
        return new_state, {**out.metrics, **episode_sums(traj)}

    def update_obs_stats(
        self, obs_stats: RunningStats, obs: jax.Array, task_weights: jax.Array | None
    ) -> RunningStats:
        """The statistics after a rollout's observations ``[N, E, T, ...]``.

        Only tasks in the objective are folded in: a task of weight 0 (not yet started) moves
        nothing. With ``freeze_prior`` they stay as they are, because the frozen π_0 reads its
        inputs through them and must act exactly as it did (``train(..., initial_obs_stats=)``
        gives its donor's).
        """
        if not self.config.normalize_observations or self.config.freeze_prior:
            return obs_stats
        return obs_stats.update(obs, task_weights)

    def run(self, state: TrainState) -> tuple[TrainState, Metrics]:
        """``config.iterations_per_call`` iterations; per-task metrics ``[N]`` for the chunk.

        Besides the chunk's metrics, ``first_nonfinite_update`` (a scalar) is the index within
        the chunk of the first update after which a parameter, optimiser moment or observation
        statistic (or the learner's state) was NaN or infinite, -1 if none.
        """

        def step(s, _):
            s, metrics = self.iteration(s)
            learned_state = getattr(self.learner, "learned_state", lambda x: x)
            learned = (s.params, s.opt_state, learned_state(s.learner_state), s.obs_stats)
            finite = jnp.all(
                jnp.stack(
                    [
                        jnp.all(jnp.isfinite(x))
                        for x in jax.tree_util.tree_leaves(learned)
                        if jnp.issubdtype(x.dtype, jnp.floating)
                    ]
                )
            )
            return s, (metrics, finite)

        state, (per_iteration, finite) = jax.lax.scan(
            step, state, None, length=self.config.iterations_per_call
        )
        metrics = chunk_metrics(per_iteration)
        metrics["first_nonfinite_update"] = jnp.where(jnp.all(finite), -1, jnp.argmin(finite))
        return state, metrics

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

    def state_shardings(self, state: TrainState, mesh: Mesh) -> TrainState:
        """Shardings of a (possibly abstract) state ``[runs, ...]``; see ``distral_jax.sharding``.

        The per-task parameter subtrees are those of ``DistralParams`` (θ_i and the values,
        unless one network serves every task); optimiser states hold copies of that structure
        (Adam's moments), which are split the same way.
        """
        per_task_params = not self.networks.shared

        def params_sharding(params: DistralParams) -> DistralParams:
            return DistralParams(
                prior=sharding.tree_sharding(mesh, params.prior, per_task=False),
                task=sharding.tree_sharding(mesh, params.task, per_task_params),
                value=sharding.tree_sharding(mesh, params.value, per_task_params),
            )

        is_params = lambda x: isinstance(x, DistralParams)
        opt_state = jax.tree_util.tree_map(
            lambda x: params_sharding(x) if is_params(x) else sharding.leaf_sharding(mesh, False),
            state.opt_state,
            is_leaf=is_params,
        )
        per_run = lambda tree: sharding.tree_sharding(mesh, tree, per_task=False)
        # Small per-task summaries at most (PPO's [N] mean squares): replicated; an off-policy
        # learner's buffers are split over the tasks.
        learner_shardings = getattr(self.learner, "state_shardings", None)
        if learner_shardings is None:
            learner_state = per_run(state.learner_state)
        else:
            learner_state = learner_shardings(mesh, state.learner_state, per_task_params)
        return TrainState(
            params=params_sharding(state.params),
            opt_state=opt_state,
            learner_state=learner_state,
            hparams=per_run(state.hparams),
            obs_stats=per_run(state.obs_stats),
            env_state=sharding.tree_sharding(mesh, state.env_state, per_task=True),
            core_state=sharding.tree_sharding(mesh, state.core_state, per_task=True),
            tasks=sharding.tree_sharding(mesh, state.tasks, per_task=True),
            key=per_run(state.key),
            iteration=per_run(state.iteration),
        )

    def check_hparams(self, hparams: Hyperparams) -> None:
        """Refuses hyperparameters these networks cannot honour: a variant without π_0
        (``a3c``, ``a3c_multitask``: ``networks.uses_prior`` False) never evaluates h_θ0, so
        α and the distillation weight must be 0 in every run."""
        if self.networks.uses_prior:
            return
        for name in ("alpha", "distill_coef"):
            values = np.asarray(jax.device_get(getattr(hparams, name)))
            if np.any(values != 0):
                raise ValueError(
                    f"`hparams.{name}` must be 0 for variant {self.config.variant!r}, which has "
                    f"no π_0 (α = 0, no distillation); got {values.tolist()}. Use a Distral "
                    "variant, or variant='custom' with distill=True, to weigh π_0."
                )

    def check_memory(self, num_runs: int, mesh: Mesh | None = None) -> None:
        """Refuses, before compiling, an off-policy learner's replay that cannot fit in the
        devices' memory (``replay.check_replay_fits``: named fields, the bytes it needs)."""
        if self.config.learner != "sac":
            return
        devices = list(mesh.devices.flat) if mesh is not None else [jax.devices()[0]]
        replay.check_replay_fits(
            num_runs,
            self.num_tasks,
            self.config.replay_capacity,
            self.learner.transition_bytes,
            devices,
        )

    def compile(
        self, keys: jax.Array, hparams: Hyperparams, mesh: Mesh | None = None
    ) -> CompiledRun:
        """Initial states of ``len(keys)`` runs and their AOT-compiled ``run``/``evaluate``.

        ``run`` donates the state it is given (its buffers are reused for the new state).

        The three programs are traced one after the other (Python) but compiled concurrently
        (XLA releases the interpreter), so that one is traced while another compiles; ``init``,
        which runs once, is compiled without LLVM optimisation (``INIT_COMPILER_OPTIONS``).

        Args:
          keys: ``[runs, 2]`` PRNG keys, one per run.
          hparams: hyperparameters with a leading ``[runs]`` axis.
          mesh: devices to split runs and tasks over (axis names ``"runs"``/``"tasks"``,
            checked by ``sharding.check_mesh``); ``None``: JAX's default device.
        """
        self.check_hparams(hparams)
        self.check_memory(len(keys), mesh)
        start = time.perf_counter()
        init = jax.vmap(self.init)
        run, evaluate = jax.vmap(self.run), jax.vmap(self.evaluate)
        if mesh is None:
            init = jax.jit(init)
            run = jax.jit(run, donate_argnums=0)
            evaluate = jax.jit(evaluate)
        else:
            # Host values: in a multi-process job every process passes the same ones, and jit
            # reads numpy inputs as global values (a process's device arrays are local).
            keys, hparams = jax.device_get((keys, hparams))
            mesh = sharding.auto_axes(mesh)
            shardings = self.state_shardings(jax.eval_shape(init, keys, hparams), mesh)
            metrics = sharding.replicated(mesh)
            init = jax.jit(init, out_shardings=shardings)
            run = jax.jit(
                run, in_shardings=(shardings,), out_shardings=(shardings, metrics), donate_argnums=0
            )
            key_sharding = sharding.leaf_sharding(mesh, per_task=False)
            evaluate = jax.jit(
                evaluate, in_shardings=(shardings, key_sharding), out_shardings=metrics
            )
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="compile") as pool:
            traced_init = init.trace(keys, hparams)
            compiled_init = pool.submit(
                traced_init.lower().compile, compiler_options=INIT_COMPILER_OPTIONS
            )
            abstract_state = traced_init.out_info
            compiled_run = pool.submit(
                run.lower(abstract_state).compile, compiler_options=RUN_COMPILER_OPTIONS or None
            )
            compiled_evaluate = pool.submit(evaluate.lower(abstract_state, keys).compile)
            state = compiled_init.result()(keys, hparams)
            run, evaluate = compiled_run.result(), compiled_evaluate.result()
        jax.block_until_ready(state)
        return CompiledRun(state, run, evaluate, time.perf_counter() - start)
