"""The host loop: ``train`` runs a ``Trainer``'s compiled programs, evaluates, checkpoints.

``train(env, config) -> (make_policy, policy_params, metrics)`` follows Brax's convention, with
a ``progress_fn(env_steps, metrics)`` callback after every evaluation. Given a checkpoint
directory it saves the run (``distral_jax.checkpoint``) and, relaunched, resumes it exactly; given
a device mesh it splits runs and tasks over devices (``distral_jax.sharding``). Between jitted
calls it checks that losses, gradient norms, parameters, optimiser state and observation
statistics are finite, so that a diverged run stops (before it is saved) instead of continuing
silently.
"""

from __future__ import annotations

import functools
import hashlib
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from distral_jax import acting, sharding
from distral_jax.acting import PolicyParams
from distral_jax.checkpoint import HostState, RunCheckpoints, run_signature
from distral_jax.configs import Hyperparams, TrainConfig
from distral_jax.envs.base import TaskFamily
from distral_jax.learners.base import Metrics
from distral_jax.networks import DistralParams
from distral_jax.normalization import RunningStats
from distral_jax.trainer import CompiledRun, Trainer, TrainState, runs_hparams

ProgressFn = Callable[[int, Metrics], None]


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
    """Stops a run whose losses or gradients went NaN/inf instead of letting it continue.

    Raises:
      FloatingPointError: naming the metric and the env step.
    """
    for name, value in metrics.items():
        if name.startswith("training/") and ("loss" in name or "grad_norm" in name):
            if not np.all(np.isfinite(np.asarray(value))):
                raise FloatingPointError(
                    f"non-finite {name} at env step {step}: {np.asarray(value)}. " + _ADVICE
                )


def check_finite_params(first_nonfinite_update, call_start: int, steps_per_update: int) -> None:
    """Stops a run whose parameters went NaN/inf in a jitted call.

    Args:
      first_nonfinite_update: ``Trainer.run``'s metric: per run, the index of the first update
        of the call after which a parameter was not finite (-1: none).
      call_start: env steps done before the call.
      steps_per_update: env steps per update.
    Raises:
      FloatingPointError: naming the env step of the first bad update and the runs concerned.
    """
    first = np.asarray(first_nonfinite_update).reshape(-1)
    bad = np.flatnonzero(first >= 0)
    if bad.size:
        step = call_start + (int(first[bad].min()) + 1) * steps_per_update
        raise FloatingPointError(
            f"non-finite parameters, optimiser state or observation statistics after the update "
            f"ending at env step {step} (run index "
            f"{bad.tolist()}). " + _ADVICE
        )


_ADVICE = "Lower the learning rate, raise beta, or check the rewards for NaN."


def train(
    env: TaskFamily,
    config: TrainConfig,
    *,
    progress_fn: ProgressFn | None = None,
    num_runs: int = 1,
    hparams: Hyperparams | None = None,
    show_progress: bool = True,
    checkpoint_dir: str | Path | None = None,
    mesh: Mesh | None = None,
    keys: jax.Array | None = None,
    initial_params: Callable[[DistralParams], DistralParams] | None = None,
    initial_obs_stats: RunningStats | None = None,
) -> tuple[Callable[..., acting.Policy], PolicyParams, Metrics]:
    """Trains Distral (or a baseline) on a task family; Brax's ``train`` convention.

    Args:
      env: the task family.
      config: the run's configuration; ``config.variant`` picks one of the paper's variants.
      progress_fn: called as ``progress_fn(env_steps, metrics)`` after every evaluation, with
        keys such as ``eval/episode_return`` (``[N]``, or ``[runs, N]``),
        ``eval/episode_return_mean``, ``training/sps`` (env steps per second of one run),
        ``training/sps_all_runs`` and ``training/compile_time_s``. A resumed run first calls it
        again with every evaluation saved in its checkpoint, so a caller that collects curves
        gets them whole.
      num_runs: independent runs vmapped in one compiled program, each with its own PRNG key
        (split from ``config.seed``) and, when ``hparams`` has a leading axis, its own
        hyperparameters: seeds and hyperparameter sweeps cost one compilation.
      hparams: traced hyperparameters, scalar leaves or a leading ``[num_runs]`` axis; default
        from ``config``.
      show_progress: display a progress bar.
      checkpoint_dir: save the run there every ``config.checkpoint_every`` env steps and at the
        end (``config.keep_checkpoints`` kept). If it holds a checkpoint of this run (same
        config, family, runs and hyperparameters; ``total_env_steps`` may grow), training
        resumes from the latest one and ends bit for bit as the uninterrupted run would (on
        the same devices); a checkpoint of another run is an error naming what differs. A
        host-simulated family (``TaskFamily.host_simulated``) resumes parameters, optimiser,
        learner state (replay) exactly but restarts its episodes: its simulators are not saved.
      mesh: a ``jax.sharding.Mesh`` with axes ``"runs"`` and/or ``"tasks"`` that split the
        vmapped runs and the tasks (with their environments) over its devices; θ_0 is
        replicated. ``None``: one device.
      keys: ``[num_runs, 2]`` PRNG keys, one per run (network initialisation, first environment
        states, actions); default ``jax.random.split(PRNGKey(config.seed), num_runs)``. Runs
        given the same key start from the same environment states and draw the same keys,
        which pairs seeds across sweeps (``distral_jax.sweeps``); their evaluations are then
        paired too (keys from each run's key and the evaluation's index).
      initial_params: maps the freshly initialised parameters (``DistralParams`` with a leading
        ``[num_runs]`` axis) to those training starts from, e.g. a trained θ_0 for transfer
        (with ``config.freeze_prior`` it stays fixed). It must keep every leaf's shape and dtype.
      initial_obs_stats: the observation statistics to start from (a ``RunningStats``, e.g. the
        donor run's ``policy_params.obs_stats``; a leading ``[num_runs]`` axis or none, then
        shared by every run), with ``config.normalize_observations``. Needed with
        ``config.freeze_prior``: the statistics are then held fixed, because the frozen π_0
        reads its inputs through them and must act exactly as it did in its donor run.
    Returns:
      ``(make_policy, policy_params, metrics)``: ``make_policy(policy_params,
      deterministic=False, prior=False)`` gives ``policy(obs [N, ..., O], key) -> action``;
      ``policy_params`` (a ``PolicyParams``) has a leading run axis if ``num_runs > 1`` (slice
      one run before ``make_policy``); ``metrics`` are those of the last evaluation.
    Raises:
      FloatingPointError: a loss, gradient norm or parameter went NaN/inf (the message names
        the env step); the last checkpoint saved before it is kept.
      distral_jax.checkpoint.CheckpointError: ``checkpoint_dir`` holds another run's
        checkpoint, or a damaged one.
    """
    explicit_keys = keys is not None
    trainer = check_arguments(env, config, num_runs, mesh, initial_obs_stats)
    _warn_of_another_time_limit(env, config)
    _warn_of_the_analytic_regularizer_under_ppo(config)
    hparams = runs_hparams(config, hparams, num_runs)
    if keys is None:
        keys = jax.random.split(jax.random.PRNGKey(config.seed), num_runs)
    elif np.shape(keys) != (num_runs, 2):
        raise ValueError(f"`keys` must have shape ({num_runs}, 2), got {np.shape(keys)}")
    signature = run_signature(env, config, num_runs, hparams)
    if explicit_keys:
        signature["keys"] = np.asarray(keys).tolist()
    checkpoints, resume_step = None, None
    final_step = config.final_env_step(trainer.num_tasks)
    if checkpoint_dir is not None:
        checkpoints = RunCheckpoints(checkpoint_dir, keep=config.keep_checkpoints)
        if initial_params is None and initial_obs_stats is None:  # else checked once known
            resume_step = checkpoints.check_run(signature, final_step)
    try:
        compiled = trainer.compile(keys, hparams, mesh)
        if initial_params is not None:
            compiled = compiled._replace(state=_start_from(compiled.state, initial_params))
            signature["initial_params"] = _digest(compiled.state.params)
        if initial_obs_stats is not None:
            state = _start_from_stats(compiled.state, initial_obs_stats)
            compiled = compiled._replace(state=state)
            signature["initial_obs_stats"] = _digest(compiled.state.obs_stats)
        if checkpoints is not None and resume_step is None:
            resume_step = checkpoints.check_run(signature, final_step)
        run_keys = keys if explicit_keys else None  # given keys pair the evaluations too
        loop = _HostLoop(trainer, compiled, num_runs, progress_fn, show_progress, run_keys)
        if resume_step is not None:
            state, host = checkpoints.restore(resume_step, compiled.state)
            discarded = compiled.state
            if env.host_simulated:
                # Simulators outside JAX cannot be restored: the run goes on from the episodes
                # that ``compile``'s reset just started (parameters, optimiser and replay exact).
                state = state.replace(
                    env_state=discarded.env_state, core_state=discarded.core_state
                )
                discarded = discarded.replace(env_state=None, core_state=None)
            jax.tree_util.tree_map(lambda a: a.delete(), discarded)  # one copy in memory
            loop.resume(state, host)
        state = loop.run(checkpoints, signature)
    finally:
        if checkpoints is not None:
            checkpoints.close()
    policy_params = jax.tree_util.tree_map(loop.squeeze, state.policy_params)
    make_policy = functools.partial(acting.make_policy, trainer.networks)
    return make_policy, policy_params, loop.host.history[-1][1]


def _start_from(state: TrainState, initial_params) -> TrainState:
    """The state with ``initial_params(state.params)``, checked to keep every leaf's shape."""
    params = initial_params(state.params)
    fresh = jax.tree_util.tree_structure(state.params)
    if jax.tree_util.tree_structure(params) != fresh:
        raise ValueError("`initial_params` must return parameters of the structure it is given")
    for new, old in zip(
        jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(state.params), strict=True
    ):
        if np.shape(new) != old.shape or jnp.result_type(new) != old.dtype:
            raise ValueError(
                f"`initial_params` changed a leaf from {old.dtype}{list(old.shape)} to "
                f"{jnp.result_type(new)}{list(np.shape(new))}"
            )
    # Copies: the training program donates its state, and must not delete the caller's arrays.
    sharded = jax.tree_util.tree_map(
        lambda new, old: jax.device_put(jnp.array(new, old.dtype, copy=True), old.sharding),
        params,
        state.params,
    )
    # Adam's moments start at zero whatever the parameters are: the optimiser state is kept.
    return state.replace(params=sharded)


def check_arguments(
    env: TaskFamily,
    config: TrainConfig,
    num_runs: int = 1,
    mesh: Mesh | None = None,
    initial_obs_stats: RunningStats | None = None,
) -> Trainer:
    """What ``train`` refuses before it compiles anything, as named errors; returns the trainer.

    The family's contract, the config against the family (``task_start_steps``), ``num_runs``,
    the mesh against the runs and tasks (and a multi-process job's devices), and
    ``initial_obs_stats``. A launcher calls it before it touches the file system, so that a
    refused launch leaves every folder as it was.

    Raises:
      ValueError: naming the argument or field (``FamilyError`` for the family's contract).
    """
    if isinstance(num_runs, bool) or not isinstance(num_runs, (int, np.integer)) or num_runs < 1:
        raise ValueError(f"`num_runs` must be a positive integer, got {num_runs!r}")
    _check_initial_obs_stats(config, initial_obs_stats)
    trainer = Trainer(env, config)
    sharding.check_mesh(mesh, num_runs, trainer.num_tasks)
    if mesh is not None and env.host_simulated:
        raise ValueError(
            "`mesh`: a host-simulated family's simulators step on this host, so every device "
            "would send its whole batch here each step; train it on one device (mesh=None)"
        )
    if jax.process_count() > 1 and (mesh is None or mesh.devices.size != len(jax.devices())):
        raise ValueError(
            f"`mesh`: a job of {jax.process_count()} processes needs a mesh over all its "
            f"{len(jax.devices())} devices (e.g. jax.make_mesh(({len(jax.devices())},), "
            "('tasks',))); each process would otherwise train a copy of the run"
        )
    return trainer


def _warn_of_another_time_limit(env: TaskFamily, config: TrainConfig) -> None:
    """A warning when ``config.episode_length`` is not the family's own time limit (families
    that have one expose it as ``episode_length``: gymnax, XLand-MiniGrid, the cue recall)."""
    limit = getattr(env, "episode_length", None)
    if limit is not None and int(limit) != config.episode_length:
        warnings.warn(
            f"`episode_length`={config.episode_length} is not the family's own time limit "
            f"({int(limit)}): episodes are cut at {config.episode_length} steps, so returns "
            f"are not the environment's usual ones (pass episode_length={int(limit)} to match)",
            stacklevel=3,
        )


def _warn_of_the_analytic_regularizer_under_ppo(config: TrainConfig) -> None:
    """A warning when PPO takes several minibatch steps per rollout with the analytic
    regulariser: its ratio clip then caps the rewards' pull but not the regulariser's, and the
    fixed point moves towards more entropy (docs/maths.md §6)."""
    steps = config.ppo_epochs * config.ppo_minibatches
    if config.learner == "ppo" and config.learner_regularizer == "analytic" and steps > 1:
        warnings.warn(
            f"`regularizer`='analytic' with PPO's {steps} minibatch steps per rollout "
            "(ppo_epochs × ppo_minibatches) optimises a policy with more entropy than the "
            "joint objective's (docs/maths.md §6); regularizer='sampled', PPO's default, is "
            "clipped with the rewards and keeps it on the objective",
            stacklevel=3,
        )


def _check_initial_obs_stats(config: TrainConfig, stats: RunningStats | None) -> None:
    """Named errors for ``initial_obs_stats`` that cannot be honoured."""
    if stats is not None and not config.normalize_observations:
        raise ValueError(
            "`initial_obs_stats` is only read with `normalize_observations=True` (the networks "
            "see raw observations otherwise)"
        )
    if stats is not None and not isinstance(stats, RunningStats):
        raise ValueError(
            f"`initial_obs_stats` must be a RunningStats (e.g. a run's policy_params.obs_stats), "
            f"got {type(stats).__name__}"
        )
    if config.freeze_prior and config.normalize_observations and stats is None:
        raise ValueError(
            "`initial_obs_stats` is needed with `freeze_prior=True` and "
            "`normalize_observations=True`: the frozen π_0 reads normalised observations, so "
            "the statistics are held fixed at those of the run it was trained in (pass that "
            "run's policy_params.obs_stats)"
        )


def _start_from_stats(state: TrainState, stats: RunningStats) -> TrainState:
    """The state with observation statistics ``stats`` (broadcast over runs), shapes checked."""
    current = state.obs_stats
    num_runs = current.count.shape[0]
    copied = {}
    for name in ("mean", "var", "count"):
        new, old = np.asarray(getattr(stats, name), np.float32), getattr(current, name)
        if new.shape == old.shape[1:]:
            new = np.broadcast_to(new, old.shape)
        if new.shape != old.shape:
            raise ValueError(
                f"`initial_obs_stats.{name}` has shape {list(new.shape)}; expected "
                f"{list(old.shape[1:])} (or {list(old.shape)} with the run axis of "
                f"{num_runs} runs)"
            )
        copied[name] = jax.device_put(jnp.array(new, copy=True), old.sharding)
    return state.replace(obs_stats=RunningStats(**copied))


def _digest(tree) -> str:
    """A SHA-256 of a pytree's leaves (shapes, dtypes and bytes), to identify a start."""
    digest = hashlib.sha256()
    for leaf in jax.tree_util.tree_leaves(jax.device_get(tree)):
        leaf = np.ascontiguousarray(leaf)
        digest.update(f"{leaf.dtype}{leaf.shape}".encode())
        digest.update(leaf.tobytes())
    return digest.hexdigest()


class _HostLoop:
    """The loop between jitted calls: evaluations, progress, checks and checkpoints."""

    def __init__(
        self,
        trainer: Trainer,
        compiled: CompiledRun,
        num_runs: int,
        progress_fn: ProgressFn | None,
        show_progress: bool,
        run_keys: jax.Array | None = None,
    ):
        config = trainer.config
        self.config = config
        self.compiled = compiled
        self.state = compiled.state
        self.num_runs = num_runs
        self.progress_fn = progress_fn
        self.steps_per_update = trainer.env_steps_per_iteration
        self.steps_per_call = self.steps_per_update * config.iterations_per_call
        self.num_calls = config.final_env_step(trainer.num_tasks) // self.steps_per_call
        self.eval_every_calls = max(1, round(config.eval_every / self.steps_per_call))
        self.squeeze = (lambda x: x[0]) if num_runs == 1 else (lambda x: x)
        # With runs' own keys, evaluation keys come from each run's key and the evaluation's
        # index, so that runs given the same key (paired seeds) see the same episodes.
        self.run_keys = None if run_keys is None else jnp.asarray(run_keys)
        eval_key = np.asarray(jax.random.PRNGKey(config.seed + 10_000))
        self.host = HostState(env_steps=0, calls=0, eval_key=eval_key, train_time_s=0.0, history=[])
        # One bar per job, not per process.
        enabled = show_progress and jax.process_index() == 0
        self.bar = _progress_bar(self.num_calls * self.steps_per_call, enabled)

    def resume(self, state: TrainState, host: HostState) -> None:
        self.state, self.host = state, host
        self.bar.update(host.env_steps)
        for step, metrics in host.history:  # the caller's curves continue where they stopped
            self._call_progress_fn(step, metrics)

    def run(self, checkpoints: RunCheckpoints | None, signature: dict) -> TrainState:
        try:
            self._run(checkpoints, signature)
        finally:
            self.bar.close()
        return self.state

    def _run(self, checkpoints: RunCheckpoints | None, signature: dict) -> None:
        host = self.host
        if not host.history:
            self._evaluate({})
        for call in range(host.calls, self.num_calls):
            start = time.perf_counter()
            self.state, chunk = self.compiled.run(self.state)
            jax.block_until_ready(chunk)
            host.train_time_s += time.perf_counter() - start
            check_finite_params(
                chunk.pop("first_nonfinite_update"), host.env_steps, self.steps_per_update
            )
            training = _summarise(jax.tree_util.tree_map(self.squeeze, chunk), "training")
            check_finite(training, host.env_steps + self.steps_per_call)
            host.env_steps += self.steps_per_call
            host.calls = call + 1
            self.bar.update(self.steps_per_call)
            last = call == self.num_calls - 1
            if (call + 1) % self.eval_every_calls == 0 or last:
                metrics = self._evaluate(training)
                self.bar.set_postfix(
                    ret=f"{float(np.mean(metrics['eval/episode_return_mean'])):.3f}",
                    sps=f"{metrics['training/sps']:.3g}",
                )
            every = self.config.checkpoint_every
            due = host.env_steps // every > (host.env_steps - self.steps_per_call) // every
            if checkpoints is not None:
                if due or last:
                    checkpoints.save(self.state, host, signature)
                else:
                    checkpoints.poll()  # checksum the previous save as soon as it is on disk

    def _evaluate(self, training: Metrics) -> Metrics:
        host = self.host
        key, k = jax.random.split(jnp.asarray(host.eval_key))
        host.eval_key = np.asarray(key)
        if self.run_keys is None:
            keys = np.asarray(jax.random.split(k, self.num_runs))  # a global value on any mesh
        else:
            evaluation = len(host.history)
            keys = np.asarray(
                jax.vmap(lambda rk: jax.random.fold_in(rk, evaluation))(self.run_keys)
            )
        eval_metrics = self.compiled.evaluate(self.state, keys)
        out = _summarise(jax.tree_util.tree_map(self.squeeze, eval_metrics), "eval")
        out.update(training)
        out["training/env_steps"] = host.env_steps
        # Per run, and for the whole program (all vmapped runs together).
        # NaN before any training (step 0): no rate has been measured yet.
        rate = host.env_steps / host.train_time_s if host.train_time_s > 0 else float("nan")
        out["training/sps"] = rate
        out["training/sps_all_runs"] = self.num_runs * rate
        out["training/compile_time_s"] = self.compiled.compile_time_s
        host.history.append((host.env_steps, out))
        self._call_progress_fn(host.env_steps, out)
        return out

    def _call_progress_fn(self, step: int, metrics: Metrics) -> None:
        if self.progress_fn is not None:
            with self.bar.external_write_mode():  # what progress_fn prints stays clear of the bar
                self.progress_fn(step, dict(metrics))  # a copy: the history is saved as it is


def _progress_bar(total: int, enabled: bool):
    """The bar on a terminal only: redirected to a file, its carriage-return frames would fill
    the log (the launcher's per-evaluation lines are what a log needs)."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    enabled = enabled and sys.stderr.isatty()
    return tqdm(total=total, unit="step", unit_scale=True, disable=not enabled, leave=False)
