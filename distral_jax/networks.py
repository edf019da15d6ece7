"""Flax networks for Distral: π_0, per-task columns or networks, per-task values.

One job: map observations of every task to the policies π_i, π_0 and the values.

Per-task parameters are stacked on a leading task axis (initialised with ``vmap``) and applied
with ``vmap``; there is no Python loop over tasks. The three architectures:

  * ``1col``   π_i = head(f_θi(s)), its own network per task; π_0 = head(h_θ0(s)).
  * ``2col``   π_i = head(α_c h_θ0(s) + f_θi(s)) for categoricals (β folded into f, see
               docs/maths.md §3); for Gaussians the product π_0^α_c · N(column).
  * ``shared`` one network for every task, fed the observation and a one-hot task id.

Value functions are separate per-task networks (task-conditioned for ``shared``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from distral_jax import distributions
from distral_jax.configs import Architecture, TrainConfig
from distral_jax.envs.base import TaskFamily
from distral_jax.normalization import RunningStats
from distral_jax.two_column import gaussian_two_column, two_column_logits

PyTree = Any
MIN_STD = 1e-3


class MLP(nn.Module):
    """A tanh MLP; the last layer starts small so that policies start near uniform.

    With ``one_hot_input`` the first layer reads its kernel row at the input's argmax instead of
    multiplying: the same function for one-hot inputs (grid-world cells), without the [S, H]
    matrix product that otherwise costs most of a small network's FLOPs.
    """

    hidden_sizes: Sequence[int]
    out_size: int
    final_scale: float = 0.01
    one_hot_input: bool = False

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        widths = list(self.hidden_sizes)
        if self.one_hot_input:
            width = widths.pop(0)
            kernel = self.param(
                "embed_kernel", nn.initializers.lecun_normal(), (x.shape[-1], width)
            )
            bias = self.param("embed_bias", nn.initializers.zeros, (width,))
            x = nn.tanh(jnp.take(kernel, jnp.argmax(x, axis=-1), axis=0) + bias)
        for width in widths:
            x = nn.tanh(nn.Dense(width)(x))
        init = nn.initializers.variance_scaling(self.final_scale, "fan_in", "truncated_normal")
        return nn.Dense(self.out_size, kernel_init=init)(x)


@struct.dataclass
class DistralParams:
    """All learnable parameters.

    Attributes:
      prior: θ_0, the distilled policy's network h_θ0 (unstacked).
      task: θ_i stacked on a leading axis N (unstacked for the shared architecture).
      value: per-task value networks stacked on axis N (unstacked for shared).
    """

    prior: PyTree
    task: PyTree
    value: PyTree


class DistralNetworks:
    """Builds and applies the policy and value networks of all tasks at once.

    Args:
      observation_size: length of the flat observation.
      action_size: number of discrete actions, or the continuous action dimension.
      num_tasks: N.
      discrete: categorical (True) or Gaussian (False) policies.
      architecture: "1col", "2col" or "shared".
      hidden_sizes: MLP widths.
      squash: tanh-squash Gaussian actions (continuous only).
      one_hot_observations: observations are one-hot vectors: first layers become lookups (not
        for the shared architecture, whose input also carries the task id; not when normalised).
      normalize_observations: the networks see observations normalised by the running
        statistics passed to ``policies``/``values`` (shared by all tasks).
    """

    def __init__(
        self,
        observation_size: int,
        action_size: int,
        num_tasks: int,
        discrete: bool,
        architecture: Architecture,
        hidden_sizes: Sequence[int] = (64,),
        squash: bool = True,
        one_hot_observations: bool = False,
        normalize_observations: bool = False,
    ):
        # Normalised one-hot vectors are no longer one-hot.
        one_hot_observations = one_hot_observations and not normalize_observations
        self.normalize_observations = normalize_observations
        self.observation_size = observation_size
        self.action_size = action_size
        self.num_tasks = num_tasks
        self.discrete = discrete
        self.architecture = architecture
        head_size = action_size if discrete else 2 * action_size
        lookup = one_hot_observations and architecture != "shared"
        self.prior_mlp = MLP(tuple(hidden_sizes), head_size, one_hot_input=one_hot_observations)
        self.policy_mlp = MLP(tuple(hidden_sizes), head_size, one_hot_input=lookup)
        self.value_mlp = MLP(tuple(hidden_sizes), 1, final_scale=1.0, one_hot_input=lookup)
        if discrete:
            self.dist = distributions.categorical()
        else:
            self.dist = distributions.tanh_gaussian() if squash else distributions.gaussian()

    @property
    def shared(self) -> bool:
        return self.architecture == "shared"

    def _task_input(self, obs: jax.Array, task_id: jax.Array) -> jax.Array:
        if not self.shared:
            return obs
        one_hot = jax.nn.one_hot(task_id, self.num_tasks, dtype=obs.dtype)
        one_hot = jnp.broadcast_to(one_hot, obs.shape[:-1] + (self.num_tasks,))
        return jnp.concatenate([obs, one_hot], axis=-1)

    def init(self, key: jax.Array) -> DistralParams:
        k_prior, k_task, k_value = jax.random.split(key, 3)
        obs = jnp.zeros((self.observation_size,), jnp.float32)
        prior = self.prior_mlp.init(k_prior, obs)
        if self.shared:
            x = self._task_input(obs, jnp.zeros((), jnp.int32))
            return DistralParams(
                prior=prior,
                task=self.policy_mlp.init(k_task, x),
                value=self.value_mlp.init(k_value, x),
            )
        task_keys = jax.random.split(k_task, self.num_tasks)
        value_keys = jax.random.split(k_value, self.num_tasks)
        return DistralParams(
            prior=prior,
            task=jax.vmap(self.policy_mlp.init, in_axes=(0, None))(task_keys, obs),
            value=jax.vmap(self.value_mlp.init, in_axes=(0, None))(value_keys, obs),
        )

    def _head(self, out: jax.Array):
        if self.discrete:
            return out
        loc, raw_scale = jnp.split(out, 2, axis=-1)
        return loc, jax.nn.softplus(raw_scale + 0.5) + MIN_STD

    def _one_task(self, prior, task, value, task_id, obs, column_alpha):
        h0 = self.prior_mlp.apply(prior, obs)
        x = self._task_input(obs, task_id)
        f = self.policy_mlp.apply(task, x)
        pi0 = self._head(h0)
        if self.architecture != "2col":
            pi = self._head(f)
        elif self.discrete:
            pi = two_column_logits(h0, f, column_alpha, 1.0)
        else:
            column = self._head(f)
            pi = gaussian_two_column(pi0[0], pi0[1], column[0], column[1], column_alpha)
        v = self.value_mlp.apply(value, x)[..., 0]
        return pi, pi0, v

    def apply(
        self, params: DistralParams, obs: jax.Array, column_alpha: jax.Array
    ) -> tuple[Any, Any, jax.Array]:
        """Policies and values of every task.

        Args:
          params: all parameters.
          obs: ``[N, ..., observation_size]``; any batch axes after the task axis.
          column_alpha: α_c, the weight of h_θ0 in the 2-column policy.
        Returns:
          ``(pi, pi0, value)``: dist params of π_i and π_0 with leading axes ``[N, ...]`` and
          values ``[N, ...]``.
        """
        axis = None if self.shared else 0
        task_ids = jnp.arange(self.num_tasks)
        fn = jax.vmap(self._one_task, in_axes=(None, axis, axis, 0, 0, None))
        return fn(params.prior, params.task, params.value, task_ids, obs, column_alpha)

    def value(self, params: DistralParams, obs: jax.Array) -> jax.Array:
        """Values only, ``[N, ..., observation_size] -> [N, ...]``."""
        axis = None if self.shared else 0

        def one(value_params, task_id, o):
            return self.value_mlp.apply(value_params, self._task_input(o, task_id))[..., 0]

        return jax.vmap(one, in_axes=(axis, 0, 0))(params.value, jnp.arange(self.num_tasks), obs)

    def preprocess(self, obs_stats: RunningStats, obs: jax.Array) -> jax.Array:
        """What the networks see: observations normalised when the networks were built to."""
        return obs_stats.normalize(obs) if self.normalize_observations else obs

    def policies(
        self, params: DistralParams, obs_stats: RunningStats, obs: jax.Array, column_alpha
    ) -> tuple[Any, Any, jax.Array]:
        """``apply`` on raw observations ``[N, ..., O]``: preprocessing, then the networks."""
        return self.apply(params, self.preprocess(obs_stats, obs), column_alpha)

    def values(self, params: DistralParams, obs_stats: RunningStats, obs: jax.Array) -> jax.Array:
        """``value`` on raw observations ``[N, ..., O]``."""
        return self.value(params, self.preprocess(obs_stats, obs))


def make_networks(env: TaskFamily, config: TrainConfig) -> DistralNetworks:
    """The networks a config asks for, sized for the task family."""
    return DistralNetworks(
        observation_size=env.observation_size,
        action_size=env.action_size,
        num_tasks=env.num_tasks,
        discrete=env.discrete,
        architecture=config.resolved.architecture,
        hidden_sizes=config.hidden_sizes,
        one_hot_observations=env.one_hot_observations,
        normalize_observations=config.normalize_observations,
    )
