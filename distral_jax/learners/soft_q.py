"""Sample-based tabular Distral: soft Q-learning per task with a count-based distilled policy.

The paper's grid-world algorithm (Teh et al. 2017, §4.1) for task families whose states are
indices seen as one-hot observations (``GridWorld(obs="onehot")``). Each task keeps a table
Q_i [S, A] and acts with π_i ∝ π0^α exp(β Q_i); π0 is the normalised table of γ^t-weighted
state-action counts of all tasks' rollouts, the sample version of ``tabular.distill``.
Environments are stepped through ``envs.wrappers.wrap_for_training`` (time limit, then
auto-reset) like every other learner; policies are evaluated exactly with the family's
``tabular_model()`` and ``tabular.expected_returns``. The exact solution is
``distral_jax.tabular.distral`` (docs/maths.md §2).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax import tabular
from distral_jax.envs.base import TaskFamily
from distral_jax.envs.gridworld import bits_to_uniform
from distral_jax.envs.wrappers import wrap_for_training
from distral_jax.losses import scaled_log_prior, soft_value

Array = jax.Array

METHODS = ("distral", "independent", "shared")


class SampledResult(NamedTuple):
    """Output of ``sampled_distral``; arrays carry a leading seed axis when several seeds ran.

    env_steps: ``[K]`` total environment steps (all tasks and envs) at each evaluation.
    greedy_returns, sampled_returns: ``[(seeds,) K, N]`` exact expected undiscounted returns
      (within ``episode_length`` steps) of the greedy and the sampling task policies.
    optimal_returns: ``[N]``, the best possible within ``episode_length``.
    Q: ``[(seeds,) N, S, A]`` (for "shared", N copies of the one table).
    log_pi0: ``[(seeds,) S, A]``, the count estimate of π0.
    """

    env_steps: Array
    greedy_returns: Array
    sampled_returns: Array
    optimal_returns: Array
    Q: Array
    log_pi0: Array


def _count_log_pi0(counts: Array, prior_count: Array) -> Array:
    """log π0 ``[S, A]`` from counts ``[S, A]``: the posterior mean under a symmetric
    Dirichlet(prior_count), so the logs stay finite and unseen states get a uniform π0."""
    smoothed = counts + prior_count
    return jnp.log(smoothed / smoothed.sum(-1, keepdims=True))


@functools.partial(
    jax.jit,
    static_argnames=(
        "env", "num_updates", "num_envs", "rollout_length", "episode_length", "eval_every"
    ),
)  # fmt: skip
def _sampled_run(
    env, rng, shared, alpha, beta, gamma, learning_rate, count_decay, prior_count, *,
    num_updates, num_envs, rollout_length, episode_length, eval_every,
):  # fmt: skip
    # ``shared`` is traced (not static) so that all three methods share one compilation.
    model = env.tabular_model()
    N, S, A, E = env.num_tasks, env.observation_size, env.action_size, num_envs
    B = N * E
    wrapped = wrap_for_training(env, episode_length)
    # Tasks × envs flattened to one batch axis of B: threefry (inside the env and the
    # auto-reset) compiles several times slower on CPU under nested vmaps than under one.
    tasks = jax.tree_util.tree_map(lambda x: jnp.repeat(x, E, axis=0), env.tasks())
    # Row of the Q table each env reads and writes: its task's, or row 0 for the shared one.
    row = jnp.where(shared, 0, jnp.arange(N))
    table = jnp.repeat(row, E)  # [B]
    alpha = jnp.where(shared, 0.0, alpha)
    reset = jax.vmap(wrapped.reset)
    step = jax.vmap(wrapped.step)

    def cell_of(obs):  # [..., S] one-hot -> int32 [...]
        return jnp.argmax(obs, axis=-1).astype(jnp.int32)

    def prior_of(counts):  # α log π0 [S, A]
        return scaled_log_prior(_count_log_pi0(counts, prior_count), alpha)

    def draw(rng, shape):  # the next key and uint32 bits of ``shape``, one threefry call
        bits = jax.random.bits(rng, (int(np.prod(shape)) + 2,), jnp.uint32)
        return bits[-2:], bits[:-2].reshape(shape)

    def env_step(carry, u):
        state, logits = carry  # wrapped state of the B envs; logits [N, S, A]
        s = cell_of(state.obs)
        # Inverse-CDF sample from π_i(.|s): the first action whose CDF exceeds u.
        cdf = jnp.cumsum(jax.nn.softmax(logits[table, s], -1), -1)
        a = jnp.sum(cdf <= u[:, None] * cdf[:, -1:], -1).clip(0, A - 1).astype(jnp.int32)
        nxt = step(state, a, tasks)
        # A time limit bootstraps (truncation); only reaching a terminal state stops it.
        term = nxt.done * (1.0 - nxt.info["truncation"]) > 0
        # The state the transition reached: auto-reset has put the next episode's in ``obs``.
        s2 = cell_of(nxt.info["final_obs"])
        discount = gamma ** state.info["steps"]  # γ^t, t = step within the episode
        return (nxt, logits), (s, a, nxt.reward, s2, term, discount)

    def update(_, carry):
        state, rng, Q, counts = carry
        log_pi0 = _count_log_pi0(counts, prior_count)
        logits = prior_of(counts)[None] + beta * Q  # [N, S, A] (only row 0 used when shared)
        rng, bits = draw(rng, (rollout_length, B))
        (state, _), batch = jax.lax.scan(env_step, (state, logits), bits_to_uniform(bits))
        s, a, r, s2, term, discount = batch  # each [T, B]
        q = jnp.broadcast_to(table, s.shape)
        # Soft Q-learning: target r + γ V_soft(s'), V_soft from the current π0 (and Q).
        V = soft_value(Q, jnp.broadcast_to(log_pi0, Q.shape), alpha, beta)  # [N, S]
        target = r + gamma * jnp.where(term, 0.0, V[q, s2])
        td = target - Q[q, s, a]
        td_sum = jnp.zeros_like(Q).at[q, s, a].add(td)
        visits = jnp.zeros_like(Q).at[q, s, a].add(1.0)
        Q = Q + learning_rate * td_sum / jnp.maximum(visits, 1.0)  # mean TD per (s, a)
        # π0 from γ^t-weighted state-action counts of the task policies, forgetting old ones.
        counts = count_decay * counts + jnp.zeros_like(counts).at[s, a].add(discount)
        return state, rng, Q, counts

    def evaluate(Q, counts):
        logits = (prior_of(counts)[None] + beta * Q)[row]
        greedy = jax.nn.one_hot(jnp.argmax(logits, -1), A)
        ret = functools.partial(
            tabular.expected_returns, model.P, model.R, model.d0, episode_length
        )
        both = jax.vmap(lambda pi: ret(pi=pi))(jnp.stack([greedy, jax.nn.softmax(logits, -1)]))
        return both[0], both[1]

    def chunk(carry, _):
        carry = jax.lax.fori_loop(0, eval_every, update, carry)
        return carry, evaluate(carry[2], carry[3])

    def run_one(rng):
        rng, reset_keys = draw(rng, (B, 2))
        Q = jnp.zeros((N, S, A), jnp.float32)
        counts = jnp.zeros((S, A), jnp.float32)
        carry = (reset(reset_keys, tasks), rng, Q, counts)
        first = evaluate(Q, counts)
        carry, (greedy, soft) = jax.lax.scan(chunk, carry, None, length=num_updates // eval_every)
        greedy = jnp.concatenate([first[0][None], greedy])
        soft = jnp.concatenate([first[1][None], soft])
        Q = jnp.where(shared, carry[2][:1], carry[2])  # shared: every row is the one table
        return greedy, soft, Q[row], _count_log_pi0(carry[3], prior_count)

    if rng.ndim == 2:
        return jax.vmap(run_one)(rng)
    return run_one(rng)


def _check_family(env: TaskFamily, method: str):
    """Named errors for what the agent needs of a family; returns its tabular model."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
    if not env.one_hot_observations:
        raise ValueError(
            f"env: sampled_distral needs one-hot observations of the state index (e.g. "
            f"GridWorld(obs='onehot')), got {type(env).__name__} with "
            f"one_hot_observations False"
        )
    if not env.discrete:
        raise ValueError(f"env: sampled_distral needs discrete actions, got {type(env).__name__}")
    if not hasattr(env, "tabular_model"):
        raise ValueError(f"env: {type(env).__name__} has no tabular_model() to evaluate with")
    model = env.tabular_model()
    if model.P.shape[1] != env.observation_size:
        raise ValueError(
            f"env: tabular_model() has {model.P.shape[1]} states but the one-hot observations "
            f"have size {env.observation_size}"
        )
    return model


def sampled_distral(
    env: TaskFamily,
    rng: Array,
    *,
    method: str = "distral",
    alpha: float = 0.5,
    beta: float = 100.0,
    gamma: float = 0.95,
    num_updates: int = 1000,
    num_envs: int = 8,
    rollout_length: int = 10,
    episode_length: int = 50,
    learning_rate: float = 0.5,
    count_decay: float = 0.9,
    prior_count: float = 0.1,
    eval_every: int = 10,
) -> SampledResult:
    """Sample-based tabular Distral (the paper's grid-world algorithm).

    Every update runs ``rollout_length`` steps of ``num_envs`` environments per task (tasks ×
    envs vmapped, through ``wrap_for_training(env, episode_length)``: episodes end at a
    terminal state or after ``episode_length`` steps, then restart), then, for every visited
    (s, a), moves the task's soft-Q table by ``learning_rate`` times the mean TD error of the
    target r + γ V_soft(s') (0 after termination; a time limit bootstraps from the true last
    state), where V_soft(s) = (1/β) log Σ_a π0(a|s)^α exp(β Q_i(s,a)) uses the current π0.
    The task policies act with π_i ∝ π0^α exp(β Q_i).

    π0 is the normalised table of γ^t-weighted state-action counts of all tasks' rollouts
    (t = step within the episode), the sample version of ``tabular.distill``. Counts decay by
    ``count_decay`` per update (a window of about 1 / (1 − decay) updates), because the task
    policies keep changing; a Dirichlet ``prior_count`` keeps log π0 finite.

    Methods: ``"distral"`` (as above), ``"independent"`` (α = 0: independent soft Q-learning,
    π0 unused), ``"shared"`` (one soft-Q table trained on all tasks' data and used by all).

    The whole run (all updates and evaluations) is one jitted program; policies are evaluated
    exactly with ``env.tabular_model()`` every ``eval_every`` updates.

    Args:
      env: an unwrapped task family with discrete actions, one-hot observations of the state
        index (e.g. ``GridWorld(obs="onehot")``) and a ``tabular_model()`` with fields
        ``P [N, S, A, S]``, ``R [N, S, A]``, ``d0 [N, S]`` (terminal rows of P zero).
      rng: a key ``[2]`` for one run, or ``[seeds, 2]`` to vmap seeds (typed keys ``[]`` /
        ``[seeds]`` also work).
      method: one of ``METHODS``.
      alpha, beta, gamma: α ∈ [0, 1], β > 0, γ ∈ [0, 1).
      num_updates: table updates; a multiple of ``eval_every`` (the remainder is dropped).
      num_envs: environments per task. rollout_length: steps per environment per update.
      episode_length: the time limit T, also the horizon of the exact evaluation.
      learning_rate, count_decay, prior_count: see above. eval_every: updates per evaluation.
    Returns:
      A ``SampledResult`` with K = ``num_updates // eval_every + 1`` evaluations (the first
      before any update).
    """
    model = _check_family(env, method)
    if method == "independent":
        alpha = 0.0
    if num_updates < eval_every or eval_every < 1:
        raise ValueError(f"num_updates ({num_updates}) must be >= eval_every ({eval_every}) >= 1")
    if jnp.issubdtype(rng.dtype, jax.dtypes.prng_key):
        rng = jax.random.key_data(rng)
    f32 = functools.partial(jnp.asarray, dtype=jnp.float32)
    greedy, soft, Q, log_pi0 = _sampled_run(
        env, rng, jnp.asarray(method == "shared"), f32(alpha), f32(beta), f32(gamma),
        f32(learning_rate), f32(count_decay), f32(prior_count), num_updates=num_updates,
        num_envs=num_envs, rollout_length=rollout_length, episode_length=episode_length,
        eval_every=eval_every,
    )  # fmt: skip
    per_eval = eval_every * rollout_length * num_envs * env.num_tasks
    env_steps = jnp.arange(num_updates // eval_every + 1) * per_eval
    return SampledResult(
        env_steps=env_steps,
        greedy_returns=greedy,
        sampled_returns=soft,
        optimal_returns=tabular.expected_returns(model.P, model.R, model.d0, episode_length),
        Q=Q,
        log_pi0=log_pi0,
    )
