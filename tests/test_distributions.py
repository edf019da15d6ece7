"""Tests for ``distral_jax.distributions``: direct formulas, distrax references, shapes.

Maths tests run with and without jit (``chex.variants``) and under ``jax.vmap``.
"""

from __future__ import annotations

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized

from distral_jax import distributions as dists
from distral_jax.two_column import gaussian_two_column

_RTOL = 1e-5
_ATOL = 1e-5


def _np_log_softmax(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _jit_call(fn, *args):
    """Runs a reference computation as one compiled function (faster than op-by-op)."""
    return jax.jit(fn)(*args)


def _np_normal_log_pdf(x, mu, std):
    return -0.5 * ((x - mu) / std) ** 2 - np.log(std) - 0.5 * np.log(2.0 * np.pi)


# ----------------------------------------------------------------------------- categorical


class CategoricalTest(chex.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.logits_p = (2.0 * rng.normal(size=(5, 4))).astype(np.float32)
        self.logits_q = (2.0 * rng.normal(size=(5, 4))).astype(np.float32)
        self.actions = np.array([0, 3, 1, 2, 3], np.int32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_prob_is_a_gather(self):
        log_p = self.variant(dists.categorical_log_prob)(self.logits_p, self.actions)
        # A `[:, actions]` index would give [B, B]; a gather gives [B].
        chex.assert_shape(log_p, (5,))
        expected = _np_log_softmax(self.logits_p)[np.arange(5), np.asarray(self.actions)]
        np.testing.assert_allclose(log_p, expected, rtol=_RTOL, atol=_ATOL)
        reference = _jit_call(
            lambda lg, a: distrax.Categorical(logits=lg).log_prob(a), self.logits_p, self.actions
        )
        np.testing.assert_allclose(log_p, reference, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_prob_leading_axes(self):
        logits = jnp.reshape(jnp.arange(2 * 3 * 4, dtype=jnp.float32) / 7.0, (2, 3, 4))
        actions = jnp.array([[0, 1, 3], [2, 2, 0]])
        log_p = self.variant(dists.categorical_log_prob)(logits, actions)
        chex.assert_shape(log_p, (2, 3))
        expected = np.take_along_axis(
            _np_log_softmax(logits), np.asarray(actions)[..., None], axis=-1
        )[..., 0]
        np.testing.assert_allclose(log_p, expected, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_entropy_matches_distrax(self):
        entropy = self.variant(dists.categorical_entropy)(self.logits_p)
        chex.assert_shape(entropy, (5,))
        reference = _jit_call(lambda lg: distrax.Categorical(logits=lg).entropy(), self.logits_p)
        np.testing.assert_allclose(entropy, reference, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_kl_matches_distrax(self):
        kl = self.variant(dists.categorical_kl)(self.logits_p, self.logits_q)
        chex.assert_shape(kl, (5,))
        reference = _jit_call(
            lambda p, q: distrax.Categorical(logits=p).kl_divergence(distrax.Categorical(logits=q)),
            self.logits_p,
            self.logits_q,
        )
        np.testing.assert_allclose(kl, reference, rtol=_RTOL, atol=_ATOL)
        self.assertTrue(np.all(np.asarray(kl) > 0))
        same = self.variant(dists.categorical_kl)(self.logits_p, self.logits_p + 3.0)
        np.testing.assert_allclose(same, 0.0, atol=1e-6)

    @chex.variants(with_jit=True, without_jit=True)
    def test_cross_entropy_is_kl_plus_entropy(self):
        ce = self.variant(dists.categorical_cross_entropy)(self.logits_p, self.logits_q)
        expected = _jit_call(
            lambda p, q: dists.categorical_kl(p, q) + dists.categorical_entropy(p),
            self.logits_p,
            self.logits_q,
        )
        np.testing.assert_allclose(ce, expected, rtol=_RTOL, atol=_ATOL)

    def test_vmap_matches_loop(self):
        logits = np.stack([self.logits_p, self.logits_q])  # [2, 5, 4]
        actions = np.stack([self.actions, self.actions[::-1]])
        log_prob = jax.jit(dists.categorical_log_prob)
        batched = jax.vmap(log_prob)(logits, actions)
        for i in range(2):
            np.testing.assert_allclose(batched[i], log_prob(logits[i], actions[i]), rtol=1e-6)
        kl = jax.jit(dists.categorical_kl)
        batched_kl = jax.vmap(kl)(logits, logits[::-1])
        for i in range(2):
            np.testing.assert_allclose(batched_kl[i], kl(logits[i], logits[1 - i]), rtol=1e-6)

    def test_extreme_logits_are_finite(self):
        logits = jnp.array([[1e4, -1e4, 0.0], [-1e4, -1e4, 1e4]], jnp.float32)

        def evaluate(logits):
            log_p = dists.categorical_log_prob(logits, jnp.array([1, 0]))
            entropy, grad = jax.value_and_grad(lambda lg: jnp.sum(dists.categorical_entropy(lg)))(
                logits
            )
            return log_p, entropy, grad

        for x in _jit_call(evaluate, logits):
            self.assertTrue(np.all(np.isfinite(x)))

    def test_ops_sample_and_mode(self):
        ops = dists.categorical()
        self.assertTrue(ops.discrete)
        sample = _jit_call(ops.sample, jax.random.PRNGKey(0), self.logits_p)
        chex.assert_shape(sample, (5,))
        self.assertTrue(jnp.issubdtype(sample.dtype, jnp.integer))
        self.assertTrue(np.all((np.asarray(sample) >= 0) & (np.asarray(sample) < 4)))
        mode = ops.mode(self.logits_p)
        chex.assert_shape(mode, (5,))
        np.testing.assert_array_equal(mode, np.argmax(np.asarray(self.logits_p), axis=-1))
        np.testing.assert_array_equal(ops.postprocess(mode), mode)
        # Sampling frequencies follow softmax(logits).
        logits = jnp.array([0.0, 1.0, -1.0, 0.5])
        samples = _jit_call(ops.sample, jax.random.PRNGKey(1), jnp.broadcast_to(logits, (4000, 4)))
        freq = np.bincount(np.asarray(samples), minlength=4) / 4000.0
        np.testing.assert_allclose(freq, np.exp(_np_log_softmax(logits)), atol=0.03)


# ----------------------------------------------------------------------------- gaussian


class GaussianTest(chex.TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(1)
        shape = (4, 3)
        self.mu_p = rng.normal(size=shape).astype(np.float32)
        self.std_p = np.exp(0.5 * rng.normal(size=shape)).astype(np.float32)
        self.mu_q = rng.normal(size=shape).astype(np.float32)
        self.std_q = np.exp(0.5 * rng.normal(size=shape)).astype(np.float32)
        self.x = rng.normal(size=shape).astype(np.float32)

    @chex.variants(with_jit=True, without_jit=True)
    def test_log_prob_matches_distrax(self):
        log_p = self.variant(dists.gaussian_log_prob)(self.mu_p, self.std_p, self.x)
        chex.assert_shape(log_p, (4,))
        reference = _jit_call(
            lambda m, s, x: distrax.MultivariateNormalDiag(m, s).log_prob(x),
            self.mu_p,
            self.std_p,
            self.x,
        )
        np.testing.assert_allclose(log_p, reference, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_entropy_matches_distrax(self):
        entropy = self.variant(dists.gaussian_entropy)(self.std_p)
        chex.assert_shape(entropy, (4,))
        per_dim, mvn = _jit_call(
            lambda m, s: (
                jnp.sum(distrax.Normal(m, s).entropy(), axis=-1),
                distrax.MultivariateNormalDiag(m, s).entropy(),
            ),
            self.mu_p,
            self.std_p,
        )
        np.testing.assert_allclose(entropy, per_dim, rtol=_RTOL, atol=_ATOL)
        np.testing.assert_allclose(entropy, mvn, rtol=_RTOL, atol=_ATOL)

    @chex.variants(with_jit=True, without_jit=True)
    def test_kl_matches_distrax(self):
        kl = self.variant(dists.gaussian_kl)(self.mu_p, self.std_p, self.mu_q, self.std_q)
        chex.assert_shape(kl, (4,))

        def references(mu_p, std_p, mu_q, std_q):
            per_dim = distrax.Normal(mu_p, std_p).kl_divergence(distrax.Normal(mu_q, std_q))
            mvn = distrax.MultivariateNormalDiag(mu_p, std_p).kl_divergence(
                distrax.MultivariateNormalDiag(mu_q, std_q)
            )
            return jnp.sum(per_dim, axis=-1), mvn

        per_dim, mvn = _jit_call(references, self.mu_p, self.std_p, self.mu_q, self.std_q)
        np.testing.assert_allclose(kl, per_dim, rtol=_RTOL, atol=_ATOL)
        np.testing.assert_allclose(kl, mvn, rtol=_RTOL, atol=_ATOL)
        same = self.variant(dists.gaussian_kl)(self.mu_p, self.std_p, self.mu_p, self.std_p)
        np.testing.assert_allclose(same, 0.0, atol=1e-6)

    def test_kl_vmap_matches_loop(self):
        args = (self.mu_p, self.std_p, self.mu_q, self.std_q)
        kl = jax.jit(dists.gaussian_kl)
        batched = jax.vmap(kl)(*args)  # vmap over the leading axis of 4
        for i in range(4):
            np.testing.assert_allclose(batched[i], kl(*(a[i] for a in args)), rtol=1e-6)

    def test_kl_tiny_and_huge_std_finite(self):
        tiny, one = jnp.array([1e-30]), jnp.array([1.0])
        zero = jnp.zeros(1)
        kl = jax.jit(dists.gaussian_kl)
        # log(1/1e-30) - 1/2 = 68.58
        np.testing.assert_allclose(kl(zero, tiny, zero, one), 30 * np.log(10) - 0.5, rtol=1e-5)
        self.assertTrue(np.all(np.isfinite(kl(zero, one, zero, jnp.array([1e15])))))

    @chex.variants(with_jit=True, without_jit=True)
    def test_tanh_gaussian_log_prob_matches_distrax(self):
        u = np.clip(self.x, -2.0, 2.0)
        ops = dists.tanh_gaussian()
        log_p = self.variant(ops.log_prob)((self.mu_p, self.std_p), u)
        chex.assert_shape(log_p, (4,))

        def reference_fn(mu, std, u):
            squashed = distrax.Transformed(distrax.Normal(mu, std), distrax.Tanh())
            return jnp.sum(squashed.log_prob(jnp.tanh(u)), axis=-1)

        reference = _jit_call(reference_fn, self.mu_p, self.std_p, u)
        np.testing.assert_allclose(log_p, reference, rtol=1e-4, atol=1e-4)

    def test_tanh_jacobian_stable_and_cancels(self):
        u = jnp.array([[-2.0, 0.0, 0.5], [50.0, -50.0, 1.0]])
        log_det = dists.tanh_log_det_jacobian(u)
        chex.assert_shape(log_det, (2,))
        np.testing.assert_allclose(
            log_det[0], np.sum(np.log(1.0 - np.tanh(np.asarray(u[0], np.float64)) ** 2)), rtol=1e-5
        )
        self.assertTrue(np.all(np.isfinite(log_det)))
        # The Jacobian cancels in log pi_i - log pi_0 at the same pre-squash action.
        ops_t, ops_g = dists.tanh_gaussian(), dists.gaussian()
        p, q = (self.mu_p, self.std_p), (self.mu_q, self.std_q)
        diff_t = ops_t.log_prob(p, self.x) - ops_t.log_prob(q, self.x)
        diff_g = ops_g.log_prob(p, self.x) - ops_g.log_prob(q, self.x)
        np.testing.assert_allclose(diff_t, diff_g, rtol=1e-5, atol=1e-5)

    @parameterized.parameters("gaussian", "tanh_gaussian")
    def test_ops_sample_mode_shapes(self, family):
        ops = getattr(dists, family)()
        self.assertFalse(ops.discrete)
        params = (self.mu_p, self.std_p)
        sample = _jit_call(ops.sample, jax.random.PRNGKey(0), params)
        chex.assert_shape(sample, (4, 3))
        chex.assert_shape(ops.mode(params), (4, 3))
        np.testing.assert_array_equal(ops.mode(params), self.mu_p)
        chex.assert_shape(ops.log_prob(params, sample), (4,))
        chex.assert_shape(ops.entropy(params), (4,))
        chex.assert_shape(ops.kl(params, (self.mu_q, self.std_q)), (4,))
        env_action = ops.postprocess(sample)
        chex.assert_shape(env_action, (4, 3))
        if family == "tanh_gaussian":
            self.assertTrue(np.all(np.abs(np.asarray(env_action)) <= 1.0))
        # Moments of the pre-squash samples.
        loc, scale = jnp.array([0.5, -1.0]), jnp.array([0.3, 2.0])
        params = (jnp.broadcast_to(loc, (4000, 2)), jnp.broadcast_to(scale, (4000, 2)))
        many = np.asarray(_jit_call(ops.sample, jax.random.PRNGKey(2), params))
        np.testing.assert_allclose(many.mean(0), loc, atol=0.1)
        np.testing.assert_allclose(many.std(0), scale, rtol=0.06)


# ----------------------------------------------------------------------------- 2-column gaussian


class GaussianTwoColumnTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.0, 0.5, 1.0)
    def test_density_is_normalised_product(self, alpha):
        # D = 2: each dimension is checked on its own 1-D grid.
        mu_0 = jnp.array([0.5, -1.0])
        std_0 = jnp.array([0.7, 2.0])
        mu_f = jnp.array([-1.0, 0.3])
        std_f = jnp.array([1.3, 0.4])
        mu, std = self.variant(gaussian_two_column)(mu_0, std_0, mu_f, std_f, alpha)
        chex.assert_shape([mu, std], (2,))
        x = np.linspace(-15.0, 15.0, 30001)
        for d in range(2):
            log_unnorm = alpha * _np_normal_log_pdf(
                x, float(mu_0[d]), float(std_0[d])
            ) + _np_normal_log_pdf(x, float(mu_f[d]), float(std_f[d]))
            unnorm = np.exp(log_unnorm)
            product = unnorm / np.trapezoid(unnorm, x)
            density = np.exp(_np_normal_log_pdf(x, float(mu[d]), float(std[d])))
            np.testing.assert_allclose(density, product, atol=1e-5)
        if alpha == 0.0:  # the column alone
            np.testing.assert_allclose(mu, mu_f, rtol=1e-6)
            np.testing.assert_allclose(std, std_f, rtol=1e-6)
        if alpha == 1.0:  # the plain product of two Gaussians
            var = (std_0**2 * std_f**2) / (std_0**2 + std_f**2)
            np.testing.assert_allclose(std, np.sqrt(var), rtol=1e-5)
            np.testing.assert_allclose(
                mu, (mu_0 * std_f**2 + mu_f * std_0**2) / (std_0**2 + std_f**2), rtol=1e-5
            )

    def test_vmap_matches_loop(self):
        rng = np.random.default_rng(3)
        mu_0, mu_f = (rng.normal(size=(3, 2)).astype(np.float32) for _ in range(2))
        std_0, std_f = (np.exp(rng.normal(size=(3, 2))).astype(np.float32) for _ in range(2))
        alphas = np.array([0.0, 0.5, 1.0], np.float32)
        product = jax.jit(gaussian_two_column)
        mu_b, std_b = jax.vmap(product)(mu_0, std_0, mu_f, std_f, alphas)
        for i in range(3):
            mu_i, std_i = product(mu_0[i], std_0[i], mu_f[i], std_f[i], alphas[i])
            np.testing.assert_allclose(mu_b[i], mu_i, rtol=1e-6)
            np.testing.assert_allclose(std_b[i], std_i, rtol=1e-6)

    @parameterized.parameters(0.0, 0.5, 1.0)
    def test_tiny_and_huge_std_finite(self, alpha):
        # Every pair of (std_0, std_f) in {1e-30, 1e-6, 1, 1e6, 1e30}, as the D axis.
        stds = np.array([1e-30, 1e-6, 1.0, 1e6, 1e30], np.float32)
        std_0, std_f = (s.ravel() for s in np.meshgrid(stds, stds))
        mu_0, mu_f = np.full_like(std_0, 0.3), np.full_like(std_0, -1.0)
        mu, std = jax.jit(gaussian_two_column)(mu_0, std_0, mu_f, std_f, alpha)
        self.assertTrue(np.all(np.isfinite(mu)) and np.all(np.isfinite(std)))
        self.assertTrue(np.all(np.asarray(std) > 0))
        # The mean lies between the two means; std is below both stds (or equals the column's).
        self.assertTrue(np.all((np.asarray(mu) >= -1.0 - 1e-5) & (np.asarray(mu) <= 0.3 + 1e-5)))
        self.assertTrue(np.all(np.asarray(std) <= std_f * (1 + 1e-5)))

        def total(mu_0, std_0, mu_f, std_f):
            return jnp.sum(jnp.stack(gaussian_two_column(mu_0, std_0, mu_f, std_f, alpha)))

        grads = jax.jit(jax.grad(total, argnums=(0, 1, 2, 3)))(mu_0, std_0, mu_f, std_f)
        self.assertTrue(all(np.all(np.isfinite(g)) for g in grads))
