"""Flax networks for Distral: π_0, per-task columns or networks, per-task values.

One job: map observations of every task to the policies π_i, π_0 and the values.

Per-task parameters are stacked on a leading task axis (initialised with ``vmap``) and applied
with ``vmap``; there is no Python loop over tasks. The three architectures:

  * ``1col``   π_i = head(f_θi(s)), its own network per task; π_0 = head(h_θ0(s)).
  * ``2col``   π_i = head(α_c h_θ0(s) + f_θi(s)) for categoricals (β folded into f, see
               docs/maths.md §3); for Gaussians the product π_0^α_c · N(column).
  * ``shared`` one network for every task, fed the observation and a one-hot task id.

Value functions are separate per-task networks (task-conditioned for ``shared``). For an
off-policy learner (``critic="twin_q"``, SAC) the value slot holds twin action-value critics
instead: Q_ik(s, a) for k = 1, 2, from (s, a) for continuous actions or as ``[A]`` values of
every action from s for discrete ones (``DistralNetworks.q_values``).

Every network is ``[image torso] -> tanh layers -> [recurrent core] -> head``: the core
(``TrainConfig.core``) is feed-forward (``"mlp"``) or an LSTM/GRU cell whose state
(``CoreState``) the rollout carries through an episode and the learners recompute along each
trajectory (``DistralNetworks.unroll``); ``(H, W, C)`` observations go through ``ImageTorso``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from distral_jax import distributions
from distral_jax.configs import Architecture, Core, TrainConfig
from distral_jax.envs.base import TaskFamily
from distral_jax.normalization import RunningStats
from distral_jax.two_column import gaussian_two_column, two_column_logits

PyTree = Any
MIN_STD = 1e-3
Critic = Literal["value", "twin_q"]
TWIN = 2  # critics per task with ``critic="twin_q"``


class MLP(nn.Module):
    """A tanh MLP; the last layer starts small so that policies start near uniform.

    With ``one_hot_input`` the first layer reads its kernel row at the input's argmax instead of
    multiplying: the same function for one-hot inputs (grid-world cells), without the [S, H]
    matrix product that otherwise costs most of a small network's FLOPs. With ``out_size=None``
    it is a torso: the hidden layers only.
    """

    hidden_sizes: Sequence[int]
    out_size: int | None
    final_scale: float = 0.01
    one_hot_input: bool = False
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        act = getattr(nn, self.activation)
        widths = list(self.hidden_sizes)
        if self.one_hot_input:
            width = widths.pop(0)
            kernel = self.param(
                "embed_kernel", nn.initializers.lecun_normal(), (x.shape[-1], width)
            )
            bias = self.param("embed_bias", nn.initializers.zeros, (width,))
            x = act(jnp.take(kernel, jnp.argmax(x, axis=-1), axis=0) + bias)
        for width in widths:
            x = act(nn.Dense(width)(x))
        if self.out_size is None:
            return x
        init = nn.initializers.variance_scaling(self.final_scale, "fan_in", "truncated_normal")
        return nn.Dense(self.out_size, kernel_init=init)(x)


class ImageTorso(nn.Module):
    """``[..., H, W, C] -> [..., F]``: two small ReLU convolutions over the grid, flattened.

    With ``vocabulary`` the inputs are integer ids (a tile and a colour per cell): each
    channel's id is embedded (one table, disjoint rows per channel) before the convolutions.
    """

    vocabulary: int | None = None
    embed_size: int = 8
    channels: Sequence[int] = (16, 32)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        height, width, num_channels = x.shape[-3:]
        if self.vocabulary is not None:
            ids = x.astype(jnp.int32) + self.vocabulary * jnp.arange(num_channels)
            x = nn.Embed(self.vocabulary * num_channels, self.embed_size)(ids)
            x = x.reshape(x.shape[:-2] + (num_channels * self.embed_size,))
        else:
            x = x.astype(jnp.float32)
        for channels in self.channels:
            x = nn.relu(nn.Conv(channels, (2, 2))(x))
        return x.reshape(x.shape[:-3] + (-1,))


def initial_carry(core: Core, features: int, batch_shape: tuple[int, ...]) -> PyTree:
    """The state of a core at the start of an episode: zeros (``()`` for the stateless MLP)."""
    zeros = lambda: jnp.zeros(batch_shape + (features,), jnp.float32)
    if core == "lstm":
        return (zeros(), zeros())  # (cell, hidden), flax's LSTM carry
    if core == "gru":
        return zeros()
    return ()


class Network(nn.Module):
    """One time step of a policy or value network: ``(carry, obs) -> (carry, out)``.

    ``[image torso] -> tanh layers -> [LSTM or GRU cell] -> linear head``. ``extra`` (the task
    id of the shared architecture) joins after the torso. The stateless ``"mlp"`` core passes
    ``carry`` through; flat observations with that core use ``MLP`` alone (see
    ``DistralNetworks``).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    core: Core = "mlp"
    image: bool = False
    vocabulary: int | None = None
    final_scale: float = 0.01
    one_hot_input: bool = False

    @nn.compact
    def __call__(
        self, carry: PyTree, x: jax.Array, extra: jax.Array | None = None
    ) -> tuple[PyTree, jax.Array]:
        if self.image:
            x = ImageTorso(self.vocabulary)(x)
        if extra is not None:
            x = jnp.concatenate([x, jnp.broadcast_to(extra, x.shape[:-1] + extra.shape[-1:])], -1)
        x = MLP(self.hidden_sizes, None, one_hot_input=self.one_hot_input)(x)
        # Recurrent kernels start variance-scaled like every other layer, not orthogonal (flax's
        # default): an orthogonal matrix costs a QR decomposition, and on CPU a program
        # initialising many of them at once (LSTMs of 64 units for π_0, each task and each
        # value, under jit) was measured to hang inside jaxlib 0.10's LAPACK call.
        recurrent_init = nn.initializers.lecun_normal()
        if self.core == "lstm":
            cell = nn.OptimizedLSTMCell(self.hidden_sizes[-1], recurrent_kernel_init=recurrent_init)
            carry, x = cell(carry, x)
        elif self.core == "gru":
            cell = nn.GRUCell(self.hidden_sizes[-1], recurrent_kernel_init=recurrent_init)
            carry, x = cell(carry, x)
        init = nn.initializers.variance_scaling(self.final_scale, "fan_in", "truncated_normal")
        return carry, nn.Dense(self.out_size, kernel_init=init)(x)


@struct.dataclass
class DistralParams:
    """All learnable parameters.

    Attributes:
      prior: θ_0, the distilled policy's network h_θ0 (unstacked).
      task: θ_i stacked on a leading axis N (unstacked for the shared architecture).
      value: per-task value networks stacked on axis N (unstacked for shared); with twin
        critics (``critic="twin_q"``) the two critics stacked on the next axis, ``[N, 2, ...]``
        (``[2, ...]`` for shared).
    """

    prior: PyTree
    task: PyTree
    value: PyTree


@struct.dataclass
class CoreState:
    """The recurrent cores' state of every network, leaves ``[N, ...batch, F]``.

    Each field is a cell's carry (LSTM: ``(cell, hidden)``; GRU: ``hidden``), or ``()`` for the
    stateless ``"mlp"`` core, whose ``CoreState`` has no leaves at all.

    Attributes:
      prior: π_0's network, one stream per task (it reads each task's observations).
      task: the task networks (the columns f_θi, or the shared network).
      value: the value networks.
    """

    prior: PyTree = ()
    task: PyTree = ()
    value: PyTree = ()


def reset_core_state(state: CoreState, done: jax.Array) -> CoreState:
    """``state`` with every environment where ``done`` (``[N, ...]``) back at the start of an
    episode (cores start from zeros)."""
    return jax.tree_util.tree_map(
        lambda x: jnp.where(jnp.reshape(done, done.shape + (1,)) > 0, 0.0, x), state
    )


class DistralNetworks:
    """Builds and applies the policy and value networks of all tasks at once.

    Args:
      observation_size: length of the flat observation.
      action_size: number of discrete actions, or the continuous action dimension.
      num_tasks: N.
      discrete: categorical (True) or Gaussian (False) policies.
      architecture: "1col", "2col" or "shared".
      hidden_sizes: MLP widths (the last is a recurrent core's size).
      squash: tanh-squash Gaussian actions (continuous only).
      one_hot_observations: observations are one-hot vectors: first layers become lookups (not
        for the shared architecture, whose input also carries the task id; not when normalised).
      normalize_observations: the networks see observations normalised by the running
        statistics passed to ``policies``/``values`` (shared by all tasks).
      core: ``"mlp"`` (feed-forward), ``"lstm"`` or ``"gru"``: every network (π_0, each task's,
        the values) then carries a state through an episode (``CoreState``).
      observation_shape: ``(observation_size,)``, or ``(H, W, C)`` for image-like observations,
        read through ``ImageTorso``.
      observation_vocabulary: ``(H, W, C)`` observations are integer ids below this number.
      task_ids: ``[N]`` the id each task is shown as by the shared architecture (default
        ``arange(N)``; a subset of a family keeps the ids of its tasks in the family).
      num_task_ids: size of the shared architecture's one-hot task id (default N).
      uses_prior: whether anything reads π_0. A variant with α = 0, no distillation and no
        2-column logits (``a3c``, ``a3c_multitask``) never does: then h_θ0 is not evaluated
        anywhere (θ_0 still exists, untouched, so that every variant's parameters have one
        structure) and ``step`` returns ``stop_gradient(pi)`` in π_0's place, which the
        losses weigh by α = 0 and a distillation weight of 0. ``Trainer`` refuses
        hyperparameters that would read it (α or the distillation weight above 0).
      critic: ``"value"`` (a state value per task, the on-policy learners') or ``"twin_q"``
        (two action-value critics per task, SAC's; feed-forward cores only: ``step`` then
        returns zeros in the values' place and ``q_values`` evaluates the critics).
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
        core: Core = "mlp",
        observation_shape: Sequence[int] | None = None,
        observation_vocabulary: int | None = None,
        task_ids: Sequence[int] | None = None,
        num_task_ids: int | None = None,
        uses_prior: bool = True,
        critic: Critic = "value",
    ):
        if critic not in ("value", "twin_q"):
            raise ValueError(f"`critic` must be 'value' or 'twin_q', got {critic!r}")
        if critic == "twin_q" and core != "mlp":
            raise ValueError(f"`core` must be 'mlp' with twin action-value critics, got {core!r}")
        self.critic = critic
        if not uses_prior and architecture == "2col":
            raise ValueError(
                "`uses_prior` must be True for the 2-column architecture (h_θ0 is a column)"
            )
        self.uses_prior = uses_prior
        self.task_ids = tuple(int(i) for i in (range(num_tasks) if task_ids is None else task_ids))
        self.num_task_ids = num_tasks if num_task_ids is None else int(num_task_ids)
        if len(self.task_ids) != num_tasks or not all(
            0 <= i < self.num_task_ids for i in self.task_ids
        ):
            raise ValueError(
                f"`task_ids` must be {num_tasks} ids in [0, {self.num_task_ids}), got "
                f"{list(self.task_ids)}"
            )
        observation_shape = tuple(observation_shape or (observation_size,))
        image = len(observation_shape) == 3
        if normalize_observations and observation_vocabulary is not None:
            raise ValueError(
                "`normalize_observations` must be False for observations of integer ids "
                f"(observation_vocabulary={observation_vocabulary})"
            )
        # Normalised one-hot vectors are no longer one-hot.
        one_hot_observations = one_hot_observations and not normalize_observations and not image
        self.normalize_observations = normalize_observations
        self.observation_size = observation_size
        self.observation_shape = observation_shape
        self.action_size = action_size
        self.num_tasks = num_tasks
        self.discrete = discrete
        self.architecture = architecture
        self.core = core
        self.core_size = int(hidden_sizes[-1])
        head_size = action_size if discrete else 2 * action_size
        lookup = one_hot_observations and architecture != "shared"
        if core == "mlp" and not image:
            # Stateless networks of flat observations: plain MLPs (``_call`` adapts them).
            make = lambda out, scale, one_hot: MLP(tuple(hidden_sizes), out, scale, one_hot)
        else:
            make = lambda out, scale, one_hot: Network(
                tuple(hidden_sizes),
                out,
                core,
                image,
                observation_vocabulary,
                scale,
                one_hot,
            )
        self.prior_net = make(head_size, 0.01, one_hot_observations)
        self.policy_net = make(head_size, 0.01, lookup)
        if critic == "twin_q" and core == "mlp" and not image:
            # A continuous action joins the critic's input, which is then no longer one-hot.
            # ReLU layers, as SAC's critics have: beyond the replayed actions a tanh critic goes
            # flat, and the entropy bonus then widens the policy into that flat region without
            # end (measured on the quadratic bandit: σ 0.35 -> 10 and growing); a ReLU critic
            # extrapolates linearly.
            q_out = action_size if discrete else 1
            self.value_net = MLP(
                tuple(hidden_sizes), q_out, 1.0, lookup and discrete, activation="relu"
            )
        elif critic == "twin_q":
            self.value_net = make(action_size if discrete else 1, 1.0, lookup and discrete)
        else:
            self.value_net = make(1, 1.0, lookup)
        if discrete:
            self.dist = distributions.categorical()
        else:
            self.dist = distributions.tanh_gaussian() if squash else distributions.gaussian()

    @property
    def shared(self) -> bool:
        return self.architecture == "shared"

    @property
    def recurrent(self) -> bool:
        return self.core != "mlp"

    def initial_state(self, batch_shape: tuple[int, ...]) -> CoreState:
        """Every network's state at the start of an episode (zeros), leaves ``[*batch_shape,
        F]``.

        ``batch_shape`` starts with the task axis N (e.g. ``(N, E)``).
        """
        carry = lambda: initial_carry(self.core, self.core_size, tuple(batch_shape))
        return CoreState(prior=carry(), task=carry(), value=carry())

    @property
    def twin_q(self) -> bool:
        return self.critic == "twin_q"

    def _call(self, module, params, carry, x, task_id=None, action=None):
        """``(carry, out)`` of one network on one task's observations (any batch axes); the
        shared architecture's task id and a critic's continuous ``action`` join the input."""
        batch = self._batch_shape(x)
        extras = []
        if self.shared and task_id is not None:
            one_hot = jax.nn.one_hot(task_id, self.num_task_ids, dtype=jnp.float32)
            extras.append(jnp.broadcast_to(one_hot, batch + (self.num_task_ids,)))
        if action is not None:
            extras.append(jnp.asarray(action, jnp.float32))
        extra = jnp.concatenate(extras, axis=-1) if extras else None
        if isinstance(module, MLP):
            if extra is not None:
                x = jnp.concatenate([x, extra], axis=-1)
            return carry, module.apply(params, x)
        return module.apply(params, carry, x, extra)

    def init(self, key: jax.Array) -> DistralParams:
        k_prior, k_task, k_value = jax.random.split(key, 3)
        obs = jnp.zeros(self.observation_shape, jnp.float32)
        carry = initial_carry(self.core, self.core_size, ())
        task_id = jnp.zeros((), jnp.int32)

        def init_one(module, k):
            extras = []
            if self.shared and module is not self.prior_net:
                extras.append(jax.nn.one_hot(task_id, self.num_task_ids, dtype=jnp.float32))
            if module is self.value_net and self.twin_q and not self.discrete:
                extras.append(jnp.zeros((self.action_size,), jnp.float32))
            extra = jnp.concatenate(extras) if extras else None
            if isinstance(module, MLP):
                return module.init(k, obs if extra is None else jnp.concatenate([obs, extra]))
            return module.init(k, carry, obs, extra)

        def init_value(k):
            if not self.twin_q:
                return init_one(self.value_net, k)
            return jax.vmap(lambda kk: init_one(self.value_net, kk))(jax.random.split(k, TWIN))

        prior = init_one(self.prior_net, k_prior)
        if self.shared:
            return DistralParams(
                prior=prior,
                task=init_one(self.policy_net, k_task),
                value=init_value(k_value),
            )
        task_keys = jax.random.split(k_task, self.num_tasks)
        value_keys = jax.random.split(k_value, self.num_tasks)
        return DistralParams(
            prior=prior,
            task=jax.vmap(lambda k: init_one(self.policy_net, k))(task_keys),
            value=jax.vmap(init_value)(value_keys),
        )

    def _head(self, out: jax.Array):
        if self.discrete:
            return out
        loc, raw_scale = jnp.split(out, 2, axis=-1)
        return loc, jax.nn.softplus(raw_scale + 0.5) + MIN_STD

    def _one_task(self, prior, task, value, task_id, obs, state: CoreState, column_alpha):
        task_carry, f = self._call(self.policy_net, task, state.task, obs, task_id)
        if self.twin_q:  # critics of (s, a): nothing to evaluate per state (see ``q_values``)
            value_carry, v = state.value, jnp.zeros(f.shape[:-1] + (1,), f.dtype)
        else:
            value_carry, v = self._call(self.value_net, value, state.value, obs, task_id)
        if not self.uses_prior:  # h_θ0 is never read: π_0's place holds a weight-0 copy of π_i
            pi = self._head(f)
            pi0 = jax.tree_util.tree_map(jax.lax.stop_gradient, pi)
            return pi, pi0, v[..., 0], CoreState(state.prior, task_carry, value_carry)
        prior_carry, h0 = self._call(self.prior_net, prior, state.prior, obs)
        pi0 = self._head(h0)
        if self.architecture != "2col":
            pi = self._head(f)
        elif self.discrete:
            pi = two_column_logits(h0, f, column_alpha, 1.0)
        else:
            column = self._head(f)
            pi = gaussian_two_column(pi0[0], pi0[1], column[0], column[1], column_alpha)
        return pi, pi0, v[..., 0], CoreState(prior_carry, task_carry, value_carry)

    def step(
        self, params: DistralParams, obs: jax.Array, state: CoreState, column_alpha: jax.Array
    ) -> tuple[Any, Any, jax.Array, CoreState]:
        """One time step of every task's networks.

        Args:
          params: all parameters.
          obs: ``[N, ..., *observation_shape]``; any batch axes after the task axis.
          state: the cores' state ``[N, ...]`` (``initial_state``); no leaves for ``"mlp"``.
          column_alpha: α_c, the weight of h_θ0 in the 2-column policy.
        Returns:
          ``(pi, pi0, value, state)``: dist params of π_i and π_0 with leading axes ``[N, ...]``,
          values ``[N, ...]`` and the cores' next state.
        """
        axis = None if self.shared else 0
        task_ids = jnp.asarray(self.task_ids)
        fn = jax.vmap(self._one_task, in_axes=(None, axis, axis, 0, 0, 0, None))
        return fn(params.prior, params.task, params.value, task_ids, obs, state, column_alpha)

    def apply(
        self, params: DistralParams, obs: jax.Array, column_alpha: jax.Array
    ) -> tuple[Any, Any, jax.Array]:
        """Policies and values of every task from the start of an episode (``step`` from
        ``initial_state``); for the feed-forward core, simply the networks' outputs.

        Args:
          params: all parameters.
          obs: ``[N, ..., *observation_shape]``; any batch axes after the task axis.
          column_alpha: α_c, the weight of h_θ0 in the 2-column policy.
        Returns:
          ``(pi, pi0, value)``: dist params of π_i and π_0 with leading axes ``[N, ...]`` and
          values ``[N, ...]``.
        """
        state = self.initial_state(self._batch_shape(obs))
        pi, pi0, v, _ = self.step(params, obs, state, column_alpha)
        return pi, pi0, v

    def _batch_shape(self, obs: jax.Array) -> tuple[int, ...]:
        return tuple(obs.shape[: obs.ndim - len(self.observation_shape)])

    def value(self, params: DistralParams, obs: jax.Array, value_state: PyTree = None) -> jax.Array:
        """Values only, ``[N, ..., *observation_shape] -> [N, ...]``, from the value cores'
        state ``value_state`` (default: the start of an episode)."""
        axis = None if self.shared else 0
        if value_state is None:
            value_state = self.initial_state(self._batch_shape(obs)).value

        def one(value_params, task_id, o, carry):
            return self._call(self.value_net, value_params, carry, o, task_id)[1][..., 0]

        task_ids = jnp.asarray(self.task_ids)
        return jax.vmap(one, in_axes=(axis, 0, 0, 0))(params.value, task_ids, obs, value_state)

    def q_values(
        self,
        value_params: PyTree,
        obs_stats: RunningStats,
        obs: jax.Array,
        action: jax.Array | None = None,
    ) -> jax.Array:
        """The twin critics of every task on raw observations (``critic="twin_q"``).

        Args:
          value_params: ``DistralParams.value`` or a copy of it (SAC's target critics).
          obs: ``[N, ..., *observation_shape]``.
          action: ``[N, ..., D]`` the environment's actions (continuous families only).
        Returns:
          ``[N, ..., 2]`` Q_ik(s, a) for continuous actions, ``[N, ..., 2, A]`` for discrete
          ones (every action's value).
        """
        if not self.twin_q:
            raise ValueError("q_values needs networks built with critic='twin_q'")
        if self.discrete != (action is None):
            raise ValueError(
                "`action` must be given for continuous actions and None for discrete ones "
                f"(discrete={self.discrete})"
            )
        axis = None if self.shared else 0
        obs = self.preprocess(obs_stats, obs)

        def one(params, task_id, o, a):
            def critic(p):
                out = self._call(self.value_net, p, (), o, task_id, a)[1]
                return out if self.discrete else out[..., 0]

            q = jax.vmap(critic)(params)  # [2, ...] or [2, ..., A]
            return jnp.moveaxis(q, 0, o.ndim - len(self.observation_shape))

        task_ids = jnp.asarray(self.task_ids)
        in_axes = (axis, 0, 0, None if action is None else 0)
        return jax.vmap(one, in_axes=in_axes)(value_params, task_ids, obs, action)

    def preprocess(self, obs_stats: RunningStats, obs: jax.Array) -> jax.Array:
        """What the networks see: observations normalised when the networks were built to."""
        return obs_stats.normalize(obs) if self.normalize_observations else obs

    def policies(
        self, params: DistralParams, obs_stats: RunningStats, obs: jax.Array, column_alpha
    ) -> tuple[Any, Any, jax.Array]:
        """``apply`` on raw observations ``[N, ..., *observation_shape]``."""
        return self.apply(params, self.preprocess(obs_stats, obs), column_alpha)

    def values(self, params: DistralParams, obs_stats: RunningStats, obs: jax.Array) -> jax.Array:
        """``value`` on raw observations ``[N, ..., *observation_shape]``."""
        return self.value(params, self.preprocess(obs_stats, obs))

    def act(
        self,
        params: DistralParams,
        obs_stats: RunningStats,
        obs: jax.Array,
        state: CoreState,
        column_alpha: jax.Array,
    ) -> tuple[Any, Any, jax.Array, CoreState]:
        """``step`` on raw observations ``[N, ..., *observation_shape]``."""
        return self.step(params, self.preprocess(obs_stats, obs), state, column_alpha)

    def unroll(
        self,
        params: DistralParams,
        obs_stats: RunningStats,
        obs: jax.Array,
        start: CoreState,
        done: jax.Array,
        column_alpha: jax.Array,
        final_obs: jax.Array | None = None,
    ) -> Unrolled:
        """The networks along trajectories ``[N, E, T]`` of raw observations.

        The cores start from ``start`` (``[N, E]``, the state the rollout acted from at the
        first step) and are reset to ``initial_state`` after every step where ``done`` (the
        environment then auto-reset): truncated backpropagation through the unroll. The
        feed-forward core needs no scan and ignores ``start`` and ``done``.

        Args:
          obs: ``[N, E, T, *observation_shape]``.
          done: ``[N, E, T]`` 1 where an episode ended at that step.
          final_obs: optional ``[N, E, T, *observation_shape]``, the observation each step
            reached; its value (from the value core's state after the step) is ``final_value``.
        Returns:
          ``Unrolled`` with leaves ``[N, E, T, ...]``.
        """
        obs = self.preprocess(obs_stats, obs)
        if final_obs is not None:
            final_obs = self.preprocess(obs_stats, final_obs)
        if not self.recurrent:
            pi, pi0, v = self.apply(params, obs, column_alpha)
            final_v = None if final_obs is None else self.value(params, final_obs)
            return Unrolled(pi, pi0, v, final_v, CoreState())
        time_major = lambda x: None if x is None else jnp.moveaxis(x, 2, 0)

        def step(state: CoreState, inputs):
            o, d, final_o = inputs
            pi, pi0, v, nxt = self.step(params, o, state, column_alpha)
            final_v = None if final_o is None else self.value(params, final_o, nxt.value)
            return reset_core_state(nxt, d), Unrolled(pi, pi0, v, final_v, state)

        _, out = jax.lax.scan(
            step, start, (time_major(obs), time_major(done), time_major(final_obs))
        )
        return jax.tree_util.tree_map(lambda x: jnp.moveaxis(x, 0, 2), out)


class Unrolled(NamedTuple):
    """``DistralNetworks.unroll``'s outputs along trajectories, leaves ``[N, E, T, ...]``.

    Attributes:
      pi, pi0: distribution parameters of π_i and π_0.
      value: V(obs_t).
      final_value: V(final_obs_t) (None when not asked for).
      states: the cores' state each step was computed from (recurrent cores only).
    """

    pi: Any
    pi0: Any
    value: jax.Array
    final_value: jax.Array | None
    states: CoreState


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
        core=config.core,
        observation_shape=env.observation_shape,
        observation_vocabulary=env.observation_vocabulary,
        task_ids=env.task_ids,
        num_task_ids=env.num_task_ids,
        uses_prior=config.uses_prior,
        squash=config.action_squash,
        critic="twin_q" if config.learner == "sac" else "value",
    )
