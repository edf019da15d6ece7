"""Wrappers for task families: time limits with a truncation flag, and auto-reset.

Order matters: ``AutoReset(EpisodeLimit(family, T))`` is what ``wrap_for_training`` builds.

Unlike Brax's ``AutoResetWrapper`` (which replays each environment's first state forever), the
reset here draws a fresh start for every episode from a key carried in ``info["reset_rng"]``,
unless the family asks for Brax's behaviour (``TaskFamily.fresh_starts``, False for Brax
families: their ``reset`` would otherwise be compiled into every training step).
The observation that ended an episode is kept in ``info["final_obs"]`` so that a learner can
bootstrap a truncated episode from the value of its true last state rather than from the first
state of the next episode.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.envs.base import PyTree, State, TaskFamily


class Wrapper(TaskFamily):
    """Forwards everything to the wrapped family."""

    def __init__(self, env: TaskFamily):
        self.env = env

    @property
    def num_tasks(self) -> int:
        return self.env.num_tasks

    @property
    def observation_size(self) -> int:
        return self.env.observation_size

    @property
    def observation_shape(self) -> tuple[int, ...]:
        return self.env.observation_shape

    @property
    def observation_vocabulary(self) -> int | None:
        return self.env.observation_vocabulary

    @property
    def action_size(self) -> int:
        return self.env.action_size

    @property
    def discrete(self) -> bool:
        return self.env.discrete

    @property
    def one_hot_observations(self) -> bool:
        return self.env.one_hot_observations

    @property
    def fresh_starts(self) -> bool:
        return self.env.fresh_starts

    @property
    def host_simulated(self) -> bool:
        return self.env.host_simulated

    @property
    def task_ids(self) -> np.ndarray:
        return self.env.task_ids

    @property
    def num_task_ids(self) -> int:
        return self.env.num_task_ids

    def tasks(self) -> PyTree:
        return self.env.tasks()

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        return self.env.reset(rng, task)

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        return self.env.step(state, action, task)

    @property
    def unwrapped(self) -> TaskFamily:
        return self.env.unwrapped

    def __getattr__(self, name):
        # Only reached for attributes not found normally: expose the wrapped family's extras
        # (layouts, optimal returns, ...). Guard against recursion before ``env`` is set.
        if name == "env":
            raise AttributeError(name)
        return getattr(self.env, name)


class EpisodeLimit(Wrapper):
    """Ends episodes after ``episode_length`` steps and marks them as truncated.

    Adds ``info["steps"]`` (steps taken in the episode) and ``info["truncation"]`` (1.0 when the
    time limit, not the task, ended the episode).
    """

    def __init__(self, env: TaskFamily, episode_length: int):
        if int(episode_length) < 1:
            raise ValueError(f"episode_length must be a positive integer, got {episode_length!r}")
        super().__init__(env)
        self.episode_length = int(episode_length)
        own = getattr(env, "episode_length", None)
        if env.host_simulated and own is not None and int(own) != self.episode_length:
            # The simulator restarts its episodes at its own limit; another one would cut
            # episodes the simulator goes on with (or miss the restarts it makes).
            raise ValueError(
                f"`episode_length`={self.episode_length} must be the host-simulated family's own "
                f"time limit ({int(own)}): build the family with episode_length="
                f"{self.episode_length} to change it"
            )

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        state = self.env.reset(rng, task)
        info = dict(state.info)
        info["steps"] = jnp.zeros((), jnp.float32)
        info["truncation"] = jnp.zeros((), jnp.float32)
        # float32 reward and done from reset as from step: a bool or integer ``done`` would
        # otherwise change the state's type inside ``scan``.
        return state.replace(
            info=info,
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.asarray(state.done, jnp.float32),
        )

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        steps = state.info["steps"] + 1.0
        state = self.env.step(state, action, task)
        out_of_time = (steps >= self.episode_length).astype(jnp.float32)
        terminated = state.done.astype(jnp.float32)
        info = dict(state.info)
        info["steps"] = steps
        info["truncation"] = out_of_time * (1.0 - terminated)
        return state.replace(
            info=info,
            reward=jnp.asarray(state.reward, jnp.float32),
            done=jnp.maximum(terminated, out_of_time),
        )


class AutoReset(Wrapper):
    """Restarts an environment whenever an episode ends.

    The returned state after a ``done`` step carries the new episode's first observation in
    ``obs``, the ended episode's last observation in ``info["final_obs"]``, and the ended
    episode's undiscounted return in ``info["episode_return"]`` (on every other step that field
    is the running return of the current episode).

    Args:
      env: the family (with its time limit).
      fresh_starts: draw every episode's start with ``env.reset`` (True), or restart each
        environment from its own first state, kept in ``info["first_state"]`` (False: Brax's
        ``AutoResetWrapper``; the training step then holds no copy of ``reset``, which for a
        Brax family is a quarter of its compile time). Default: ``env.fresh_starts``.
    """

    def __init__(self, env: TaskFamily, fresh_starts: bool | None = None):
        super().__init__(env)
        self._fresh_starts = env.fresh_starts if fresh_starts is None else bool(fresh_starts)

    @property
    def fresh_starts(self) -> bool:
        return self._fresh_starts

    def reset(self, rng: jax.Array, task: PyTree) -> State:
        rng, reset_rng = jax.random.split(rng)
        state = self.env.reset(rng, task)
        info = dict(state.info)
        if self.env.host_simulated:
            pass  # it restarts its own episodes (``step``)
        elif self._fresh_starts:
            info["reset_rng"] = reset_rng
        else:
            info["first_state"] = {
                "pipeline_state": state.pipeline_state,
                "obs": state.obs,
                "info": dict(state.info),
            }
        info["final_obs"] = state.obs
        info["episode_return"] = jnp.zeros((), jnp.float32)
        return state.replace(info=info)

    def step(self, state: State, action: jax.Array, task: PyTree) -> State:
        running = jnp.where(state.done > 0, 0.0, state.info["episode_return"])
        # The inner env sees a live episode: some (Brax's halfcheetah) copy ``done`` through.
        stepped = self.env.step(state.replace(done=jnp.zeros_like(state.done)), action, task)
        info = dict(stepped.info)
        if self.env.host_simulated:
            # The simulator restarted the ended episodes itself: ``obs`` is already the next
            # episode's first and ``info["final_obs"]`` the ended one's last; only the time
            # limit's counter restarts here.
            if "steps" in info:
                info["steps"] = jnp.where(stepped.done > 0, 0.0, info["steps"])
            info["episode_return"] = running + stepped.reward
            return stepped.replace(info=info)
        if self._fresh_starts:
            reset_rng, info["reset_rng"] = jax.random.split(state.info["reset_rng"])
            fresh = self.env.reset(reset_rng, task)
            start = {"pipeline_state": fresh.pipeline_state, "obs": fresh.obs, "info": fresh.info}
        else:
            start = info["first_state"] = state.info["first_state"]
        done = stepped.done > 0

        def pick(new, old):
            cond = jnp.reshape(done, done.shape + (1,) * (old.ndim - done.ndim))
            return jnp.where(cond, new, old)

        pipeline_state = jax.tree_util.tree_map(
            pick, start["pipeline_state"], stepped.pipeline_state
        )
        obs = pick(start["obs"], stepped.obs)
        for key, value in start["info"].items():
            # Per-episode counters restart; the flags describing the ended step are kept.
            if key != "truncation":
                info[key] = jax.tree_util.tree_map(pick, value, stepped.info[key])
        info["final_obs"] = stepped.obs
        info["episode_return"] = running + stepped.reward
        return stepped.replace(pipeline_state=pipeline_state, obs=obs, info=info)


def wrap_for_training(env: TaskFamily, episode_length: int) -> TaskFamily:
    """Time limit, then auto-reset: the wrapping every trainer in this package expects."""
    return AutoReset(EpisodeLimit(env, episode_length))


class TaskSubset(Wrapper):
    """The tasks ``indices`` of a family, as a family of their own (e.g. a held-out set).

    Only ``tasks()`` and ``num_tasks`` change; helpers of the wrapped family that describe all
    of its tasks (a grid world's ``tabular_model``, the point mass's ``reference_returns``)
    still describe all of them.
    """

    def __init__(self, env: TaskFamily, indices):
        super().__init__(env)
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size == 0 or indices.min() < 0 or indices.max() >= env.num_tasks:
            raise ValueError(
                f"`indices` must be non-empty task indices in [0, {env.num_tasks}), got "
                f"{indices.tolist()}"
            )
        self.indices = indices

    @property
    def num_tasks(self) -> int:
        return int(self.indices.size)

    @property
    def task_ids(self) -> np.ndarray:
        return np.asarray(self.env.task_ids)[self.indices]

    def tasks(self) -> PyTree:
        return jax.tree_util.tree_map(lambda x: jnp.asarray(x)[self.indices], self.env.tasks())


def split_tasks(env: TaskFamily, num_test: int, seed: int = 0) -> tuple[TaskSubset, TaskSubset]:
    """A random split of a family's tasks into a training set and a held-out test set.

    Draw the family's tasks from its distribution first (e.g. ``halfcheetah_vel(num_tasks=40,
    task_seed=0)``), then ``train, test = split_tasks(family, num_test=10)``.
    """
    if not 0 < int(num_test) < env.num_tasks:
        raise ValueError(f"`num_test` must be in [1, {env.num_tasks - 1}], got {num_test!r}")
    order = np.random.default_rng(seed).permutation(env.num_tasks)
    return TaskSubset(env, np.sort(order[num_test:])), TaskSubset(env, np.sort(order[:num_test]))
