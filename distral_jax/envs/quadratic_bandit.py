"""A one-state, one-step continuous bandit with quadratic rewards, and its exact optimum.

Task i rewards the action a ∈ (−1, 1)^D with r_i(a) = −c ‖a − g_i‖². Every episode is one step
from one constant observation, so the joint objective (docs/maths.md §1) is a function of the
policies at that one state. The networks' policies are tanh-squashed Gaussians a = tanh(u),
u ~ N(m, diag s²); for those the objective is, per task,

    J_i = E_{u~N(m_i, s_i)}[r_i(tanh u)] − (α/β) KL(N_i‖N_0)
          + ((1−α)/β) [H(N_i) + E_{u~N_i} Σ_d log(1 − tanh² u_d)]

(the squashed policy's entropy is the Gaussian's plus the squash's log-Jacobian; the KL is
unchanged by the squash). ``tanh_gaussian_optimum`` maximises Σ_i J_i over every (m_i, s_i) and
(m_0, s_0) by Gauss–Hermite quadrature and BFGS, in float64, sharing no code with the learners:
the continuous counterpart of ``bandit.distral_fixed_point``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.envs.base import State, TaskFamily


@struct.dataclass
class QuadraticTask:
    """target: ``[D]`` the best action g_i (stacked: ``[N, D]``)."""

    target: jax.Array


class QuadraticBandit(TaskFamily):
    """N one-step continuous tasks r_i(a) = −curvature ‖a − target_i‖².

    Args:
      targets: ``[N, D]`` each task's best action, inside (−1, 1).
      curvature: c > 0.
    """

    def __init__(self, targets, curvature: float = 1.0):
        targets = np.asarray(targets, np.float32)
        if targets.ndim != 2 or targets.shape[0] < 1 or targets.shape[1] < 1:
            raise ValueError(
                f"`targets` must have shape [num_tasks >= 1, action_size >= 1], got {targets.shape}"
            )
        if not np.all(np.abs(targets) < 1):
            raise ValueError(f"`targets` must lie inside (-1, 1), got {targets.tolist()}")
        if not curvature > 0:
            raise ValueError(f"`curvature` must be > 0, got {curvature!r}")
        self._targets = targets
        self.curvature = float(curvature)

    @property
    def num_tasks(self) -> int:
        return self._targets.shape[0]

    @property
    def observation_size(self) -> int:
        return 1

    @property
    def action_size(self) -> int:
        return self._targets.shape[1]

    @property
    def discrete(self) -> bool:
        return False

    def tasks(self) -> QuadraticTask:
        return QuadraticTask(target=jnp.asarray(self._targets))

    def reset(self, rng: jax.Array, task: QuadraticTask) -> State:
        del rng, task
        zero = jnp.zeros((), jnp.float32)
        return State(pipeline_state=zero, obs=jnp.ones((1,), jnp.float32), reward=zero, done=zero)

    def step(self, state: State, action: jax.Array, task: QuadraticTask) -> State:
        reward = -self.curvature * jnp.sum((action - task.target) ** 2)
        return state.replace(reward=reward, done=jnp.ones((), jnp.float32))


def tanh_gaussian_optimum(
    targets, curvature: float, alpha: float, beta: float, nodes: int = 96
) -> dict[str, np.ndarray]:
    """The tanh-Gaussian policies that maximise Σ_i J_i (module docstring), float64.

    Args:
      targets: ``[N, D]``.
      curvature: c.
      alpha, beta: Distral's α ∈ [0, 1) and β > 0.
      nodes: Gauss–Hermite nodes per action dimension (the dimensions are independent).
    Returns:
      ``{"loc": [N, D], "scale": [N, D], "loc_0": [D], "scale_0": [D], "objective": float}``
      (pre-squash means and standard deviations of π_i and π_0).
    """
    from scipy.optimize import minimize

    targets = np.asarray(targets, np.float64)
    n, d = targets.shape
    x, w = np.polynomial.hermite_e.hermegauss(nodes)  # ∫ f(x) e^{−x²/2} dx
    w = w / np.sqrt(2 * np.pi)  # E_{z~N(0,1)} f(z) = Σ w f(x)

    def objective(theta):
        loc, log_scale = theta[: n * d].reshape(n, d), theta[n * d : 2 * n * d].reshape(n, d)
        loc_0, log_scale_0 = theta[2 * n * d : 2 * n * d + d], theta[2 * n * d + d :]
        scale, scale_0 = np.exp(log_scale), np.exp(log_scale_0)
        u = loc[..., None] + scale[..., None] * x  # [N, D, nodes]
        a = np.tanh(u)
        reward = -curvature * np.sum((a - targets[..., None]) ** 2 @ w, axis=-1)
        # log(1 − tanh² u), stably: 2 (log 2 − |u| − log(1 + e^{−2|u|})).
        log_det = 2 * (np.log(2) - np.abs(u) - np.log1p(np.exp(-2 * np.abs(u))))
        log_det = np.sum(log_det @ w, axis=-1)
        entropy = np.sum(0.5 * np.log(2 * np.pi * np.e) + log_scale, axis=-1)
        kl = np.sum(
            log_scale_0 - log_scale + (scale**2 + (loc - loc_0) ** 2) / (2 * scale_0**2) - 0.5,
            axis=-1,
        )
        j = reward - (alpha / beta) * kl + ((1 - alpha) / beta) * (entropy + log_det)
        return -np.sum(j)

    start = np.concatenate([np.zeros(n * d), np.full(n * d, -1.0), np.zeros(d), np.zeros(d)])
    result = minimize(objective, start, method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    theta = result.x
    return {
        "loc": theta[: n * d].reshape(n, d),
        "scale": np.exp(theta[n * d : 2 * n * d]).reshape(n, d),
        "loc_0": theta[2 * n * d : 2 * n * d + d],
        "scale_0": np.exp(theta[2 * n * d + d :]),
        "objective": -float(result.fun),
    }


def gaussian_optimum(targets, curvature: float, alpha: float, beta: float) -> dict[str, np.ndarray]:
    """The plain-Gaussian policies that maximise Σ_i J_i, in closed form (docs/maths.md §8).

    For unsquashed Gaussians N(m_i, s_i²) and π_0 = N(m_0, s_0²), per action dimension, with ḡ
    and V the mean and variance of the targets over the tasks and x = 2cβ s_0² the positive root
    of x² + (2α − 1 − 2cβV) x − α(1 − α) = 0:

        m_0 = ḡ,   m_i = ḡ + x/(x + α) (g_i − ḡ),   s_0² = x/(2cβ),   s_i² = 1/(2cβ + α/s_0²).

    The family's actions are unbounded here (train with ``TrainConfig(action_squash=False)``).
    Plain numpy, sharing no code with the learners.

    Args:
      targets: ``[N, D]``.
      curvature: c > 0.
      alpha, beta: Distral's α ∈ [0, 1] and β > 0.
    Returns:
      ``{"loc": [N, D], "scale": [N, D], "loc_0": [D], "scale_0": [D]}``.
    """
    g = np.asarray(targets, np.float64)
    g_bar, var = g.mean(axis=0), g.var(axis=0)
    cb = 2.0 * curvature * beta
    b = 1.0 + cb * var - 2.0 * alpha
    x = 0.5 * (b + np.sqrt(b**2 + 4.0 * alpha * (1.0 - alpha)))
    var_0 = x / cb
    scale = np.sqrt(1.0 / (cb + alpha / var_0))
    return {
        "loc": g_bar + x / (x + alpha) * (g - g_bar),
        "scale": np.broadcast_to(scale, g.shape).copy(),
        "loc_0": g_bar,
        "scale_0": np.sqrt(var_0),
    }
