"""The 2-column task policies: π_i built from π_0's output and a task column.

Categorical: logits ``α h_θ0(s) + β f_θi(s)`` (softmax ∝ π_0^α exp(β f)). Gaussian: the product
π_0^α · N(column), again a diagonal Gaussian. The networks build their 2-column heads from these
functions and ``distral_jax.losses`` re-exports them (docs/maths.md §3).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from distral_jax.distributions import check_same_shape

Array = jax.Array
Numeric = chex.Numeric


def two_column_logits(h0_logits: Array, f_logits: Array, alpha: Numeric, beta: Numeric) -> Array:
    """The 2-column task policy's logits (eq. 7): ``α h_θ0(s) + β f_θi(s)``.

    softmax of the result is π_0^α exp(β f) / Z. Passing ``beta=1`` gives the folded
    parameterisation ``α h0 + g`` with g = β f learned directly (docs/maths.md §3).

    Args:
      h0_logits: ``[..., A]`` logits of π_0.
      f_logits: ``[..., A]`` the task column.
      alpha, beta: scalars.
    Returns:
      ``[..., A]``.
    """
    check_same_shape(h0_logits=h0_logits, f_logits=f_logits)
    return alpha * h0_logits + beta * f_logits


def gaussian_two_column(
    mu_0: Array, std_0: Array, mu_f: Array, std_f: Array, alpha: chex.Numeric
) -> tuple[Array, Array]:
    """The 2-column Gaussian task policy π_i ∝ π_0^α · N(m, s²) (docs/maths.md §3).

    With π_0 = N(μ_0, σ_0²) and the task column N(m, s²) (β absorbed into the column):

        1/σ² = α/σ_0² + 1/s²,     μ = σ² (α μ_0/σ_0² + m/s²).

    α = 0 gives the column alone; the product is again a diagonal Gaussian.

    Args:
      mu_0, std_0: ``[..., D]`` the distilled policy π_0.
      mu_f, std_f: ``[..., D]`` the task column.
      alpha: scalar in [0, 1].
    Returns:
      ``(mu, std)`` of π_i, each ``[..., D]``.
    """
    check_same_shape(mu_0=mu_0, std_0=std_0, mu_f=mu_f, std_f=std_f)
    # In log space: std**2 under/overflows float32 for std < 1e-19 or > 1e19 (then 0 * inf = nan).
    # α = 0 gives log α = −inf, so π_0 drops out exactly.
    log_prec_0 = jnp.log(alpha) - 2.0 * jnp.log(std_0)
    log_prec_f = -2.0 * jnp.log(std_f)
    log_prec = jnp.logaddexp(log_prec_0, log_prec_f)
    mu = jnp.exp(log_prec_0 - log_prec) * mu_0 + jnp.exp(log_prec_f - log_prec) * mu_f
    return mu, jnp.exp(-0.5 * log_prec)
