"""Action distributions: categorical and (tanh-)diagonal Gaussian, as pure functions.

Each family is exposed two ways:
  * plain functions (``categorical_kl``, ``gaussian_kl``, ``gaussian_log_prob`` ...) on arrays,
    with the action axis last;
  * a ``DistributionOps`` bundle (``categorical()``, ``gaussian()``, ``tanh_gaussian()``) that a
    loss takes as an argument, so that one loss serves discrete and continuous policies.

Distribution parameters ("dist params") are the logits ``[..., A]`` for a categorical and a
``(loc, scale)`` tuple of ``[..., D]`` arrays for a Gaussian. Gaussian log-probabilities,
entropies and KLs are summed over the D action dimensions.

Tanh squashing: actions are stored *before* the squash (``u``; the environment receives
``tanh(u)``). ``log_prob`` of a tanh-Gaussian is the density of ``tanh(u)``, i.e. the Gaussian
log-density of ``u`` minus ``sum log(1 - tanh(u)^2)``. The Jacobian is the same for every policy
evaluated at the same ``u``, so it cancels in ``log pi_i - log pi_0`` and in the KL (computed in
closed form on the pre-squash Gaussians), but not in ``log pi_i`` alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array
DistParams = Any  # logits array, or a (loc, scale) tuple

_LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------- input checks


def check_rank(name: str, x: Array, rank: int | set[int]) -> None:
    """ValueError naming ``name`` unless ``x`` has one of the allowed ranks."""
    ranks = {rank} if isinstance(rank, int) else rank
    if jnp.ndim(x) not in ranks:
        raise ValueError(
            f"`{name}` must have rank {' or '.join(map(str, sorted(ranks)))}, "
            f"got shape {jnp.shape(x)}"
        )


def check_same_shape(**named: Array) -> None:
    """ValueError naming the first argument whose shape differs from the first one's."""
    shapes = {name: jnp.shape(x) for name, x in named.items()}
    first_name, first = next(iter(shapes.items()))
    for name, shape in shapes.items():
        if shape != first:
            raise ValueError(
                f"`{name}` has shape {shape} but `{first_name}` has shape {first}; "
                f"they must match ({', '.join(f'{k}={v}' for k, v in shapes.items())})"
            )


# ----------------------------------------------------------------------------- categorical


def categorical_log_prob(logits: Array, action: Array) -> Array:
    """log softmax(logits)[action] by a gather (never a ``[:, actions]`` B×B index).

    Args:
      logits: ``[..., A]``.
      action: ``[...]`` integer actions.
    Returns:
      ``[...]`` log-probabilities.
    """
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: Array) -> Array:
    """H(p) = −Σ_a p_a log p_a over the last axis; ``[..., A] -> [...]``."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    # p * log p with p -> 0 gives 0 * -inf = nan only if log_p is -inf; log_softmax is finite.
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def categorical_cross_entropy(logits_p: Array, logits_q: Array) -> Array:
    """−Σ_a p_a log q_a over the last axis; ``[..., A] -> [...]``."""
    p = jax.nn.softmax(logits_p, axis=-1)
    return -jnp.sum(p * jax.nn.log_softmax(logits_q, axis=-1), axis=-1)


def categorical_kl(logits_p: Array, logits_q: Array) -> Array:
    """KL(p‖q) = Σ_a p_a (log p_a − log q_a) of two categoricals given by logits.

    Args:
      logits_p: ``[..., A]`` logits of p.
      logits_q: ``[..., A]`` logits of q.
    Returns:
      ``[...]`` non-negative KL divergences.
    """
    check_same_shape(logits_p=logits_p, logits_q=logits_q)
    log_p = jax.nn.log_softmax(logits_p, axis=-1)
    log_q = jax.nn.log_softmax(logits_q, axis=-1)
    return jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)


# ----------------------------------------------------------------------------- gaussian


def gaussian_log_prob(loc: Array, scale: Array, x: Array) -> Array:
    """Diagonal Gaussian log-density summed over the last axis; ``[..., D] -> [...]``."""
    z = (x - loc) / scale
    return jnp.sum(-0.5 * z**2 - jnp.log(scale) - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(scale: Array) -> Array:
    """Entropy of a diagonal Gaussian, Σ_d (½ log(2πe) + log σ_d); ``[..., D] -> [...]``."""
    return jnp.sum(0.5 * (_LOG_2PI + 1.0) + jnp.log(scale), axis=-1)


def gaussian_kl(mu_p: Array, std_p: Array, mu_q: Array, std_q: Array) -> Array:
    """KL(p‖q) of diagonal Gaussians, summed over the action dimensions.

        KL = Σ_d [ log(σ_q/σ_p) + (σ_p² + (μ_p − μ_q)²) / (2σ_q²) − ½ ]

    Args:
      mu_p, std_p, mu_q, std_q: ``[..., D]``; standard deviations must be positive.
    Returns:
      ``[...]``.
    """
    check_same_shape(mu_p=mu_p, std_p=std_p, mu_q=mu_q, std_q=std_q)
    var_ratio = (std_p / std_q) ** 2
    mahalanobis = ((mu_p - mu_q) / std_q) ** 2
    # log of the ratio from the logs: var_ratio underflows to 0 for std_p/std_q < 1e-19.
    log_var_ratio = 2.0 * (jnp.log(std_p) - jnp.log(std_q))
    return jnp.sum(0.5 * (var_ratio + mahalanobis - 1.0 - log_var_ratio), axis=-1)


def tanh_log_det_jacobian(u: Array) -> Array:
    """Σ_d log(1 − tanh(u_d)²), computed stably as 2(log 2 − u − softplus(−2u))."""
    return jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)


# ----------------------------------------------------------------------------- bundles


class DistributionOps(NamedTuple):
    """The operations a loss needs from a policy's distribution family.

    Attributes:
      log_prob: ``(params, action) -> [...]`` log-density of the stored action.
      entropy: ``params -> [...]`` (for tanh-Gaussians: of the pre-squash Gaussian).
      kl: ``(params_p, params_q) -> [...]`` KL(p‖q).
      sample: ``(key, params) -> action`` (pre-squash for tanh-Gaussians).
      mode: ``params -> action``, the greedy action.
      postprocess: maps a stored action to what the environment receives.
      discrete: whether actions are integers.
      squash_log_det: ``action -> [...]``, log |d postprocess / d action| summed over action
        dimensions (0 without a squash). The entropy of the squashed policy is
        ``entropy + E[squash_log_det]``; losses estimate the expectation at the taken action.
      uniform: ``(key, params) -> action`` shaped like ``sample``'s, whose ``postprocess`` is
        uniform over the environment's actions (the A arms; the box [−1, 1]^D): an off-policy
        learner's exploration before it learns.
    """

    log_prob: Callable[[DistParams, Array], Array]
    entropy: Callable[[DistParams], Array]
    kl: Callable[[DistParams, DistParams], Array]
    sample: Callable[[Array, DistParams], Array]
    mode: Callable[[DistParams], Array]
    postprocess: Callable[[Array], Array]
    discrete: bool
    squash_log_det: Callable[[Array], Array]
    uniform: Callable[[Array, DistParams], Array]


def categorical() -> DistributionOps:
    """Categorical policies parameterised by logits ``[..., A]``."""
    return DistributionOps(
        log_prob=categorical_log_prob,
        entropy=categorical_entropy,
        kl=categorical_kl,
        sample=lambda key, logits: jax.random.categorical(key, logits, axis=-1),
        mode=lambda logits: jnp.argmax(logits, axis=-1),
        postprocess=lambda a: a,
        discrete=True,
        squash_log_det=lambda a: jnp.zeros(a.shape, jnp.float32),
        uniform=lambda key, logits: jax.random.randint(key, logits.shape[:-1], 0, logits.shape[-1]),
    )


def _gaussian_sample(key: Array, params: tuple[Array, Array]) -> Array:
    loc, scale = params
    return loc + scale * jax.random.normal(key, loc.shape, loc.dtype)


def _box_uniform(key: Array, params: tuple[Array, Array]) -> Array:
    loc, _ = params
    return jax.random.uniform(key, loc.shape, loc.dtype, minval=-1.0, maxval=1.0)


# tanh of a float32 above atanh(1 − 1e-6) ≈ 7.25 rounds to 1, where the squash's log-Jacobian
# is −inf: uniform actions stop that far inside the box.
_TANH_EDGE = 1.0 - 1e-6


def _tanh_uniform(key: Array, params: tuple[Array, Array]) -> Array:
    return jnp.arctanh(_TANH_EDGE * _box_uniform(key, params))


def gaussian() -> DistributionOps:
    """Unsquashed diagonal Gaussians parameterised by ``(loc, scale)``."""
    return DistributionOps(
        log_prob=lambda p, x: gaussian_log_prob(p[0], p[1], x),
        entropy=lambda p: gaussian_entropy(p[1]),
        kl=lambda p, q: gaussian_kl(p[0], p[1], q[0], q[1]),
        sample=_gaussian_sample,
        mode=lambda p: p[0],
        postprocess=lambda a: a,
        discrete=False,
        squash_log_det=lambda a: jnp.zeros(a.shape[:-1], a.dtype),
        uniform=_box_uniform,
    )


def tanh_gaussian() -> DistributionOps:
    """Diagonal Gaussians squashed by tanh; actions are stored before the squash."""
    return DistributionOps(
        log_prob=lambda p, u: gaussian_log_prob(p[0], p[1], u) - tanh_log_det_jacobian(u),
        entropy=lambda p: gaussian_entropy(p[1]),
        kl=lambda p, q: gaussian_kl(p[0], p[1], q[0], q[1]),
        sample=_gaussian_sample,
        mode=lambda p: p[0],
        postprocess=jnp.tanh,
        discrete=False,
        squash_log_det=tanh_log_det_jacobian,
        uniform=_tanh_uniform,
    )
