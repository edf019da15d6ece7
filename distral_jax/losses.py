"""Distral losses: pure functions on one trajectory, in the style of rlax.

Time-major ``[T]`` arrays, rank and shape checks first, the maths in the docstrings. Batch and
task axes are added by the caller with ``jax.vmap``. Equation numbers refer to Teh et al.,
"Distral: Robust Multitask Reinforcement Learning" (NIPS 2017); docs/maths.md
explains them in this project's notation.

The joint objective (eq. 1) for task i, with α = c_KL/(c_KL + c_Ent), β = 1/(c_KL + c_Ent):

    J_i = E_{π_i}[ Σ_t γ^t ( R_i(a_t, s_t) + (α/β) log π_0(a_t|s_t) − (1/β) log π_i(a_t|s_t) ) ]

Everything below is a piece of its gradient: the regularised reward (eq. 9), the 2-column
parameterisation and the distillation term (eq. 10), and a complete actor-critic loss.
"""

from __future__ import annotations

from typing import Literal

import chex
import jax
import jax.numpy as jnp
import numpy as np

from distral_jax.distributions import (
    DistParams,
    DistributionOps,
    categorical,
    categorical_kl,
    check_rank,
    check_same_shape,
    gaussian_kl,
)
from distral_jax.two_column import gaussian_two_column, two_column_logits

Array = jax.Array
Numeric = chex.Numeric

__all__ = [
    "alpha_beta",
    "check_alpha_beta",
    "categorical_kl",
    "distillation_loss",
    "distral_actor_critic_loss",
    "distral_ppo_loss",
    "gaussian_kl",
    "gaussian_two_column",
    "regularized_returns",
    "regularized_rewards",
    "sac_policy_loss",
    "scaled_log_prior",
    "soft_bellman_target",
    "soft_value",
    "temperature_loss",
    "twin_critic_loss",
    "two_column_logits",
]


# ----------------------------------------------------------------------------- input checks


def _is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def _arrays(*xs):
    """Lists, numpy arrays and scalars as jax arrays; tuples (Gaussian params) stay pytrees."""
    return tuple(
        tuple(jnp.asarray(v) for v in x) if isinstance(x, tuple) else jnp.asarray(x) for x in xs
    )


def check_alpha_beta(alpha: Numeric, beta: Numeric) -> None:
    """Named errors for α ∉ [0, 1] or β ≤ 0 when they are concrete (traced values pass).

    The usual mistake is passing the costs (c_KL, c_Ent) where (α, β) belong: convert them
    with ``alpha_beta``.
    """
    hint = "(from costs, use losses.alpha_beta(c_kl, c_ent))"
    if _is_concrete(alpha):
        a = np.asarray(alpha, np.float64)
        if not np.all((a >= 0.0) & (a <= 1.0)):
            raise ValueError(f"`alpha` must be in [0, 1], got {a.tolist()!r} {hint}")
    if _is_concrete(beta):
        b = np.asarray(beta, np.float64)
        if not np.all(b > 0.0):
            raise ValueError(f"`beta` must be > 0, got {b.tolist()!r} {hint}")


# ----------------------------------------------------------------------------- building blocks


def alpha_beta(c_kl: float, c_ent: float) -> tuple[float, float]:
    """Converts the paper's costs into (α, β) (Section 2).

        α = c_KL / (c_KL + c_Ent) ∈ [0, 1],    β = 1 / (c_KL + c_Ent) > 0

    Args:
      c_kl: cost of the KL from π_i to π_0, ≥ 0.
      c_ent: cost of (minus) the entropy of π_i, ≥ 0.
    Returns:
      ``(alpha, beta)`` as Python floats (or arrays if the costs are traced).
    Raises:
      ValueError: a negative cost, or both costs zero (β would be infinite).
    """
    for name, value in (("c_kl", c_kl), ("c_ent", c_ent)):
        if _is_concrete(value) and float(value) < 0:
            raise ValueError(f"`{name}` must be >= 0, got {value}")
    if _is_concrete(c_kl) and _is_concrete(c_ent) and float(c_kl) + float(c_ent) == 0:
        raise ValueError("`c_kl` and `c_ent` cannot both be 0: beta = 1/(c_kl + c_ent) is infinite")
    total = c_kl + c_ent
    return c_kl / total, 1.0 / total


def regularized_rewards(
    r_t: Array, log_pi_i_t: Array, log_pi_0_t: Array, alpha: Numeric, beta: Numeric
) -> Array:
    """The regularised reward of eq. (9), a constant for the gradient:

        R^reg_t = r_t + (α/β) log π_0(a_t|s_t) − (1/β) log π_i(a_t|s_t)

    Args:
      r_t: ``[T]`` environment rewards.
      log_pi_i_t: ``[T]`` log π_i of the actions taken.
      log_pi_0_t: ``[T]`` log π_0 of the same actions (not of π_0's own samples).
      alpha, beta: scalars.
    Returns:
      ``[T]`` rewards through which no gradient flows.
    """
    r_t, log_pi_i_t, log_pi_0_t = _arrays(r_t, log_pi_i_t, log_pi_0_t)
    check_alpha_beta(alpha, beta)
    check_rank("r_t", r_t, 1)
    check_same_shape(r_t=r_t, log_pi_i_t=log_pi_i_t, log_pi_0_t=log_pi_0_t)
    reg = r_t + (alpha / beta) * log_pi_0_t - log_pi_i_t / beta
    return jax.lax.stop_gradient(reg)


def soft_value(q: Array, log_pi_0: Array, alpha: Numeric, beta: Numeric) -> Array:
    """The soft (free-energy) value of the tabular Distral update:

        V(s) = (1/β) log Σ_a π_0(a|s)^α exp(β Q(a,s))

    Computed as a log-sum-exp over the last axis, so it stays finite for β up to 1e5 and for
    π_0(a|s) = 0 (the action is then excluded, unless α = 0 where π_0^0 = 1).

    Args:
      q: ``[..., A]`` action values.
      log_pi_0: ``[..., A]`` log π_0.
      alpha, beta: scalars, β > 0.
    Returns:
      ``[...]``.
    """
    check_same_shape(q=q, log_pi_0=log_pi_0)
    return jax.nn.logsumexp(scaled_log_prior(log_pi_0, alpha) + beta * q, axis=-1) / beta


def scaled_log_prior(log_pi_0: Array, alpha: Numeric) -> Array:
    """``α log π_0`` with ``0 · log 0 = 0``: at α = 0 the prior drops out entirely.

    The soft-optimal task policy is ``log π_i = α log π_0 + β Q − β V`` (``soft_value``); this is
    its first term. Selecting before the product keeps ``0 · (−inf) = nan`` out of both branches
    and out of the gradient with respect to α.

    Args:
      log_pi_0: ``[..., A]`` log-probabilities of π_0 (may contain −inf).
      alpha: scalar α ∈ [0, 1].
    Returns:
      ``[..., A]``.
    """
    return alpha * jnp.where(alpha == 0, 0.0, log_pi_0)


def distillation_loss(
    pi_t: DistParams, pi0_t: DistParams, w_t: Array, dist: DistributionOps | None = None
) -> Array:
    """Distillation of π_0 towards the task policy, the last term of eq. (10).

        L = (1/T) Σ_t w_t · CE(stop_grad(π_i), π_0)(s_t),   CE(p, q) = −E_p log q = KL(p‖q) + H(p)

    For logits, ∂L/∂logits_0_t = w_t (π_0(·|s_t) − π_i(·|s_t)) / T, and no gradient reaches
    ``pi_t``. With w_t = (α/β) γ^t (or α/β) its gradient is eq. (10)'s distillation term
    (docs/maths.md §4); the full losses below use it with w_t = 1, scaled by α/β.

    Args:
      pi_t: task policy parameters ``[T, ...]``: logits ``[T, A]`` (the default categorical) or
        ``(loc, scale)`` ``[T, D]`` for a Gaussian ``dist``.
      pi0_t: the distilled policy's parameters, same structure and shapes.
      w_t: ``[T]`` weights.
      dist: the distribution family (default ``distributions.categorical()``).
    Returns:
      scalar loss.
    """
    dist = categorical() if dist is None else dist
    for name, x in (("pi_t", pi_t), ("pi0_t", pi0_t)):
        for leaf in jax.tree_util.tree_leaves(x):
            check_rank(name, leaf, 2)
    pi_shapes = [jnp.shape(x) for x in jax.tree_util.tree_leaves(pi_t)]
    pi0_shapes = [jnp.shape(x) for x in jax.tree_util.tree_leaves(pi0_t)]
    if pi0_shapes != pi_shapes:
        raise ValueError(f"`pi0_t` has shapes {pi0_shapes} but `pi_t` has {pi_shapes}")
    check_rank("w_t", w_t, 1)
    if w_t.shape[0] != pi_shapes[0][0]:
        raise ValueError(f"`w_t` has length {w_t.shape[0]} but `pi0_t` has {pi_shapes[0][0]} steps")
    fixed = jax.lax.stop_gradient(pi_t)
    cross_entropy_t = dist.kl(fixed, pi0_t) + dist.entropy(fixed)
    return jnp.mean(w_t * cross_entropy_t)


# ----------------------------------------------------------------------------- actor-critic


Regularizer = Literal["analytic", "sampled"]


def _regularizer_terms(
    dist: DistributionOps,
    pi_t: DistParams,
    pi0_t: DistParams,
    a_t: Array,
    alpha: Numeric,
    beta: Numeric,
    regularizer: Regularizer,
) -> tuple[Array, Array]:
    """Per-step regulariser added to the reward, and its directly differentiated part.

    Sampled (the paper's): (α/β) log π_0(a_t) − (1/β) log π_i(a_t), only in the return.
    Analytic: g(s_t) = −(α/β) KL(π_i‖π_0) + ((1−α)/β) H(π_i) = (α/β) E_{π_i} log π_0 + (1/β) H(π_i),
    which is a function of the state: its value enters the return (a constant there) and its
    gradient w.r.t. π_i enters directly (π_0 held fixed; π_0's side is the distillation term).
    For tanh-squashed policies H is the pre-squash entropy plus the squash's log-Jacobian at the
    taken action (a one-sample estimate, return only), so both estimators target one objective.
    """
    sg = jax.lax.stop_gradient
    if regularizer == "sampled":
        reg_t = (alpha / beta) * dist.log_prob(pi0_t, a_t) - dist.log_prob(pi_t, a_t) / beta
        return sg(reg_t), jnp.zeros_like(reg_t)
    kl_t = dist.kl(pi_t, sg(pi0_t))
    g_t = -(alpha / beta) * kl_t + ((1.0 - alpha) / beta) * dist.entropy(pi_t)
    # A squashed policy's entropy also has E[log|d tanh(u)/du|], which has no closed form: it is
    # estimated at the taken action and enters the return only (its gradient then comes through
    # the score function). Without it the bonus would reward saturating the squash.
    squash_t = ((1.0 - alpha) / beta) * dist.squash_log_det(a_t)
    return sg(g_t + squash_t), g_t


def _check_policy_inputs(
    dist, pi_t, pi0_t, a_t, regularizer, steps_ref, steps_name: str, alpha, beta
) -> None:
    """Named errors for the policy-side inputs of a per-trajectory loss.

    Without these, a ``pi_t``/``pi0_t`` or ``a_t`` of one step would broadcast silently against
    the ``[T]`` arrays, float actions would be truncated to indices and one-hot actions would
    fail to broadcast.
    """
    check_alpha_beta(alpha, beta)
    num_steps = steps_ref.shape[0]
    if dist.discrete:
        if a_t.ndim != 1:
            raise ValueError(
                f"`a_t` must be [T] action indices for a categorical policy, got shape "
                f"{a_t.shape} (one-hot actions? pass jnp.argmax(a_t, axis=-1))"
            )
        if not jnp.issubdtype(a_t.dtype, jnp.integer):
            raise ValueError(
                f"`a_t` must hold integer action indices for a categorical policy, got {a_t.dtype}"
            )
    check_rank("a_t", a_t, {1, 2})
    if a_t.shape[0] != num_steps:
        raise ValueError(f"`a_t` has {a_t.shape[0]} steps but `{steps_name}` has {num_steps}")
    if regularizer not in ("analytic", "sampled"):
        raise ValueError(f"`regularizer` must be 'analytic' or 'sampled', got {regularizer!r}")
    pi_shapes = [jnp.shape(x) for x in jax.tree_util.tree_leaves(pi_t)]
    pi0_shapes = [jnp.shape(x) for x in jax.tree_util.tree_leaves(pi0_t)]
    if pi0_shapes != pi_shapes:
        raise ValueError(f"`pi0_t` has shapes {pi0_shapes} but `pi_t` has {pi_shapes}")
    if any(len(s) < 2 or s[0] != num_steps for s in pi_shapes):
        raise ValueError(f"`pi_t` has shapes {pi_shapes}; expected [T={num_steps}, ...]")


def _policy_metrics(dist: DistributionOps, pi_t: DistParams, pi0_t: DistParams) -> dict:
    return {
        "entropy": jnp.mean(dist.entropy(pi_t)),
        "entropy_pi0": jnp.mean(dist.entropy(pi0_t)),
        "kl": jnp.mean(dist.kl(pi_t, pi0_t)),
    }


def _checked_trajectory(dist, trajectory: tuple, alpha, beta, regularizer) -> tuple:
    """``(pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t)`` as arrays, with named errors
    for what does not fit one ``[T]`` trajectory: the inputs of both the actor-critic loss and
    ``regularized_returns``, which must refuse the same things."""
    pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t = arrays = _arrays(*trajectory)
    check_rank("r_t", r_t, 1)
    check_same_shape(r_t=r_t, discount_t=discount_t, done_t=done_t, v_tm1=v_tm1, v_t=v_t)
    _check_policy_inputs(dist, pi_t, pi0_t, a_t, regularizer, r_t, "r_t", alpha, beta)
    return arrays


def distral_actor_critic_loss(
    dist: DistributionOps,
    pi_t: DistParams,
    pi0_t: DistParams,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    done_t: Array,
    v_tm1: Array,
    v_t: Array,
    alpha: Numeric,
    beta: Numeric,
    *,
    lambda_: Numeric = 0.95,
    regularizer: Regularizer = "analytic",
    value_coef: Numeric = 0.5,
    distill_coef: Numeric = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """Distral advantage actor-critic loss for one trajectory of one task (eqs. 9 and 10).

    Returns G_t are λ-returns of the regularised reward R^reg_t = r_t + reg_t (see
    ``regularized_rewards``; ``regularizer`` picks the sampled or the analytic estimator),
    bootstrapped from ``v_t`` and cut at episode ends:

        G_t = R^reg_t + discount_t [ (1 − λ_t) v_t + λ_t G_{t+1} ],   λ_t = λ (1 − done_t)

    so a terminated step (discount_t = 0) does not bootstrap, a truncated one bootstraps from
    the value of its true final state, and no return leaks across an episode boundary.

        loss = mean_t [ −log π_i(a_t|s_t) sg(G_t − v_tm1)              (eq. 9; eq. 10 first term
                        − g_t                         (analytic only)    through 2-column params)
                        + value_coef · ½ (sg(G_t) − v_tm1)²
                        + distill_coef · (α/β) CE(sg(π_i), π_0)(s_t) ]  (eq. 10, distillation)

    With α = 0 this is entropy-regularised ("soft") A2C with inverse temperature β.

    Args:
      dist: the distribution family (``distributions.categorical()``, ``tanh_gaussian()``...).
      pi_t: task policy parameters over time (logits ``[T, A]`` or ``(loc, scale)`` ``[T, D]``).
      pi0_t: distilled policy parameters at the same states, same structure.
      a_t: ``[T]`` (discrete) or ``[T, D]`` actions taken (pre-squash for tanh-Gaussians).
      r_t: ``[T]`` rewards.
      discount_t: ``[T]`` γ at non-terminal steps, 0 where the episode terminated.
      done_t: ``[T]`` 1 where the episode ended at t (terminated or truncated), else 0.
      v_tm1: ``[T]`` V(s_t), differentiable.
      v_t: ``[T]`` V of the state reached at t (the true last state when the episode ended).
      alpha, beta: Distral's α ∈ [0, 1] and β > 0 (may be traced).
      lambda_: λ of the returns (1: Monte-Carlo to the bootstrap, 0: one-step TD).
      regularizer: ``"analytic"`` (lower variance) or ``"sampled"`` (the paper's).
      value_coef: weight of the value loss.
      distill_coef: multiplier of the distillation term (1 is the joint objective's gradient).
    Returns:
      ``(loss, metrics)``: scalar loss and a dict of scalar diagnostics.
    """
    pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t = _checked_trajectory(
        dist, (pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t), alpha, beta, regularizer
    )
    sg = jax.lax.stop_gradient

    reg_t, direct_t = _regularizer_terms(dist, pi_t, pi0_t, a_t, alpha, beta, regularizer)
    returns_t, advantage_t = _lambda_returns(r_t + reg_t, discount_t, done_t, v_tm1, v_t, lambda_)

    log_pi_t = dist.log_prob(pi_t, a_t)
    pg_loss = -jnp.mean(log_pi_t * advantage_t)
    reg_loss = -jnp.mean(direct_t)
    value_loss = 0.5 * jnp.mean((returns_t - v_tm1) ** 2)
    distill_loss = (alpha / beta) * distillation_loss(pi_t, pi0_t, jnp.ones_like(r_t), dist)
    loss = pg_loss + reg_loss + value_coef * value_loss + distill_coef * distill_loss

    metrics = {
        "loss": loss,
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "distill_loss": distill_loss,
        **_policy_metrics(dist, pi_t, pi0_t),
        "regularized_reward": jnp.mean(r_t + reg_t),
        "advantage": jnp.mean(advantage_t),
    }
    return loss, jax.tree_util.tree_map(sg, metrics)


def distral_ppo_loss(
    dist: DistributionOps,
    pi_t: DistParams,
    pi0_t: DistParams,
    a_t: Array,
    behaviour_log_pi_t: Array,
    advantage_t: Array,
    returns_t: Array,
    v_tm1: Array,
    alpha: Numeric,
    beta: Numeric,
    *,
    clip_epsilon: Numeric = 0.2,
    regularizer: Regularizer = "analytic",
    value_coef: Numeric = 0.5,
    distill_coef: Numeric = 1.0,
    advantage_scale: Numeric = 1.0,
) -> tuple[Array, dict[str, Array]]:
    """Distral under PPO's clipped surrogate, for one trajectory (or any ``[T]`` batch).

    The advantages and returns come from the regularised reward R^reg (computed once per
    rollout with the behaviour policies, see ``distral_actor_critic_loss`` for the returns):

        ρ_t = π_i(a_t|s_t) / μ(a_t|s_t)
        loss = mean_t [ −min(ρ_t Â_t, clip(ρ_t, 1 ± ε) Â_t)
                        − advantage_scale · g_t                  (analytic regulariser only)
                        + value_coef · ½ (G_t − v_tm1)²
                        + advantage_scale · distill_coef · (α/β) CE(sg(π_i), π_0)(s_t) ]

    where g_t = −(α/β) KL(π_i‖sg π_0) + ((1−α)/β) H(π_i). When the caller normalises the
    advantages by their standard deviation σ, it passes ``advantage_scale = 1/σ``: the whole
    gradient of the joint objective (surrogate, regulariser and distillation, eqs. 9–10) is then
    scaled alike, so β keeps its meaning and θ_0's two sources of gradient in the 2-column
    architecture keep their A2C proportions.

    Args:
      dist: the distribution family.
      pi_t, pi0_t: current task and distilled policy parameters ``[T, ...]``.
      a_t: actions ``[T]`` or ``[T, D]``.
      behaviour_log_pi_t: ``[T]`` log-probabilities under the acting policy μ.
      advantage_t: ``[T]`` (possibly normalised) advantages of R^reg.
      returns_t: ``[T]`` value targets.
      v_tm1: ``[T]`` current values, differentiable.
      alpha, beta: Distral's α and β.
      clip_epsilon: PPO's ε.
      regularizer: "analytic" or "sampled" (sampled: the regulariser lives in Â only, and is
        clipped with the rewards; the analytic direct term is not, which over several epochs
        moves the optimum towards more entropy, docs/maths.md §6). The same as was given to
        ``regularized_returns`` for Â.
      value_coef, distill_coef: loss weights.
      advantage_scale: multiplier of the regulariser's direct term and of distillation.
    Returns:
      ``(loss, metrics)``.
    """
    pi_t, pi0_t, a_t, behaviour_log_pi_t, advantage_t, returns_t, v_tm1 = _arrays(
        pi_t, pi0_t, a_t, behaviour_log_pi_t, advantage_t, returns_t, v_tm1
    )
    check_rank("advantage_t", advantage_t, 1)
    check_same_shape(
        advantage_t=advantage_t,
        behaviour_log_pi_t=behaviour_log_pi_t,
        returns_t=returns_t,
        v_tm1=v_tm1,
    )
    _check_policy_inputs(
        dist, pi_t, pi0_t, a_t, regularizer, advantage_t, "advantage_t", alpha, beta
    )
    sg = jax.lax.stop_gradient
    log_pi_t = dist.log_prob(pi_t, a_t)
    ratio_t = jnp.exp(log_pi_t - behaviour_log_pi_t)
    adv = sg(advantage_t)
    surrogate = jnp.minimum(
        ratio_t * adv, jnp.clip(ratio_t, 1 - clip_epsilon, 1 + clip_epsilon) * adv
    )
    pg_loss = -jnp.mean(surrogate)
    _, direct_t = _regularizer_terms(dist, pi_t, pi0_t, a_t, alpha, beta, regularizer)
    reg_loss = -advantage_scale * jnp.mean(direct_t)
    value_loss = 0.5 * jnp.mean((sg(returns_t) - v_tm1) ** 2)
    distill_loss = (alpha / beta) * distillation_loss(pi_t, pi0_t, jnp.ones_like(advantage_t), dist)
    loss = (
        pg_loss + reg_loss + value_coef * value_loss + advantage_scale * distill_coef * distill_loss
    )
    metrics = {
        "loss": loss,
        "pg_loss": pg_loss,
        "value_loss": value_loss,
        "distill_loss": distill_loss,
        **_policy_metrics(dist, pi_t, pi0_t),
        "clip_fraction": jnp.mean((jnp.abs(ratio_t - 1.0) > clip_epsilon).astype(jnp.float32)),
        "approx_kl_behaviour": jnp.mean(behaviour_log_pi_t - log_pi_t),
    }
    return loss, jax.tree_util.tree_map(sg, metrics)


def regularized_returns(
    dist: DistributionOps,
    pi_t: DistParams,
    pi0_t: DistParams,
    a_t: Array,
    r_t: Array,
    discount_t: Array,
    done_t: Array,
    v_tm1: Array,
    v_t: Array,
    alpha: Numeric,
    beta: Numeric,
    *,
    lambda_: Numeric = 0.95,
    regularizer: Regularizer = "analytic",
) -> tuple[Array, Array]:
    """λ-returns and advantages (GAE) of the regularised reward, for one trajectory.

    Same returns as ``distral_actor_critic_loss``: G_t = R^reg_t + discount_t [(1 − λ_t) v_t +
    λ_t G_{t+1}] with λ_t = λ(1 − done_t); the advantage G_t − v_tm1 equals GAE-λ with the
    same cuts. Nothing here carries a gradient.

    Returns:
      ``(returns_t, advantage_t)``, each ``[T]``.
    """
    pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t = _checked_trajectory(
        dist, (pi_t, pi0_t, a_t, r_t, discount_t, done_t, v_tm1, v_t), alpha, beta, regularizer
    )
    reg_t, _ = _regularizer_terms(dist, pi_t, pi0_t, a_t, alpha, beta, regularizer)
    return _lambda_returns(r_t + reg_t, discount_t, done_t, v_tm1, v_t, lambda_)


def _lambda_returns(reward_t, discount_t, done_t, v_tm1, v_t, lambda_):
    """λ-returns cut at episode ends, and advantages; constants for the gradient."""
    # Imported here, at trace time: rlax brings distrax and TensorFlow Probability, most of a
    # second of every launch's start-up for one function.
    import rlax

    sg = jax.lax.stop_gradient
    lambda_t = lambda_ * (1.0 - done_t)
    returns_t = sg(rlax.lambda_returns(sg(reward_t), discount_t, sg(v_t), lambda_t))
    return returns_t, returns_t - sg(v_tm1)


# ----------------------------------------------------------------------------- soft actor-critic
#
# One batch ``[B]`` of replayed transitions of one task (the learner vmaps over tasks). π_i's
# optimum under J is π_i ∝ π_0^α exp(β Q_i) with the soft action value
#   Q_i(s, a) = r + γ_t E_{a'~π_i}[Q_i(s', a') + (α/β) log π_0(a'|s') − (1/β) log π_i(a'|s')],
# which these three losses estimate from replay (docs/maths.md §11).


def _regularized_log_ratio(dist, pi, pi0, a, alpha, beta):
    """(α/β) log π_0(a) − (1/β) log π_i(a) at actions ``a`` (both squashed densities: their
    Jacobians weigh (1 − α)/β, the squashed policy's entropy bonus)."""
    log_pi0 = scaled_log_prior(dist.log_prob(pi0, a), alpha)
    return log_pi0 / beta - dist.log_prob(pi, a) / beta


def _expected_regularized(logits, logits_0, q, alpha, beta):
    """Σ_a π_i(a) [q(a) + (α/β) log π_0(a) − (1/β) log π_i(a)] over the last axis."""
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    log_pi0 = scaled_log_prior(jax.nn.log_softmax(logits_0, axis=-1), alpha)
    return jnp.sum(jnp.exp(log_pi) * (q + log_pi0 / beta - log_pi / beta), axis=-1)


def _check_batch(name: str, x, batch: int, rank: int | set[int]) -> None:
    check_rank(name, x, rank)
    if jnp.shape(x)[0] != batch:
        raise ValueError(f"`{name}` has {jnp.shape(x)[0]} transitions but `r_t` has {batch}")


def soft_bellman_target(
    dist: DistributionOps,
    r_t: Array,
    discount_t: Array,
    q_next_t: Array,
    pi_next_t: DistParams,
    pi0_next_t: DistParams,
    a_next_t: Array | None,
    alpha: Numeric,
    beta: Numeric,
) -> Array:
    """SAC's soft Bellman target on the Distral objective, for a batch of transitions.

        y_t = r_t + discount_t · V(s'_t),
        V(s') = E_{a'~π_i(·|s')} [ min_k Q̄_k(s', a') + (α/β) log π_0(a'|s') − (1/β) log π_i(a'|s') ]

    with Q̄_k the target critics. Discrete actions: the expectation is the exact sum over the A
    actions (``q_next_t [B, K, A]``, ``a_next_t`` None). Continuous: one sample a' ~ π_i(·|s')
    (``a_next_t [B, D]``, pre-squash for tanh-Gaussians; ``q_next_t [B, K]`` the critics at the
    environment's action). ``discount_t`` is γ, or 0 where the episode terminated; a truncated
    step keeps γ and bootstraps from the state it reached (``s'`` the true last state).

    Args:
      dist: the policies' distribution family.
      r_t, discount_t: ``[B]``.
      q_next_t: ``[B, K]`` or ``[B, K, A]`` target critics at s'.
      pi_next_t, pi0_next_t: π_i's and π_0's parameters at s' (``[B, A]`` or ``[B, D]`` leaves).
      a_next_t: ``[B, D]`` sampled actions (continuous), None (discrete).
      alpha, beta: Distral's α ∈ [0, 1] and β > 0 (may be traced).
    Returns:
      ``[B]`` targets, through which no gradient flows.
    """
    r_t, discount_t, q_next_t = _arrays(r_t, discount_t, q_next_t)
    check_alpha_beta(alpha, beta)
    check_rank("r_t", r_t, 1)
    check_same_shape(r_t=r_t, discount_t=discount_t)
    batch = r_t.shape[0]
    _check_batch("q_next_t", q_next_t, batch, 3 if dist.discrete else 2)
    if dist.discrete != (a_next_t is None):
        raise ValueError(
            "`a_next_t` must be None for a categorical policy (an exact expectation over "
            "actions) and the sampled [B, D] actions for a Gaussian one"
        )
    min_q = jnp.min(q_next_t, axis=1)  # over the K critics
    if dist.discrete:
        value = _expected_regularized(pi_next_t, pi0_next_t, min_q, alpha, beta)
    else:
        _check_batch("a_next_t", a_next_t, batch, 2)
        value = min_q + _regularized_log_ratio(dist, pi_next_t, pi0_next_t, a_next_t, alpha, beta)
    return jax.lax.stop_gradient(r_t + discount_t * value)


def twin_critic_loss(q_t: Array, target_t: Array) -> Array:
    """Each critic's squared error to the (fixed) target: mean_t Σ_k ½ (Q_k(s_t, a_t) − y_t)².

    Args:
      q_t: ``[B, K]`` the K critics at the stored transitions.
      target_t: ``[B]`` ``soft_bellman_target``.
    Returns:
      scalar.
    """
    q_t, target_t = _arrays(q_t, target_t)
    check_rank("q_t", q_t, 2)
    check_rank("target_t", target_t, 1)
    if q_t.shape[0] != target_t.shape[0]:
        raise ValueError(f"`q_t` has {q_t.shape[0]} transitions but `target_t` {target_t.shape[0]}")
    error = q_t - jax.lax.stop_gradient(target_t)[:, None]
    return jnp.mean(jnp.sum(0.5 * error**2, axis=1))


def sac_policy_loss(
    dist: DistributionOps,
    pi_t: DistParams,
    pi0_t: DistParams,
    q_t: Array,
    a_t: Array | None,
    alpha: Numeric,
    beta: Numeric,
) -> Array:
    """SAC's policy loss on the Distral objective, at a batch of replayed states:

    L = mean_t E_{a~π_i(·|s_t)} [ (1/β) log π_i(a|s_t) − (α/β) log π_0(a|s_t) − min_k Q_k(s_t,a) ]

    whose minimiser at each state is π_i ∝ π_0^α exp(β min_k Q_k). π_0's own parameters get no
    gradient here (that is the distillation's part, ``distillation_loss``); a 2-column π_i still
    passes its gradient to h_θ0 through ``pi_t``.

    Discrete actions: the exact sum over actions (``q_t [B, K, A]``, constants; ``a_t`` None).
    Continuous: ``a_t [B, D]`` reparameterised samples of π_i (a differentiable function of
    ``pi_t``) and ``q_t [B, K]`` the critics at them (differentiable through the action only),
    the pathwise estimator.

    Args:
      dist: the policies' distribution family.
      pi_t, pi0_t: π_i's and π_0's parameters at the states.
      q_t: ``[B, K]`` or ``[B, K, A]``.
      a_t: ``[B, D]`` or None.
      alpha, beta: Distral's α and β.
    Returns:
      scalar.
    """
    q_t = jnp.asarray(q_t)
    check_alpha_beta(alpha, beta)
    batch = jax.tree_util.tree_leaves(pi_t)[0].shape[0]
    _check_batch("q_t", q_t, batch, 3 if dist.discrete else 2)
    if dist.discrete != (a_t is None):
        raise ValueError(
            "`a_t` must be None for a categorical policy and reparameterised [B, D] samples "
            "for a Gaussian one"
        )
    pi0_t = jax.lax.stop_gradient(pi0_t)
    min_q = jnp.min(q_t, axis=1)
    if dist.discrete:
        return -jnp.mean(
            _expected_regularized(pi_t, pi0_t, jax.lax.stop_gradient(min_q), alpha, beta)
        )
    _check_batch("a_t", a_t, batch, 2)
    return -jnp.mean(min_q + _regularized_log_ratio(dist, pi_t, pi0_t, a_t, alpha, beta))


def temperature_loss(
    log_temperature: Array, regularized_entropy_t: Array, target_entropy: Numeric
) -> Array:
    """SAC's temperature loss for one task, with temperature 1/β = exp(log_temperature):

        L = exp(log_temperature) · mean_t sg(H_t − H̄),   H_t = E_{π_i}[−log π_i + α log π_0](s_t)

    Gradient descent raises the temperature while the policy's regularised entropy H_t is below
    the target H̄ and lowers it above: the dual of maximising the return subject to
    mean_t H_t ≥ H̄ (docs/maths.md §11). With α = 0, H_t is π_i's entropy (SAC's).

    Args:
      log_temperature: scalar, log(1/β).
      regularized_entropy_t: ``[B]`` H_t (exact for categoricals, one sample otherwise).
      target_entropy: H̄.
    Returns:
      scalar.
    """
    check_rank("log_temperature", log_temperature, 0)
    check_rank("regularized_entropy_t", regularized_entropy_t, 1)
    gap = jax.lax.stop_gradient(jnp.mean(regularized_entropy_t) - target_entropy)
    return jnp.exp(log_temperature) * gap
