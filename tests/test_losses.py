"""Tests for ``distral_jax.losses``, in the style of rlax's tests.

Maths tests run with and without jit (``chex.variants``) and under ``jax.vmap``. The gradient
tests run in float64 and compare against central finite differences: of the documented
surrogate (stop-gradient quantities held fixed), and of the exact Distral objective of a
small bandit, whose gradient the loss's gradient must equal in expectation.
"""

from __future__ import annotations

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from absl.testing import parameterized
from jax.flatten_util import ravel_pytree

from distral_jax import distributions as dists
from distral_jax import losses

# The reference A2C is built from rlax's parts, which use rlax's own (deprecated) softmax.
pytestmark = pytest.mark.filterwarnings("ignore:Rlax softmax will be deprecated")
_RTOL = 1e-5
_ATOL = 1e-5
sg = jax.lax.stop_gradient


def _np_log_softmax(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _np_softmax(x) -> np.ndarray:
    return np.exp(_np_log_softmax(x))


def _normals(seed: int, shape: tuple[int, ...], count: int) -> list[np.ndarray]:
    """``count`` float32 arrays of standard normals, drawn in turn from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype(np.float32) for _ in range(count)]


def _np_tilted_prior(log_pi_0, f, alpha, beta) -> np.ndarray:
    """π_0^α exp(β f) in float64: the 2-column policy before normalisation, whose log-sum over
    actions is β times the soft value of ``f``."""
    log_pi_0, f = np.asarray(log_pi_0, np.float64), np.asarray(f, np.float64)
    return np.exp(alpha * log_pi_0 + beta * f)


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def _central_differences(f, x, eps=1e-6):
    """∂f/∂x by central differences for a scalar f of a flat float64 vector x."""
    basis = jnp.eye(x.shape[0], dtype=x.dtype) * eps
    return (jax.vmap(f)(x + basis) - jax.vmap(f)(x - basis)) / (2.0 * eps)


def _lambda_returns_by_hand(r_t, discount_t, v_t, lambda_t):
    """G_t = r_t + discount_t ((1 − λ_t) v_t + λ_t G_{t+1}), G_T := v_{T-1}; a Python loop."""
    returns = []
    g = v_t[-1]
    for t in reversed(range(r_t.shape[0])):
        g = r_t[t] + discount_t[t] * ((1.0 - lambda_t[t]) * v_t[t] + lambda_t[t] * g)
        returns.append(g)
    return jnp.stack(returns[::-1])


def _trajectory(seed, T=4, A=3, dtype=np.float32):
    """A random discrete trajectory with a termination at t=1 and a truncation at t=T-2."""
    rng = np.random.default_rng(seed)
    cast = lambda x: np.asarray(x, dtype)
    return dict(
        pi_t=cast(rng.normal(size=(T, A))),
        pi0_t=cast(rng.normal(size=(T, A))),
        a_t=rng.integers(0, A, size=T).astype(np.int32),
        r_t=cast(rng.normal(size=T)),
        discount_t=cast([0.9, 0.0] + [0.9] * (T - 2)),
        done_t=cast([0.0, 1.0] + [0.0] * (T - 4) + [1.0, 0.0]),
        v_tm1=cast(rng.normal(size=T)),
        v_t=cast(rng.normal(size=T)),
    )


# A trajectory's arrays in the order the losses take them, after the distribution.
TRAJECTORY = ("pi_t", "pi0_t", "a_t", "r_t", "discount_t", "done_t", "v_tm1", "v_t")


def _call_loss(dist, traj, alpha, beta, **kwargs):
    arrays = (traj[key] for key in TRAJECTORY)
    return losses.distral_actor_critic_loss(dist, *arrays, alpha, beta, **kwargs)


# ----------------------------------------------------------------------------- alpha_beta


class AlphaBetaTest(parameterized.TestCase):
    @parameterized.parameters(
        (1.0, 0.0, 1.0, 1.0), (0.5, 0.5, 0.5, 1.0), (0.01, 0.01, 0.5, 50.0), (0.0, 0.1, 0.0, 10.0)
    )
    def test_values(self, c_kl, c_ent, alpha, beta):
        got_alpha, got_beta = losses.alpha_beta(c_kl, c_ent)
        self.assertAlmostEqual(got_alpha, alpha)
        self.assertAlmostEqual(got_beta, beta)

    def test_errors_name_the_argument(self):
        with self.assertRaisesRegex(ValueError, "c_kl"):
            losses.alpha_beta(-1, 0)
        with self.assertRaisesRegex(ValueError, "c_ent"):
            losses.alpha_beta(0.1, -0.5)
        with self.assertRaisesRegex(ValueError, "c_kl.*c_ent"):
            losses.alpha_beta(0, 0)


# ----------------------------------------------------------------------------- 2-column logits


class TwoColumnLogitsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((0.0, 1.0), (0.5, 3.0), (1.0, 0.2))
    def test_softmax_is_prior_power_times_exp(self, alpha, beta):
        h0, f = _normals(0, (3, 5), 2)
        logits = self.variant(losses.two_column_logits)(h0, f, alpha, beta)
        chex.assert_shape(logits, (3, 5))
        unnorm = _np_tilted_prior(_np_log_softmax(h0), f, alpha, beta)
        expected = unnorm / unnorm.sum(-1, keepdims=True)
        np.testing.assert_allclose(jax.nn.softmax(logits), expected, rtol=_RTOL, atol=1e-6)

    def test_vmap_and_errors(self):
        h0 = np.arange(12, dtype=np.float32).reshape(2, 6) / 5.0
        f = -h0[::-1]
        fn = jax.jit(losses.two_column_logits)
        batched = jax.vmap(fn, in_axes=(0, 0, None, None))(h0, f, 0.5, 2.0)
        for i in range(2):
            np.testing.assert_allclose(batched[i], fn(h0[i], f[i], 0.5, 2.0), rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "f_logits"):
            losses.two_column_logits(h0, f[:, :5], 0.5, 2.0)


# ----------------------------------------------------------------------------- soft value


class SoftValueTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters((0.0, 1.0), (0.5, 2.0), (1.0, 0.3))
    def test_direct_formula(self, alpha, beta):
        rng = np.random.default_rng(1)
        q = rng.normal(size=(3, 4)).astype(np.float32)
        log_pi_0 = _np_log_softmax(rng.normal(size=(3, 4))).astype(np.float32)
        v = self.variant(losses.soft_value)(q, log_pi_0, alpha, beta)
        chex.assert_shape(v, (3,))
        expected = np.log(np.sum(_np_tilted_prior(log_pi_0, q, alpha, beta), -1)) / beta
        np.testing.assert_allclose(v, expected, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_tends_to_max_and_ignores_prior_at_alpha_zero(self):
        q = np.array([[0.3, -1.0, 0.9, 0.2], [2.0, 2.0, -5.0, 1.0]], np.float32)
        # A prior that excludes the best action: with alpha = 0 it must not matter.
        log_pi_0 = np.array([[0.0, -np.inf, -np.inf, -np.inf]] * 2, np.float32)
        fn = self.variant(losses.soft_value)
        gaps = []
        for beta in (1.0, 10.0, 1e3, 1e5):
            v = fn(q, log_pi_0, 0.0, beta)
            self.assertTrue(_all_finite(v))
            gap = np.asarray(v) - q.max(-1)
            # max q <= V <= max q + log|A| / beta
            self.assertTrue(np.all(gap >= -1e-5) and np.all(gap <= np.log(4) / beta + 1e-5))
            gaps.append(gap)
        self.assertTrue(np.all(np.diff(np.stack(gaps), axis=0) <= 1e-6))
        np.testing.assert_allclose(gaps[-1], 0.0, atol=1e-4)
        # The gradient ignores the prior as well.
        grad_q, grad_prior = jax.jit(
            jax.grad(lambda q, lp: jnp.sum(losses.soft_value(q, lp, 0.0, 2.0)), argnums=(0, 1))
        )(q, log_pi_0)
        self.assertTrue(_all_finite((grad_q, grad_prior)))
        np.testing.assert_allclose(grad_q, _np_softmax(2.0 * q), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(grad_prior, 0.0)

    def test_zero_prior_excludes_action(self):
        q = np.array([0.3, 5.0, 0.9], np.float32)
        log_pi_0 = np.array([np.log(0.5), -np.inf, np.log(0.5)], np.float32)
        v, grad = jax.jit(jax.value_and_grad(losses.soft_value))(q, log_pi_0, 0.5, 2.0)
        expected = np.log(np.sum(0.5**0.5 * np.exp(2.0 * q[[0, 2]].astype(np.float64)))) / 2.0
        np.testing.assert_allclose(v, expected, rtol=1e-5)
        self.assertTrue(_all_finite(grad))
        self.assertEqual(float(grad[1]), 0.0)

    def test_vmap_and_errors(self):
        rng = np.random.default_rng(2)
        q = rng.normal(size=(2, 3, 4)).astype(np.float32)
        log_pi_0 = _np_log_softmax(rng.normal(size=(2, 3, 4))).astype(np.float32)
        fn = jax.jit(losses.soft_value)
        batched = jax.vmap(fn, in_axes=(0, 0, None, None))(q, log_pi_0, 0.5, 3.0)
        for i in range(2):
            np.testing.assert_allclose(batched[i], fn(q[i], log_pi_0[i], 0.5, 3.0), rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "log_pi_0"):
            losses.soft_value(q, log_pi_0[..., :3], 0.5, 3.0)


# ----------------------------------------------------------------------------- rewards


class RegularizedRewardsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_formula_and_no_gradient(self):
        r = np.array([1.0, 0.0, -0.5], np.float32)
        log_pi_i = np.log(np.array([0.5, 0.1, 0.9], np.float32))
        log_pi_0 = np.log(np.array([0.25, 0.3, 0.6], np.float32))
        fn = self.variant(losses.regularized_rewards)
        reg = fn(r, log_pi_i, log_pi_0, 0.5, 2.0)
        np.testing.assert_allclose(reg, r + 0.25 * log_pi_0 - 0.5 * log_pi_i, rtol=1e-6)
        grads = jax.grad(lambda *x: jnp.sum(fn(*x, 0.5, 2.0)), argnums=(0, 1, 2))(
            r, log_pi_i, log_pi_0
        )
        for g in grads:
            np.testing.assert_array_equal(g, 0.0)

    def test_vmap_and_errors(self):
        x = np.arange(6, dtype=np.float32).reshape(2, 3) / 4.0
        fn = jax.jit(losses.regularized_rewards)
        batched = jax.vmap(fn, in_axes=(0, 0, 0, None, None))(x, -x, x - 1, 0.5, 2.0)
        for i in range(2):
            np.testing.assert_allclose(batched[i], fn(x[i], -x[i], x[i] - 1, 0.5, 2.0))
        with self.assertRaisesRegex(ValueError, "log_pi_0_t"):
            losses.regularized_rewards(x[0], x[0], x[0, :2], 0.5, 2.0)
        with self.assertRaisesRegex(ValueError, "log_pi_i_t"):
            losses.regularized_rewards(x[0], x, x[0], 0.5, 2.0)
        with self.assertRaisesRegex(ValueError, "r_t"):
            losses.regularized_rewards(x, x, x, 0.5, 2.0)


# ----------------------------------------------------------------------------- distillation


class DistillationLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_is_weighted_difference(self):
        logits_i, logits_0 = _normals(3, (4, 3), 2)
        w = np.array([0.5, 1.0, 0.0, 2.0], np.float32)
        fn = self.variant(losses.distillation_loss)
        loss = fn(logits_i, logits_0, w)
        ce = -np.sum(_np_softmax(logits_i) * _np_log_softmax(logits_0), -1)
        np.testing.assert_allclose(loss, np.mean(w * ce), rtol=_RTOL)
        g_i, g_0 = jax.grad(fn, argnums=(0, 1))(logits_i, logits_0, w)
        np.testing.assert_array_equal(g_i, 0.0)
        expected = w[:, None] * (_np_softmax(logits_0) - _np_softmax(logits_i)) / 4
        np.testing.assert_allclose(g_0, expected, rtol=_RTOL, atol=1e-7)

    def test_vmap_and_errors(self):
        li, l0 = _normals(4, (2, 3, 4), 2)
        w = np.ones((2, 3), np.float32)
        fn = jax.jit(losses.distillation_loss)
        batched = jax.vmap(fn)(li, l0, w)
        for i in range(2):
            np.testing.assert_allclose(batched[i], fn(li[i], l0[i], w[i]), rtol=1e-6)
        with self.assertRaisesRegex(ValueError, "pi0_t"):
            losses.distillation_loss(li[0], l0[0, :, :3], w[0])
        with self.assertRaisesRegex(ValueError, "w_t"):
            losses.distillation_loss(li[0], l0[0], w[0, :2])
        with self.assertRaisesRegex(ValueError, "w_t"):
            losses.distillation_loss(li[0], l0[0], w)
        with self.assertRaisesRegex(ValueError, "pi_t"):
            losses.distillation_loss(li[0, 0], l0[0, 0], w[0])


# ----------------------------------------------------------------------------- actor-critic


def _a2c_reference(traj, beta, regularizer, lambda_, value_coef):
    """Entropy-regularised A2C from rlax parts (what Distral is with alpha = 0)."""
    logits, a_t = traj["pi_t"], traj["a_t"]
    if regularizer == "sampled":
        reward = traj["r_t"] - rlax.softmax().logprob(a_t, logits) / beta
    else:
        reward = traj["r_t"] + rlax.softmax().entropy(logits) / beta
    lambda_t = lambda_ * (1.0 - traj["done_t"])
    returns = rlax.lambda_returns(sg(reward), traj["discount_t"], sg(traj["v_t"]), lambda_t)
    returns = sg(returns)
    ones = jnp.ones_like(traj["r_t"])
    loss = rlax.policy_gradient_loss(logits, a_t, returns - traj["v_tm1"], ones)
    if regularizer == "analytic":
        loss += rlax.entropy_loss(logits, ones / beta)
    return loss + value_coef * 0.5 * jnp.mean((returns - traj["v_tm1"]) ** 2)


_DIFFERENTIABLE = ("pi_t", "pi0_t", "v_tm1", "v_t")


class DistralActorCriticTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("analytic", "sampled")
    def test_alpha_zero_is_entropy_regularised_a2c(self, regularizer):
        traj = _trajectory(0)
        kwargs = dict(lambda_=0.8, value_coef=0.7)

        def distral(diff):
            loss, _ = _call_loss(
                dists.categorical(), {**traj, **diff}, 0.0, 2.0, regularizer=regularizer, **kwargs
            )
            return loss

        def reference(diff):
            return _a2c_reference({**traj, **diff}, 2.0, regularizer, **kwargs)

        def both(diff):
            return jax.value_and_grad(distral)(diff), jax.value_and_grad(reference)(diff)

        diff = {k: traj[k] for k in _DIFFERENTIABLE}
        (loss, grads), (ref_loss, ref_grads) = self.variant(both)(diff)
        np.testing.assert_allclose(loss, ref_loss, rtol=_RTOL, atol=_ATOL)
        for k in _DIFFERENTIABLE:
            np.testing.assert_allclose(grads[k], ref_grads[k], rtol=_RTOL, atol=_ATOL, err_msg=k)
        # pi_0 is ignored at alpha = 0, and the bootstrap values get no gradient.
        np.testing.assert_array_equal(grads["pi0_t"], 0.0)
        np.testing.assert_array_equal(grads["v_t"], 0.0)

    def test_vmap_matches_loop(self):
        trajs = [_trajectory(seed) for seed in range(3)]
        batch = jax.tree_util.tree_map(lambda *x: np.stack(x), *trajs)
        dist = dists.categorical()

        @jax.jit
        def fn(traj):
            return _call_loss(dist, traj, 0.5, 3.0, regularizer="sampled")

        batched_loss, batched_metrics = jax.jit(jax.vmap(fn))(batch)
        chex.assert_shape(batched_loss, (3,))
        for i, traj in enumerate(trajs):
            loss, metrics = fn(traj)
            np.testing.assert_allclose(batched_loss[i], loss, rtol=1e-5, atol=1e-6)
            for k, v in metrics.items():
                np.testing.assert_allclose(batched_metrics[k][i], v, rtol=1e-5, atol=1e-6)

    @parameterized.parameters("categorical", "tanh_gaussian")
    def test_gradient_matches_finite_differences_of_surrogate(self, family):
        """The loss's gradient is the documented surrogate's, with sg(...) terms held fixed."""
        alpha, beta, lambda_, value_coef, distill_coef = 0.6, 1.5, 0.7, 0.8, 1.3
        with jax.enable_x64(True):
            traj = _trajectory(5, T=4, dtype=np.float64)
            dist = getattr(dists, family)()
            if family == "tanh_gaussian":
                rng = np.random.default_rng(6)
                traj["pi_t"] = (rng.normal(size=(4, 2)), np.exp(0.3 * rng.normal(size=(4, 2))))
                traj["pi0_t"] = (rng.normal(size=(4, 2)), np.exp(0.3 * rng.normal(size=(4, 2))))
                traj["a_t"] = rng.normal(size=(4, 2))
                log_prob_fn, entropy_fn = dist.log_prob, dist.entropy

                def cross_entropy(p, q):  # E_p[-log q] of the pre-squash Gaussians
                    (mu_p, std_p), (mu_q, std_q) = p, q
                    per_dim = (std_p**2 + (mu_p - mu_q) ** 2) / (2 * std_q**2) + jnp.log(std_q)
                    return jnp.sum(per_dim + 0.5 * np.log(2 * np.pi), -1)
            else:

                def log_prob_fn(logits, a):
                    return jnp.take_along_axis(jax.nn.log_softmax(logits), a[:, None], -1)[:, 0]

                def entropy_fn(logits):
                    return -jnp.sum(jax.nn.softmax(logits) * jax.nn.log_softmax(logits), -1)

                def cross_entropy(p, q):
                    return -jnp.sum(jax.nn.softmax(p) * jax.nn.log_softmax(q), -1)

            def kl_fn(p, q):
                return cross_entropy(p, q) - entropy_fn(p)

            diff0 = {k: traj[k] for k in ("pi_t", "pi0_t", "v_tm1")}
            flat0, unravel = ravel_pytree(diff0)
            a_t = traj["a_t"]

            def surrogate(flat, regularizer):
                x, x0 = unravel(flat), diff0  # x varies, x0 is the point held fixed
                if regularizer == "sampled":
                    reg = (alpha / beta) * log_prob_fn(x0["pi0_t"], a_t) - log_prob_fn(
                        x0["pi_t"], a_t
                    ) / beta
                    direct = 0.0
                else:
                    # The squashed entropy's Jacobian part, at the taken action (0 unsquashed).
                    squash = 0.0
                    if family == "tanh_gaussian":
                        squash = np.log1p(-(np.tanh(np.asarray(a_t)) ** 2)).sum(-1)
                    reg = (alpha / beta) * (-kl_fn(x0["pi_t"], x0["pi0_t"])) + (
                        (1 - alpha) / beta
                    ) * (entropy_fn(x0["pi_t"]) + squash)
                    direct = (alpha / beta) * (-kl_fn(x["pi_t"], x0["pi0_t"])) + (
                        (1 - alpha) / beta
                    ) * entropy_fn(x["pi_t"])
                lambda_t = lambda_ * (1 - traj["done_t"])
                g = _lambda_returns_by_hand(
                    traj["r_t"] + reg, traj["discount_t"], traj["v_t"], lambda_t
                )
                return (
                    jnp.mean(-log_prob_fn(x["pi_t"], a_t) * (g - x0["v_tm1"]))
                    - jnp.mean(direct)
                    + value_coef * 0.5 * jnp.mean((g - x["v_tm1"]) ** 2)
                    + distill_coef
                    * (alpha / beta)
                    * jnp.mean(cross_entropy(x0["pi_t"], x["pi0_t"]))
                )

            def loss_fn(flat, regularizer):
                loss, _ = _call_loss(
                    dist,
                    {**traj, **unravel(flat)},
                    alpha,
                    beta,
                    lambda_=lambda_,
                    regularizer=regularizer,
                    value_coef=value_coef,
                    distill_coef=distill_coef,
                )
                return loss

            @jax.jit
            def evaluate(flat):
                out = {}
                for reg in ("analytic", "sampled"):
                    value, grad = jax.value_and_grad(loss_fn)(flat, reg)
                    surrogate_reg = functools.partial(surrogate, regularizer=reg)
                    numeric = _central_differences(surrogate_reg, flat)
                    out[reg] = value, grad, surrogate_reg(flat), numeric
                return out

            self.assertEqual(flat0.dtype, jnp.float64)
            for reg, (value, analytic, surrogate_value, numeric) in evaluate(flat0).items():
                np.testing.assert_allclose(value, surrogate_value, rtol=1e-10, err_msg=reg)
                np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-8, err_msg=reg)

    @parameterized.parameters(False, True)
    def test_expected_gradient_is_objective_gradient(self, two_column):
        """Bandit of T independent steps, enumerated exactly: E_a[∇ loss] = −∇J / T.

        J(θ) = Σ_t Σ_a π_i(a|t) (r_t(a) + (α/β) log π_0(a|t) − (1/β) log π_i(a|t)), the Distral
        objective (eq. 1), differentiated by finite differences. θ is (task logits, π_0 logits),
        or in the 2-column case (h0, f) with task logits α h0 + f, where ∇_h0 includes eq. (10).
        """
        alpha, beta, T, A = 0.5, 2.0, 2, 3
        with jax.enable_x64(True):
            rng = np.random.default_rng(7)
            rewards = rng.normal(size=(T, A))
            theta0 = {"task": rng.normal(size=(T, A)), "prior": rng.normal(size=(T, A))}
            flat0, unravel = ravel_pytree(theta0)

            def logits_of(flat):
                theta = unravel(flat)
                if two_column:
                    task = losses.two_column_logits(theta["prior"], theta["task"], alpha, 1.0)
                    return task, theta["prior"]
                return theta["task"], theta["prior"]

            def objective(flat):
                logits_i, logits_0 = logits_of(flat)
                log_pi_i = jax.nn.log_softmax(logits_i)
                log_pi_0 = jax.nn.log_softmax(logits_0)
                per_action = rewards + (alpha / beta) * log_pi_0 - log_pi_i / beta
                return jnp.sum(jnp.exp(log_pi_i) * per_action)

            baseline = np.array([0.3, -0.2])  # any action-independent baseline

            def loss_fn(flat, actions, regularizer):
                logits_i, logits_0 = logits_of(flat)
                loss, _ = losses.distral_actor_critic_loss(
                    dists.categorical(),
                    logits_i,
                    logits_0,
                    actions,
                    jnp.asarray(rewards)[jnp.arange(T), actions],
                    np.array([1.0, 0.0]),  # undiscounted, ends at T-1
                    np.array([0.0, 1.0]),
                    baseline,
                    np.array([5.0, 7.0]),  # never bootstrapped from: λ = 1, discount 0 at end
                    alpha,
                    beta,
                    lambda_=1.0,
                    regularizer=regularizer,
                )
                return loss

            all_actions = np.array(list(itertools.product(range(A), repeat=T)), np.int32)

            @jax.jit
            def evaluate(flat):
                grads = {
                    reg: jax.vmap(jax.grad(loss_fn), in_axes=(None, 0, None))(
                        flat, all_actions, reg
                    )
                    for reg in ("analytic", "sampled")
                }
                log_pi = jax.nn.log_softmax(logits_of(flat)[0])
                weights = jnp.exp(jnp.sum(log_pi[jnp.arange(T), all_actions], axis=1))
                return weights, grads, _central_differences(objective, flat)

            weights, grads, numeric = evaluate(flat0)
            self.assertAlmostEqual(float(jnp.sum(weights)), 1.0, places=12)
            for reg, g in grads.items():
                expected_grad = np.sum(weights[:, None] * np.asarray(g), axis=0)
                np.testing.assert_allclose(
                    expected_grad, -numeric / T, rtol=1e-6, atol=1e-9, err_msg=reg
                )

    def test_termination_and_truncation(self):
        """Episodes: t=0..2 terminates at 2; t=3..4 is truncated at 4; t=5 continues."""
        gamma, alpha, beta = 0.9, 0.5, 2.0
        dist = dists.categorical()
        rng = np.random.default_rng(8)
        traj = dict(
            pi_t=rng.normal(size=(6, 3)).astype(np.float32),
            pi0_t=rng.normal(size=(6, 3)).astype(np.float32),
            a_t=np.array([0, 1, 2, 2, 1, 0], np.int32),
            r_t=np.array([0.1, -0.2, 1.0, 0.0, 0.5, 0.3], np.float32),
            discount_t=np.array([gamma, gamma, 0.0, gamma, gamma, gamma], np.float32),
            done_t=np.array([0, 0, 1, 0, 1, 0], np.float32),
            v_tm1=rng.normal(size=6).astype(np.float32),
            # v_t[2] follows a termination and must not matter; v_t[4] is V(final state).
            v_t=np.array([1.0, 2.0, 99.0, 3.0, 4.0, 5.0], np.float32),
        )

        @jax.jit
        def returns_of(traj, lambda_):
            # With value_coef = 1, ∂loss/∂v_tm1 = (v_tm1 − G) / T: read G off the gradient.
            def loss(v_tm1):
                out, _ = _call_loss(
                    dist,
                    {**traj, "v_tm1": v_tm1},
                    alpha,
                    beta,
                    lambda_=lambda_,
                    regularizer="sampled",
                    value_coef=1.0,
                )
                return out

            from_loss = traj["v_tm1"] - 6 * jax.grad(loss)(traj["v_tm1"])
            returns, advantages = losses.regularized_returns(
                dist,
                *(traj[key] for key in TRAJECTORY),
                alpha,
                beta,
                lambda_=lambda_,
                regularizer="sampled",
            )
            return from_loss, returns, advantages + traj["v_tm1"]

        steps = np.arange(6)
        log_pi_i = _np_log_softmax(traj["pi_t"])[steps, traj["a_t"]]
        log_pi_0 = _np_log_softmax(traj["pi0_t"])[steps, traj["a_t"]]
        reward = traj["r_t"] + (alpha / beta) * log_pi_0 - log_pi_i / beta
        v = traj["v_t"]
        for lam in (0.8, 1.0):
            returns, returns_public, returns_from_advantages = returns_of(traj, lam)
            # The same returns from regularized_returns (the PPO path), and A_t + v_tm1 = G_t.
            np.testing.assert_allclose(returns_public, returns, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(returns_from_advantages, returns, rtol=1e-5, atol=1e-5)
            returns = np.asarray(returns, np.float64)
            expected = np.zeros(6)
            expected[5] = reward[5] + gamma * v[5]
            expected[4] = reward[4] + gamma * v[4]  # truncated: bootstrap from V(final) only
            expected[3] = reward[3] + gamma * ((1 - lam) * v[3] + lam * expected[4])
            expected[2] = reward[2]  # terminated
            expected[1] = reward[1] + gamma * ((1 - lam) * v[1] + lam * expected[2])
            expected[0] = reward[0] + gamma * ((1 - lam) * v[0] + lam * expected[1])
            np.testing.assert_allclose(returns, expected, rtol=1e-5, atol=1e-5)

            # Nothing leaks across the boundaries.
            changed = dict(traj, v_t=traj["v_t"].copy(), r_t=traj["r_t"].copy())
            changed["v_t"][2] = -1e3
            changed["r_t"][3:] += 10.0
            changed["v_t"][3:] += 10.0
            returns_changed = np.asarray(returns_of(changed, lam)[0])
            np.testing.assert_allclose(returns_changed[:3], returns[:3], rtol=1e-6, atol=1e-6)
            changed = dict(traj, v_t=traj["v_t"].copy(), r_t=traj["r_t"].copy())
            changed["r_t"][5] += 10.0
            changed["v_t"][5] += 10.0
            returns_changed = np.asarray(returns_of(changed, lam)[0])
            np.testing.assert_allclose(returns_changed[:5], returns[:5], rtol=1e-6, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("analytic", "sampled")
    def test_two_column_prior_gradient_contains_distillation(self, regularizer):
        """One-state steps with zero advantages: ∂loss/∂h0 is the distillation term (eq. 10)."""
        alpha, beta, T = 0.5, 2.0, 4
        rng = np.random.default_rng(9)
        h0 = rng.normal(size=(T, 3)).astype(np.float32)
        f = rng.normal(size=(T, 3)).astype(np.float32)
        a_t = np.array([0, 2, 1, 2], np.int32)
        v_tm1 = rng.normal(size=T).astype(np.float32)
        logits_i = alpha * h0.astype(np.float64) + f
        log_pi_i, log_pi_0 = _np_log_softmax(logits_i), _np_log_softmax(h0)
        pi_i, pi_0 = np.exp(log_pi_i), np.exp(log_pi_0)
        entropy = -np.sum(pi_i * log_pi_i, -1)
        kl = np.sum(pi_i * (log_pi_i - log_pi_0), -1)
        if regularizer == "sampled":
            reg = (alpha / beta) * log_pi_0[np.arange(T), a_t] - log_pi_i[np.arange(T), a_t] / beta
        else:
            reg = -(alpha / beta) * kl + (1 - alpha) / beta * entropy
        r_t = (v_tm1 - reg).astype(np.float32)  # terminal steps: G_t = r_t + reg_t = v_tm1
        zeros = np.zeros(T, np.float32)

        def loss(h0, f):
            out, metrics = losses.distral_actor_critic_loss(
                dists.categorical(),
                losses.two_column_logits(h0, f, alpha, 1.0),
                h0,
                a_t,
                r_t,
                zeros,
                np.ones(T, np.float32),
                v_tm1,
                zeros,
                alpha,
                beta,
                regularizer=regularizer,
            )
            return out, metrics

        (_, metrics), (g_h0, g_f) = self.variant(
            jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)
        )(h0, f)
        np.testing.assert_allclose(metrics["advantage"], 0.0, atol=1e-5)
        np.testing.assert_allclose(metrics["value_loss"], 0.0, atol=1e-9)
        distill = (alpha / beta) * (pi_0 - pi_i) / T
        if regularizer == "sampled":
            direct = np.zeros_like(pi_i)  # no direct term; the pg term is zero
        else:
            # ∂(−g)/∂logits_i with g = −(α/β) KL(π_i‖π_0) + ((1−α)/β) H(π_i), π_0 held fixed.
            d_kl = pi_i * (log_pi_i - log_pi_0 - kl[:, None])
            d_entropy = -pi_i * (log_pi_i + entropy[:, None])
            direct = -(-(alpha / beta) * d_kl + (1 - alpha) / beta * d_entropy) / T
        np.testing.assert_allclose(g_f, direct, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(g_h0, alpha * direct + distill, rtol=1e-4, atol=1e-6)

    def test_extreme_inputs_are_finite(self):
        """Logits of ±1e4, β = 1e5, probabilities of 1e-30: no nan or inf anywhere."""
        alpha, beta = 0.5, 1e5
        big = 1e4
        logits = np.array([[big, -big, 0.0], [-big, big, big], [0.0, 0.0, -big]], np.float32)
        logits_0 = np.array([[-big, big, 0.0], [big, -big, 0.0], [0.0, -big, big]], np.float32)
        a_t = np.array([1, 0, 2], np.int32)  # actions of probability ~exp(-1e4) under π_i
        r_t = np.array([1.0, -1.0, 0.5], np.float32)
        ones = np.ones(3, np.float32)
        traj = dict(
            pi_t=logits,
            pi0_t=logits_0,
            a_t=a_t,
            r_t=r_t,
            discount_t=0.99 * ones,
            done_t=np.array([0, 0, 1], np.float32),
            v_tm1=ones,
            v_t=ones,
        )
        log_pi_i = np.log(np.array([1e-30, 0.5, 1.0], np.float32))  # down to -69

        @jax.jit
        def evaluate(diff):
            out = {}
            for regularizer in ("analytic", "sampled"):

                def loss(diff, regularizer=regularizer):
                    return _call_loss(
                        dists.categorical(), {**traj, **diff}, alpha, beta, regularizer=regularizer
                    )

                out[regularizer] = jax.value_and_grad(loss, has_aux=True)(diff)
            # The building blocks, on the same inputs.
            log_pi_0 = dists.categorical_log_prob(logits_0, a_t)  # down to -2e4
            out["rewards"] = losses.regularized_rewards(r_t, log_pi_i, log_pi_0, alpha, beta)
            for a in (0.0, 0.5, 1.0):
                out[f"soft_value_{a}"] = jax.value_and_grad(
                    lambda q, lp, a=a: jnp.sum(losses.soft_value(q, lp, a, beta)), argnums=(0, 1)
                )(logits / big, jax.nn.log_softmax(logits_0))
            out["distillation"] = jax.value_and_grad(losses.distillation_loss, argnums=(0, 1))(
                logits, logits_0, ones * (alpha / beta)
            )
            out["kl"] = jax.value_and_grad(
                lambda p, q: jnp.sum(losses.categorical_kl(p, q)), argnums=(0, 1)
            )(logits, logits_0)
            out["two_column"] = losses.gaussian_two_column(
                np.zeros(4, np.float32),
                np.array([1e-30, 1e30, 1e-30, 1.0], np.float32),
                np.ones(4, np.float32),
                np.array([1e30, 1e-30, 1e-30, 1e30], np.float32),
                0.5,
            )
            return out

        out = evaluate({k: traj[k] for k in ("pi_t", "pi0_t", "v_tm1")})
        for key, value in out.items():
            self.assertTrue(_all_finite(value), (key, value))
        self.assertGreaterEqual(float(out["kl"][0]), 0.0)
        self.assertTrue(np.all(np.asarray(out["two_column"][1]) > 0))

    def test_errors_name_the_argument(self):
        traj = _trajectory(10, T=4)
        dist = dists.categorical()
        call = functools.partial(_call_loss, dist, alpha=0.5, beta=2.0)
        for name, bad in (
            ("discount_t", traj["discount_t"][:3]),
            ("done_t", traj["done_t"][:3]),
            ("v_tm1", traj["v_tm1"][:3]),
            ("v_t", traj["v_t"][:3]),
            ("a_t", traj["a_t"][:3]),
            ("a_t", traj["a_t"][:, None, None]),
            ("r_t", traj["r_t"][:, None]),
            ("pi0_t", traj["pi0_t"][:, :2]),
            ("pi_t", traj["pi_t"][:1]),
        ):
            with self.assertRaisesRegex(ValueError, name):
                if name == "pi_t":  # both policies with one step: must not broadcast
                    call({**traj, "pi_t": bad, "pi0_t": traj["pi0_t"][:1]})
                else:
                    call({**traj, name: bad})
        with self.assertRaisesRegex(ValueError, "regularizer"):
            call(traj, regularizer="exact")
