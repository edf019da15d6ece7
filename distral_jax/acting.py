"""Acting: policies in the environments — rollouts for the learners, episodes for evaluation.

One job: run policies in task families. Everything here works on ``PolicyParams`` (network
parameters, observation statistics, hyperparameters), never on a trainer's state:

  * ``rollout``       T steps of the task policies in auto-resetting envs: ``Transition [N, E, T]``
  * ``run_episodes``  one episode per environment of ANY policy (networks, scripted, random):
                      the one episode loop behind evaluation, reference returns and HTML
                      rollouts (it lives in ``envs.episodes``: families use it too)
  * ``evaluate``      ``run_episodes`` for π_i and π_0, sampled and greedy
  * ``make_policy``   Brax-style ``policy(obs, key) -> action`` from trained parameters
                      (``policy(obs, state, key) -> (action, state)`` for recurrent cores)

Recurrent cores: the rollout carries the networks' ``CoreState`` across steps and calls, resets
it wherever an episode ends, and stores the state each step acted from in the trajectory, so
that a learner recomputes the same states from the first one (``DistralNetworks.unroll``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from distral_jax.configs import Hyperparams
from distral_jax.envs.base import PyTree, State, TaskFamily, batch_step
from distral_jax.envs.episodes import (
    Episodes,
    Policy,
    RecurrentPolicy,
    random_policy,
    run_episodes,
    success_of,
)
from distral_jax.networks import CoreState, DistralNetworks, DistralParams, reset_core_state
from distral_jax.normalization import RunningStats

__all__ = [
    "Episodes",
    "Policy",
    "PolicyParams",
    "RecurrentPolicy",
    "Transition",
    "evaluate",
    "make_policy",
    "random_policy",
    "rollout",
    "run_episodes",
]


@struct.dataclass
class PolicyParams:
    """What a trained policy needs: parameters, observation statistics, hyperparameters."""

    params: DistralParams
    obs_stats: RunningStats
    hparams: Hyperparams


@struct.dataclass
class Transition:
    """One step of every environment; stacked to ``[N, E, T, ...]`` for the learners.

    Attributes:
      obs: observation the action was taken in.
      action: action taken (pre-squash for tanh-Gaussian policies).
      reward: reward received.
      discount: γ, or 0 where the episode terminated (not where it was truncated).
      done: 1 where the episode ended on this step, for any reason.
      final_obs: the observation reached (before any auto-reset), for bootstrapping.
      behaviour_log_prob: log π_i(action) under the acting policy (PPO's ratio denominator).
      episode_return: return of the episode ending here (valid where ``done``).
      success: 1 where the episode ended in success (valid where ``done``; NaN for families
        whose ``metrics`` define no ``"success"``).
      core_state: the networks' recurrent state the action was chosen from (no leaves for the
        feed-forward core).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    discount: jax.Array
    done: jax.Array
    final_obs: jax.Array
    behaviour_log_prob: jax.Array
    episode_return: jax.Array
    success: jax.Array
    core_state: CoreState = CoreState()


def _act(networks: DistralNetworks, policy_params: PolicyParams, obs: jax.Array, state: CoreState):
    """``networks.act`` with a policy's parameters, statistics and α_c: ``(pi, pi0, value,
    next core state)`` of every task on raw observations ``[N, ...]``."""
    return networks.act(
        policy_params.params,
        policy_params.obs_stats,
        obs,
        state,
        policy_params.hparams.column_alpha,
    )


def rollout(
    env: TaskFamily,
    networks: DistralNetworks,
    policy_params: PolicyParams,
    env_state: State,
    core_state: CoreState,
    tasks: PyTree,
    key: jax.Array,
    unroll_length: int,
    random_actions: jax.Array | None = None,
) -> tuple[State, CoreState, Transition]:
    """``unroll_length`` steps of the task policies π_i in every environment of every task.

    Args:
      env: the family wrapped for training (``wrap_for_training``: time limit, auto-reset).
      networks: the policies.
      policy_params: the acting parameters.
      env_state: ``[N, E]`` environment states.
      core_state: ``[N, E]`` the networks' recurrent state (``networks.initial_state``).
      tasks: task parameters, leading axis N.
      key: PRNG key.
      unroll_length: T.
      random_actions: optional boolean scalar: act uniformly at random instead
        (``DistributionOps.uniform``; an off-policy learner's warm-up). ``behaviour_log_prob``
        stays π_i's.
    Returns:
      ``(env_state [N, E], core_state [N, E], trajectories [N, E, T])``: time is the last batch
      axis, so that a learner can ``vmap`` a per-trajectory loss over tasks and environments.
    """
    dist = networks.dist
    hp = policy_params.hparams

    def step(carry, step_key: jax.Array):
        env_state, core_state = carry
        pi, _, _, next_core = _act(networks, policy_params, env_state.obs, core_state)
        action = dist.sample(step_key, pi)
        if random_actions is not None:
            uniform = dist.uniform(jax.random.fold_in(step_key, 1), pi)
            action = jnp.where(random_actions, uniform, action)
        nxt = batch_step(env, env_state, dist.postprocess(action), tasks)
        # The environment auto-reset where an episode ended: so do the cores.
        next_core = reset_core_state(next_core, nxt.done)
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
            success=success_of(nxt),
            core_state=core_state,
        )
        return (nxt, next_core), transition

    keys = jax.random.split(key, unroll_length)
    (env_state, core_state), traj = jax.lax.scan(step, (env_state, core_state), keys)
    # [T, N, E, ...] -> [N, E, T, ...]
    return env_state, core_state, jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 2), traj)


# Evaluation modes: (act with π_0, act greedily) and the metric names they report under.
_EVAL_MODES = (
    (False, False, "episode_return", "success"),
    (False, True, "episode_return_greedy", "success_greedy"),
    (True, False, "pi0_episode_return", "pi0_success"),
    (True, True, "pi0_episode_return_greedy", "pi0_success_greedy"),
)


def evaluate(
    env: TaskFamily,
    networks: DistralNetworks,
    policy_params: PolicyParams,
    tasks: PyTree,
    key: jax.Array,
    num_envs: int,
    episode_length: int,
) -> dict[str, jax.Array]:
    """Returns of π_i and of π_0 alone, sampled and greedy, over one episode per env.

    The four modes run vmapped in one program (one after another for a host-simulated family,
    whose environments are simulators outside JAX). Returns a dict of ``[N]`` arrays (means over
    ``num_envs`` episodes per task): ``episode_return`` (π_i sampled), ``episode_return_greedy``,
    ``pi0_episode_return``, ``pi0_episode_return_greedy`` and the matching ``success`` rates.
    Networks without a π_0 (``networks.uses_prior`` False: ``a3c``, ``a3c_multitask``) run the
    two π_i modes only and report NaN for π_0's.
    """
    dist = networks.dist
    modes = _EVAL_MODES if networks.uses_prior else _EVAL_MODES[:2]
    use_prior = jnp.array([m[0] for m in modes])
    greedy = jnp.array([m[1] for m in modes])

    num_tasks = jax.tree_util.tree_leaves(tasks)[0].shape[0]
    start = networks.initial_state((num_tasks, num_envs))

    def one_mode(mode_key, prior, greedy_):
        def policy(obs, state, k):
            pi, pi0, _, state = _act(networks, policy_params, obs, state)
            p = jax.tree_util.tree_map(lambda a, b: jnp.where(prior, b, a), pi, pi0)
            action = jnp.where(greedy_, dist.mode(p), dist.sample(k, p))
            return dist.postprocess(action), state

        episodes = run_episodes(
            env, policy, tasks, mode_key, num_envs, episode_length, policy_state=start
        )
        return episodes.returns.mean(axis=1), episodes.success.mean(axis=1)

    keys = jax.random.split(key, len(_EVAL_MODES))[: len(modes)]
    if env.host_simulated:
        # One mode after another on the same simulators: each environment outside JAX holds
        # its own simulator's memory (about 16 MiB for Meta-World), four times fewer this way.
        returns, successes = jax.lax.map(lambda m: one_mode(*m), (keys, use_prior, greedy))
    else:
        returns, successes = jax.vmap(one_mode)(keys, use_prior, greedy)
    out = {}
    missing = jnp.full((num_tasks,), jnp.nan)
    for m, (_, _, return_name, success_name) in enumerate(_EVAL_MODES):
        out[return_name] = returns[m] if m < len(modes) else missing
        out[success_name] = successes[m] if m < len(modes) else missing
    return out


def make_policy(
    networks: DistralNetworks,
    policy_params: PolicyParams,
    deterministic: bool = False,
    prior: bool = False,
    task: int | None = None,
    with_extras: bool = False,
) -> Policy | RecurrentPolicy:
    """Brax-style policy: ``policy(obs [N, ..., *obs_shape], key) -> action [N, ...]``.

    With a recurrent core the policy has memory: ``policy(obs, state, key) -> (action,
    state)``. Pass ``state=None`` at the start of episodes (or ``policy.initial_state((N, E))``,
    the same state as an array), then the state it returned; where an episode ends (and a
    batched environment restarts), ``networks.reset_core_state(state, done)`` starts that
    environment's memory afresh. ``run_episodes(env, policy, ...)`` plays either kind.

    ``train`` returns this function with ``networks`` bound, so it is called as
    ``make_policy(policy_params, deterministic=..., prior=..., task=..., with_extras=...)``.

    Args:
      networks: the policies' networks.
      policy_params: what ``train`` returns (one run: no leading run axis).
      deterministic: act with the mode instead of sampling.
      prior: act with the distilled policy π_0 instead of the task policies.
      task: act for this one task: ``policy(obs [..., *obs_shape], key) -> action [...]``.
      with_extras: return ``(action, {})`` as Brax's policies do (``((action, {}), state)``
        for recurrent policies).
    Raises:
      ValueError: ``task`` out of range; the policy raises one for observations that do not end
        in the observation shape or, without ``task``, whose first axis is not the task axis N.
    """
    dist = networks.dist
    num_tasks, shape = networks.num_tasks, networks.observation_shape
    if task is not None and not 0 <= int(task) < num_tasks:
        raise ValueError(f"`task` must be in [0, {num_tasks}), got {task!r}")

    def act(obs: jax.Array, state: CoreState | None, key: jax.Array):
        obs = jnp.asarray(obs)
        if obs.ndim < len(shape) or tuple(obs.shape[obs.ndim - len(shape) :]) != shape:
            raise ValueError(
                f"policy: `obs` must end in the observation shape {shape}, got {obs.shape}"
            )
        if task is None and (obs.ndim < len(shape) + 1 or obs.shape[0] != num_tasks):
            raise ValueError(
                f"policy: `obs` must be [N={num_tasks}, ..., *{shape}] with the task axis first, "
                f"got {obs.shape}; for one task's observations use make_policy(..., task=i)"
            )
        if task is not None:
            obs = jnp.broadcast_to(obs, (num_tasks,) + obs.shape)
        if state is None:
            state = networks.initial_state(obs.shape[: obs.ndim - len(shape)])
        pi, pi0, _, state = _act(networks, policy_params, obs, state)
        p = pi0 if prior else pi
        action = dist.postprocess(dist.mode(p) if deterministic else dist.sample(key, p))
        if task is not None:
            action = action[int(task)]
        return ((action, {}) if with_extras else action), state

    if networks.recurrent:
        # What a caller needs to start episodes itself (``run_episodes`` finds it here):
        # ``policy.initial_state(batch_shape)``, the state at the start of an episode.
        lead = () if task is None else (num_tasks,)
        act.initial_state = lambda batch_shape: networks.initial_state(lead + tuple(batch_shape))
        return act
    return lambda obs, key: act(obs, None, key)[0]
