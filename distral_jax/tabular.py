"""Exact tabular Distral: soft value iteration alternating with distillation (docs/maths.md §2).

This module holds the exact solvers only, for MDPs given as arrays; the sample-based tabular
agent (soft Q-learning with a count-based π0) is ``distral_jax.learners.soft_q``.

Notation: N tasks, S states, A actions. ``P[i, s, a, s']`` = p_i(s'|s,a), ``R[i, s, a]`` the
expected reward, ``d0[i, s]`` the start distribution, policies as log-probabilities
``log_pi[i, s, a]`` and ``log_pi0[s, a]``. The regularised objective of task i
(docs/maths.md §1) is

    J_i = E_{π_i}[ Σ_t γ^t ( R_i(s_t,a_t) + (α/β) log π_0(a_t|s_t) − (1/β) log π_i(a_t|s_t) ) ].

The soft value is ``losses.soft_value`` and the α log π0 term ``losses.scaled_log_prior``: the
same functions the learners use.

Terminal states. A state whose rows ``P[s, a, :]`` are all zero (for every action) is
terminal: the agent never acts there, it earns nothing and V(s) = 0. Rows that sum to less
than one end the episode with the missing probability. ``GridWorld.tabular_model`` uses the
first convention for goal cells.

Precision. Everything runs in the dtype of the inputs; for float64 call
``jax.config.update("jax_enable_x64", True)`` at start-up (or use the ``jax.enable_x64(True)``
context manager) before building the arrays. The log-sum-exp backups are stable for β up to
about 1e5.

Reward scale. β multiplies rewards against entropies: the entropy bonus is about log|A|/β per
step, so β must grow with 1 / (reward scale) for the same behaviour (see ``envs.gridworld``).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.losses import scaled_log_prior, soft_value

Array = jax.Array


def terminal_states(P: Array) -> Array:
    """bool ``[..., S]``: states whose rows of ``P`` ``[..., S, A, S]`` are all zero."""
    return jnp.all(P.sum(-1) == 0, axis=-1)


def _default_tol(dtype) -> float:
    return 1e-12 if jnp.dtype(dtype) == jnp.float64 else 1e-6


def soft_value_iteration(
    P: Array,
    R: Array,
    log_pi0: Array,
    alpha: float | Array,
    beta: float | Array,
    gamma: float | Array,
    num_iters: int = 10_000,
    tol: float | None = None,
) -> tuple[Array, Array, Array]:
    """Soft value iteration for ONE task with π0 fixed.

        V(s)      = (1/β) log Σ_a exp(α log π0(a|s) + β Q(s,a))     (0 at terminal states)
        Q(s,a)    = R(s,a) + γ Σ_s' P(s'|s,a) V(s')
        log π(a|s) = α log π0(a|s) + β Q(s,a) − β V(s)

    The backup is a γ-contraction in the sup norm; iteration stops when the change of V is
    below ``tol · (1 + max|V|)`` (default 1e-12 in float64, 1e-6 in float32) or after
    ``num_iters`` backups. Works under ``jit`` and ``vmap`` (then it runs until all converge).

    Args:
      P: ``[S, A, S]`` transitions; R: ``[S, A]`` rewards; log_pi0: ``[S, A]``.
      alpha, beta, gamma: scalars, α ∈ [0, 1], β > 0, γ ∈ [0, 1).
    Returns:
      ``(Q [S, A], V [S], log_pi [S, A])``. At terminal states log_pi is the normalised
      α log π0 (any value would do: the agent never acts there).
    """
    dtype = jnp.result_type(P, R, float)
    P, R = P.astype(dtype), R.astype(dtype)
    log_pi0 = log_pi0.astype(dtype)
    terminal = terminal_states(P)
    tol = _default_tol(dtype) if tol is None else tol

    def backup(V):
        Q = R + gamma * jnp.einsum("sat,t->sa", P, V)
        return Q, jnp.where(terminal, 0.0, soft_value(Q, log_pi0, alpha, beta))

    def cond(carry):
        i, V, delta = carry
        return (i < num_iters) & (delta > tol * (1.0 + jnp.max(jnp.abs(V))))

    def body(carry):
        i, V, _ = carry
        V_new = backup(V)[1]
        return i + 1, V_new, jnp.max(jnp.abs(V_new - V))

    V0 = jnp.zeros(R.shape[0], dtype)
    _, V, _ = jax.lax.while_loop(cond, body, (0, V0, jnp.asarray(jnp.inf, dtype)))
    Q, V = backup(V)
    log_pi = jax.nn.log_softmax(scaled_log_prior(log_pi0, alpha) + beta * Q, axis=-1)
    return Q, V, log_pi


def discounted_occupancy(P: Array, pi: Array, d0: Array, gamma: float | Array) -> Array:
    """``d [S]`` = Σ_t γ^t Pr(s_t = s) for ONE task: the solution of (I − γ P_π^T) d = d0.

    ``P`` ``[S, A, S]``, ``pi`` ``[S, A]`` probabilities, ``d0`` ``[S]``. Terminal states get
    the mass of arriving there (they are excluded by the callers, since nobody acts there).
    """
    P_pi = jnp.einsum("sa,sat->st", pi, P)
    eye = jnp.eye(P_pi.shape[0], dtype=P_pi.dtype)
    return jnp.linalg.solve(eye - gamma * P_pi.T, d0.astype(P_pi.dtype))


def distill(P: Array, log_pi: Array, d0: Array, gamma: float | Array) -> Array:
    """The distilled policy: the occupancy-weighted mixture of the task policies.

        π0(a|s) = Σ_i d_i(s) π_i(a|s) / Σ_i d_i(s),   (I − γ P_{π_i}^T) d_i = d0_i,

    i.e. the maximiser of Σ_i E_{π_i}[Σ_t γ^t log π0(a_t|s_t)], the only term of J that
    depends on π0. Uniform at states that no task reaches and at terminal states.

    Args:
      P: ``[N, S, A, S]``; log_pi: ``[N, S, A]``; d0: ``[N, S]``; gamma: scalar.
    Returns:
      log_pi0 ``[S, A]``; probabilities are floored at the smallest normal float (about
      1e-308 in float64, 1e-38 in float32) so that the logs stay finite.
    """
    pi = jnp.exp(log_pi)
    d = jax.vmap(discounted_occupancy, in_axes=(0, 0, 0, None))(P, pi, d0, gamma)
    weight = jnp.where(terminal_states(P), 0.0, jnp.maximum(d, 0.0))  # [N, S]
    total = weight.sum(0)
    num = jnp.einsum("ns,nsa->sa", weight, pi)
    # The linear solve leaves round-off (≈ eps) at unreachable states: treat as unreached.
    reached = total > 100 * jnp.finfo(total.dtype).eps * jnp.maximum(total.max(), 1.0)
    pi0 = jnp.where(
        reached[:, None], num / jnp.where(reached, total, 1.0)[:, None], 1.0 / pi.shape[-1]
    )
    # Floor at the smallest normal number: a task policy that underflowed to 0 (large β)
    # would otherwise give log π0 = −inf, and −inf · 0 = nan at states a task never visits.
    return jnp.log(jnp.maximum(pi0, jnp.finfo(pi0.dtype).tiny))


def _task_objective(P, R, log_pi, log_pi0, d0, alpha, beta, gamma):
    pi = jnp.exp(log_pi)
    # Σ_a π (...) with 0 · log 0 = 0; a positive π where π0 = 0 correctly gives −inf.
    neg_entropy = jnp.sum(jnp.where(pi > 0, pi * log_pi, 0.0), -1)
    cross = jnp.sum(jnp.where(pi > 0, pi * log_pi0, 0.0), -1)
    r_pi = jnp.sum(pi * R, -1) - neg_entropy / beta
    r_pi = r_pi + jnp.where(alpha == 0, 0.0, alpha / beta * cross)
    r_pi = jnp.where(terminal_states(P), 0.0, r_pi)
    P_pi = jnp.einsum("sa,sat->st", pi, P)
    eye = jnp.eye(P_pi.shape[0], dtype=P_pi.dtype)
    V = jnp.linalg.solve(eye - gamma * P_pi, r_pi)
    return d0 @ V


def objective(
    P: Array,
    R: Array,
    log_pi: Array,
    log_pi0: Array,
    d0: Array,
    alpha: float | Array,
    beta: float | Array,
    gamma: float | Array,
) -> Array:
    """Each task's exact regularised return J_i (docs/maths.md §1), ``[N]``.

    J_i = d0_i · V_i with V_i = (I − γ P_{π_i})^{-1} r_i and
    r_i(s) = Σ_a π_i(a|s) (R_i(s,a) + (α/β) log π0(a|s) − (1/β) log π_i(a|s)), 0 at terminal
    states. ``log_pi0`` is ``[S, A]`` (shared) or ``[N, S, A]``.
    """
    pi0_axis = 0 if log_pi0.ndim == 3 else None
    fn = jax.vmap(_task_objective, in_axes=(0, 0, 0, pi0_axis, 0, None, None, None))
    return fn(P, R, log_pi, log_pi0, d0, alpha, beta, gamma)


class DistralResult(NamedTuple):
    """Output of ``distral``.

    log_pi0: ``[S, A]``, distilled from the last task policies.
    log_pi, Q, V: ``[N, S, A]``, ``[N, S, A]``, ``[N, S]`` from the last soft-VI step (optimal
      against the π0 that preceded the last distillation).
    objective_history: ``[2 · num_rounds + 1, N]`` of J_i: entry 0 at π_i = π0 = uniform, then
      after each half-step (odd entries after soft VI, even entries after distillation).
    """

    log_pi0: Array
    log_pi: Array
    Q: Array
    V: Array
    objective_history: Array


@functools.partial(jax.jit, static_argnames=("num_rounds", "num_iters"))
def _distral(P, R, d0, log_pi0, alpha, beta, gamma, num_rounds, num_iters, tol):
    svi = functools.partial(soft_value_iteration, num_iters=num_iters, tol=tol)
    svi = jax.vmap(svi, in_axes=(0, 0, None, None, None, None))
    J = functools.partial(objective, P, R, d0=d0, alpha=alpha, beta=beta, gamma=gamma)
    N = P.shape[0]
    J0 = J(jnp.broadcast_to(log_pi0, (N,) + log_pi0.shape), log_pi0)

    def round_(log_pi0, _):
        Q, V, log_pi = svi(P, R, log_pi0, alpha, beta, gamma)
        J_vi = J(log_pi, log_pi0)
        log_pi0 = distill(P, log_pi, d0, gamma)
        return log_pi0, ((Q, V, log_pi), jnp.stack([J_vi, J(log_pi, log_pi0)]))

    log_pi0, (solutions, history) = jax.lax.scan(round_, log_pi0, None, length=num_rounds)
    Q, V, log_pi = jax.tree_util.tree_map(lambda x: x[-1], solutions)
    history = jnp.concatenate([J0[None], history.reshape(2 * num_rounds, N)])
    return DistralResult(log_pi0, log_pi, Q, V, history)


def distral(
    P: Array,
    R: Array,
    d0: Array,
    alpha: float,
    beta: float,
    gamma: float,
    num_rounds: int = 30,
    num_iters: int = 10_000,
    tol: float | None = None,
    log_pi0: Array | None = None,
) -> DistralResult:
    """Exact tabular Distral: alternate soft VI for all tasks (vmapped) and distillation.

    Each half-step maximises J = Σ_i J_i over one block (π_i given π0, then π0 given π_i),
    so the joint objective never decreases (up to the soft-VI tolerance). Starts from a
    uniform π0 unless ``log_pi0`` ``[S, A]`` is given.

    Args:
      P: ``[N, S, A, S]``; R: ``[N, S, A]``; d0: ``[N, S]``.
      alpha, beta, gamma: α ∈ [0, 1], β > 0, γ ∈ [0, 1).
      num_rounds: alternations; num_iters, tol: soft-VI limits (see soft_value_iteration).
    """
    dtype = jnp.result_type(P, R, float)
    S, A = P.shape[1], P.shape[2]
    if log_pi0 is None:
        log_pi0 = jnp.full((S, A), -np.log(A), dtype)
    tol = _default_tol(dtype) if tol is None else tol
    return _distral(
        P.astype(dtype), R.astype(dtype), d0.astype(dtype), jnp.asarray(log_pi0, dtype),
        jnp.asarray(alpha, dtype), jnp.asarray(beta, dtype), jnp.asarray(gamma, dtype),
        num_rounds, num_iters, jnp.asarray(tol, dtype),
    )  # fmt: skip


def hard_value_iteration(
    P: Array, R: Array, gamma: float | Array, num_iters: int = 10_000, tol: float | None = None
) -> tuple[Array, Array]:
    """Optimal ``(Q [S, A], V [S])`` of ONE discounted task (the β → ∞ limit, α = 0)."""
    dtype = jnp.result_type(P, R, float)
    terminal = terminal_states(P)
    tol = _default_tol(dtype) if tol is None else tol

    def body(carry):
        i, V, _ = carry
        V_new = jnp.where(terminal, 0.0, (R + gamma * jnp.einsum("sat,t->sa", P, V)).max(-1))
        return i + 1, V_new, jnp.max(jnp.abs(V_new - V))

    def cond(carry):
        i, V, delta = carry
        return (i < num_iters) & (delta > tol * (1.0 + jnp.max(jnp.abs(V))))

    V0 = jnp.zeros(R.shape[0], dtype)
    _, V, _ = jax.lax.while_loop(cond, body, (0, V0, jnp.asarray(jnp.inf, dtype)))
    Q = R + gamma * jnp.einsum("sat,t->sa", P, V)
    return Q, jnp.where(terminal, 0.0, Q.max(-1))


def _finite_horizon_return(P, R, d0, pi, horizon):
    if pi is None:
        backup = lambda _, V: (R + jnp.einsum("sat,t->sa", P, V)).max(-1)
    else:  # fold the policy in once: S² work per step instead of S²A
        pi = pi.astype(R.dtype)
        r_pi, P_pi = jnp.sum(pi * R, -1), jnp.sum(pi[..., None] * P, axis=1)
        backup = lambda _, V: r_pi + P_pi @ V
    # Unrolling cuts the per-iteration loop overhead, which dominates at these sizes.
    V0 = jnp.zeros(R.shape[0], R.dtype)
    V = jax.lax.fori_loop(0, horizon, backup, V0, unroll=max(1, min(horizon, 10)))
    return d0 @ V


@functools.partial(jax.jit, static_argnames="horizon")
def expected_returns(P: Array, R: Array, d0: Array, horizon: int, pi: Array | None = None) -> Array:
    """``[N]``: expected undiscounted return within ``horizon`` steps, from d0.

    With ``pi`` None the optimal one (finite-horizon hard value iteration,
    V_h = max_a R + P V_{h−1}); else that of ``pi`` (probabilities, ``[N, S, A]`` or a
    shared ``[S, A]``). Terminal states (zero rows) are worth 0. ``horizon`` is static.
    """
    pi_axis = None if pi is None or pi.ndim == 2 else 0
    fn = jax.vmap(_finite_horizon_return, in_axes=(0, 0, 0, pi_axis, None))
    return fn(P, R, d0, pi, int(horizon))
