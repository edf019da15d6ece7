"""PPO on the Distral objective: ``losses.distral_ppo_loss`` and a PPO training run.

The loss tests follow ``test_losses.py`` (rlax style: ``chex.variants`` with and without jit,
``jax.vmap`` against a loop, errors that name the argument). The training test runs PPO on the
point-mass family (``envs.point_mass``) against the scripted controller's returns.
"""

from __future__ import annotations

import functools
import warnings

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from distral_jax import distributions as dists
from distral_jax import losses, presets
from distral_jax import train as train_module
from distral_jax.analysis import steps_to_threshold
from distral_jax.configs import TrainConfig
from distral_jax.envs.bandit import MultiTaskBandit
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.learners import ppo as ppo_learner
from distral_jax.networks import MIN_STD
from distral_jax.train import train

_RTOL = 1e-5
_ATOL = 1e-6
ALPHA, BETA = 0.5, 2.0


def _np_log_softmax(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _all_finite(tree) -> bool:
    return all(bool(np.all(np.isfinite(np.asarray(x)))) for x in jax.tree_util.tree_leaves(tree))


def _trajectory(seed, family="categorical", T=5, A=3, D=2):
    """A random trajectory with a termination at t=1 and a truncation at t=T-2."""
    rng = np.random.default_rng(seed)
    f32 = lambda x: np.asarray(x, np.float32)
    if family == "categorical":
        pi_t, pi0_t = f32(rng.normal(size=(T, A))), f32(rng.normal(size=(T, A)))
        a_t = rng.integers(0, A, size=T).astype(np.int32)
    else:
        pi_t = (f32(rng.normal(size=(T, D))), f32(np.exp(0.3 * rng.normal(size=(T, D)))))
        pi0_t = (f32(rng.normal(size=(T, D))), f32(np.exp(0.3 * rng.normal(size=(T, D)))))
        a_t = f32(rng.normal(size=(T, D)))
    return dict(
        pi_t=pi_t,
        pi0_t=pi0_t,
        a_t=a_t,
        r_t=f32(rng.normal(size=T)),
        discount_t=f32([0.9, 0.0] + [0.9] * (T - 2)),
        done_t=f32([0.0, 1.0] + [0.0] * (T - 4) + [1.0, 0.0]),
        v_tm1=f32(rng.normal(size=T)),
        v_t=f32(rng.normal(size=T)),
    )


def _ppo(dist, x, **kwargs):
    """``distral_ppo_loss`` on a dict with pi_t, pi0_t, a_t, mu_t, adv_t, ret_t, v_tm1."""
    return losses.distral_ppo_loss(
        dist,
        x["pi_t"],
        x["pi0_t"],
        x["a_t"],
        x["mu_t"],
        x["adv_t"],
        x["ret_t"],
        x["v_tm1"],
        ALPHA,
        BETA,
        **kwargs,
    )


def _ppo_inputs(traj, mu_t) -> dict:
    """``_ppo``'s inputs from a ``_trajectory``: its rewards as the advantages, its bootstrap
    values as the returns, and ``mu_t`` as the behaviour log-probabilities."""
    return dict(
        pi_t=traj["pi_t"],
        pi0_t=traj["pi0_t"],
        a_t=traj["a_t"],
        mu_t=mu_t,
        adv_t=traj["r_t"],
        ret_t=traj["v_t"],
        v_tm1=traj["v_tm1"],
    )


def _categorical_direct_gradient(logits, logits_0):
    """∂(−mean_t g_t)/∂logits with g = −(α/β) KL(π_i‖π_0) + ((1−α)/β) H(π_i), π_0 fixed."""
    log_pi, log_pi_0 = _np_log_softmax(logits), _np_log_softmax(logits_0)
    pi = np.exp(log_pi)
    kl = np.sum(pi * (log_pi - log_pi_0), -1, keepdims=True)
    entropy = -np.sum(pi * log_pi, -1, keepdims=True)
    d_kl = pi * (log_pi - log_pi_0 - kl)
    d_entropy = -pi * (log_pi + entropy)
    d_g = -(ALPHA / BETA) * d_kl + ((1 - ALPHA) / BETA) * d_entropy
    return -d_g / logits.shape[0]


class DistralPPOLossTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(
        family=("categorical", "tanh_gaussian"), regularizer=("analytic", "sampled")
    )
    def test_ratio_one_has_the_actor_critic_gradient(self, family, regularizer):
        """μ = π_i and advantage_scale = 1: PPO's gradient is the actor-critic loss's.

        The actor-critic loss computes its λ-return advantages of R^reg itself; the same
        advantages and returns from ``regularized_returns`` are fed to the PPO loss. At ρ = 1 the
        clip is inactive and ∇ρ_t = ∇ log π_i(a_t|s_t), so the surrogate's gradient is the
        policy gradient's; the regulariser's direct term, the value loss and distillation are
        the same terms in both losses.
        """
        dist = getattr(dists, family)()
        traj = _trajectory(0, family)
        lambda_, value_coef, distill_coef = 0.8, 0.7, 1.3

        def trajectory(diff):  # the losses' positional arguments, in their order
            return (
                dist,
                diff["pi_t"],
                diff["pi0_t"],
                traj["a_t"],
                traj["r_t"],
                traj["discount_t"],
                traj["done_t"],
                diff["v_tm1"],
                traj["v_t"],
                ALPHA,
                BETA,
            )

        def actor_critic(diff, value_coef, distill_coef):
            loss, metrics = losses.distral_actor_critic_loss(
                *trajectory(diff),
                lambda_=lambda_,
                regularizer=regularizer,
                value_coef=value_coef,
                distill_coef=distill_coef,
            )
            return loss, metrics

        def ppo(diff, fixed, value_coef, distill_coef):
            return _ppo(
                dist,
                {**fixed, **diff},
                regularizer=regularizer,
                value_coef=value_coef,
                distill_coef=distill_coef,
                advantage_scale=1.0,
            )

        def both(diff):
            returns, advantages = losses.regularized_returns(
                *trajectory(diff), lambda_=lambda_, regularizer=regularizer
            )
            # Behaviour log-probs of the current policy, held fixed: ρ_t = 1 exactly.
            mu = jax.lax.stop_gradient(dist.log_prob(diff["pi_t"], traj["a_t"]))
            fixed = dict(a_t=traj["a_t"], mu_t=mu, adv_t=advantages, ret_t=returns)
            grad = functools.partial(jax.grad, has_aux=True)
            out = {}
            for coefs in ((value_coef, distill_coef), (0.0, 0.0)):
                out[coefs] = (
                    grad(actor_critic)(diff, *coefs),
                    grad(ppo)(diff, fixed, *coefs),
                )
            return out

        diff = {k: traj[k] for k in ("pi_t", "pi0_t", "v_tm1")}
        out = self.variant(both)(diff)
        # Everything: policy gradient + regulariser, value loss and distillation.
        (ac_grads, ac_metrics), (ppo_grads, ppo_metrics) = out[(value_coef, distill_coef)]
        for name in diff:
            chex.assert_trees_all_close(
                ppo_grads[name], ac_grads[name], rtol=_RTOL, atol=_ATOL, custom_message=name
            )
        np.testing.assert_allclose(ppo_metrics["clip_fraction"], 0.0)
        np.testing.assert_allclose(ppo_metrics["approx_kl_behaviour"], 0.0, atol=1e-7)
        for name in ("value_loss", "distill_loss", "kl", "entropy"):
            np.testing.assert_allclose(ppo_metrics[name], ac_metrics[name], rtol=_RTOL)
        # The policy-gradient + regulariser part alone, w.r.t. the task policy's parameters.
        (ac_grads, _), (ppo_grads, _) = out[(0.0, 0.0)]
        chex.assert_trees_all_close(ppo_grads["pi_t"], ac_grads["pi_t"], rtol=_RTOL, atol=_ATOL)
        self.assertTrue(_all_finite(ppo_grads["pi_t"]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_clipped_side_has_zero_surrogate_gradient(self):
        """ρ outside [1−ε, 1+ε] on the side the clip binds (Â > 0, ρ > 1+ε or Â < 0, ρ < 1−ε):
        that step's surrogate gradient is zero; on the other side and inside, −Â ρ ∇log π / T."""
        eps, T = 0.2, 5
        rng = np.random.default_rng(1)
        logits = rng.normal(size=(T, 3)).astype(np.float32)
        a_t = np.array([0, 1, 2, 0, 1], np.int32)
        ratio = np.array([1.5, 0.5, 1.5, 0.5, 1.1], np.float32)
        adv = np.array([1.0, -1.0, -2.0, 2.0, 0.7], np.float32)
        clipped = np.array([True, True, False, False, False])
        log_pi = _np_log_softmax(logits)[np.arange(T), a_t]
        x = dict(
            pi_t=logits,
            pi0_t=rng.normal(size=(T, 3)).astype(np.float32),
            a_t=a_t,
            mu_t=(log_pi - np.log(ratio)).astype(np.float32),
            adv_t=adv,
            ret_t=np.zeros(T, np.float32),
            v_tm1=np.zeros(T, np.float32),
        )

        dist = dists.categorical()

        def loss(logits):
            # Sampled regulariser: no direct term, so the policy's gradient is the surrogate's.
            return _ppo(dist, {**x, "pi_t": logits}, clip_epsilon=eps, regularizer="sampled")

        (_, metrics), grad = self.variant(jax.value_and_grad(loss, has_aux=True))(logits)
        grad = np.asarray(grad)
        np.testing.assert_array_equal(grad[clipped], 0.0)
        pi = np.exp(_np_log_softmax(logits))
        d_log_pi = np.eye(3)[a_t] - pi
        expected = -(adv * ratio)[:, None] * d_log_pi / T
        np.testing.assert_allclose(grad[~clipped], expected[~clipped], rtol=1e-4, atol=_ATOL)
        surrogate = np.minimum(ratio * adv, np.clip(ratio, 1 - eps, 1 + eps) * adv)
        np.testing.assert_allclose(metrics["pg_loss"], -np.mean(surrogate), rtol=1e-5)
        np.testing.assert_allclose(metrics["clip_fraction"], 0.8)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("analytic", "sampled")
    def test_advantage_scale_multiplies_the_regulariser_and_distillation(self, regularizer):
        """∇loss(s) − ∇loss(0) = s × (the analytic regulariser's direct gradient for π_i, the
        distillation gradient for π_0); the value's gradient does not move with s. The sampled
        regulariser has no direct term at all."""
        traj = _trajectory(2)
        T = traj["r_t"].shape[0]
        x = _ppo_inputs(traj, np.log(np.full(T, 0.3, np.float32)))  # ρ ≠ 1, some steps clipped
        diff_names = ("pi_t", "pi0_t", "v_tm1")

        def loss(diff, scale):
            return _ppo(
                dists.categorical(), {**x, **diff}, regularizer=regularizer, advantage_scale=scale
            )

        grad_fn = self.variant(jax.value_and_grad(loss, has_aux=True))
        diff = {k: x[k] for k in diff_names}
        (loss0, _), grads0 = grad_fn(diff, 0.0)
        if regularizer == "analytic":
            direct = _categorical_direct_gradient(x["pi_t"], x["pi0_t"])
            log_pi, log_pi_0 = _np_log_softmax(x["pi_t"]), _np_log_softmax(x["pi0_t"])
            pi = np.exp(log_pi)
            g = -(ALPHA / BETA) * np.sum(pi * (log_pi - log_pi_0), -1) + (
                (1 - ALPHA) / BETA
            ) * -np.sum(pi * log_pi, -1)
        else:
            direct, g = np.zeros_like(x["pi_t"]), np.zeros(T)
        pi_0 = np.exp(log_pi_0 if regularizer == "analytic" else _np_log_softmax(x["pi0_t"]))
        pi_i = np.exp(_np_log_softmax(x["pi_t"]))
        distill_grad = (ALPHA / BETA) * (pi_0 - pi_i) / T
        for scale in (1.0, 2.5):
            (loss_s, aux), grads_s = grad_fn(diff, scale)
            np.testing.assert_allclose(
                grads_s["pi_t"] - grads0["pi_t"], scale * direct, rtol=1e-4, atol=_ATOL
            )
            np.testing.assert_allclose(
                loss_s - loss0,
                scale * (-np.mean(g) + aux["distill_loss"]),
                rtol=1e-4,
                atol=_ATOL,
            )
            np.testing.assert_allclose(
                grads_s["pi0_t"] - grads0["pi0_t"], scale * distill_grad, rtol=1e-4, atol=_ATOL
            )
            np.testing.assert_allclose(grads_s["v_tm1"], grads0["v_tm1"], rtol=1e-6, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(regularizer=("analytic", "sampled"), distill_coef=(1.0, 2.5))
    def test_distillation_gradient(self, regularizer, distill_coef):
        """∂loss/∂logits_0 = distill_coef (α/β)(π_0 − π_i)/T; no gradient into π_i from it."""
        traj = _trajectory(3)
        T = traj["r_t"].shape[0]
        x = _ppo_inputs(traj, np.log(np.full(T, 0.4, np.float32)))

        def loss(pi_t, pi0_t, coef):
            out, _ = _ppo(
                dists.categorical(),
                {**x, "pi_t": pi_t, "pi0_t": pi0_t},
                regularizer=regularizer,
                distill_coef=coef,
            )
            return out

        grad_fn = self.variant(jax.grad(loss, argnums=(0, 1)))
        g_pi, g_pi0 = grad_fn(x["pi_t"], x["pi0_t"], distill_coef)
        g_pi_without, _ = grad_fn(x["pi_t"], x["pi0_t"], 0.0)
        pi, pi_0 = (np.exp(_np_log_softmax(x[k])) for k in ("pi_t", "pi0_t"))
        expected = distill_coef * (ALPHA / BETA) * (pi_0 - pi) / T
        np.testing.assert_allclose(g_pi0, expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(g_pi, g_pi_without, rtol=1e-6, atol=1e-7)

    def test_vmap_matches_loop(self):
        dist = dists.categorical()
        xs = []
        for seed in range(3):
            traj = _trajectory(10 + seed)
            T = traj["r_t"].shape[0]
            mu_t = dist.log_prob(traj["pi_t"], traj["a_t"]) - 0.3 * (seed - 1)
            xs.append({**_ppo_inputs(traj, mu_t), "scale": np.float32(0.5 + seed)})
        batch = jax.tree_util.tree_map(lambda *v: np.stack(v), *xs)

        @jax.jit
        def fn(x):
            return jax.value_and_grad(
                lambda p: _ppo(dist, {**x, "pi_t": p}, advantage_scale=x["scale"]), has_aux=True
            )(x["pi_t"])

        (batched_loss, batched_metrics), batched_grads = jax.jit(jax.vmap(fn))(batch)
        chex.assert_shape(batched_loss, (3,))
        chex.assert_shape(batched_grads, (3, T, 3))
        for i, x in enumerate(xs):
            (loss, metrics), grads = fn(x)
            np.testing.assert_allclose(batched_loss[i], loss, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(batched_grads[i], grads, rtol=1e-5, atol=1e-6)
            for k, v in metrics.items():
                np.testing.assert_allclose(
                    batched_metrics[k][i], v, rtol=1e-5, atol=1e-6, err_msg=k
                )

    @parameterized.parameters("analytic", "sampled")
    def test_tanh_gaussian_with_extreme_std_is_finite(self, regularizer):
        """π_i at the networks' minimum std and π_0 at 1e3 (and the reverse), saturated tanh,
        actions sampled from a behaviour policy one small update away: all finite."""
        dist = dists.tanh_gaussian()
        T, D = 4, 2
        rng = np.random.default_rng(4)
        f32 = lambda v: np.asarray(v, np.float32)
        cases = []
        for std_i, std_0 in ((MIN_STD, 1e3), (1e3, MIN_STD), (MIN_STD, MIN_STD)):
            loc_b = f32(rng.normal(size=(T, D)) + np.array([20.0, -20.0]))  # tanh saturated
            std_b = f32(np.full((T, D), std_i))
            u = f32(loc_b + std_b * rng.normal(size=(T, D)))
            mu = dist.log_prob((loc_b, std_b), u)
            # The current policy: mean moved by half a std, std shrunk by 10%; and ρ = 1.
            for loc_i, scale_i in ((loc_b + 0.5 * std_b, 0.9 * std_b), (loc_b, std_b)):
                pi0 = (f32(rng.normal(size=(T, D))), f32(np.full((T, D), std_0)))
                cases.append(
                    dict(
                        pi_t=(f32(loc_i), f32(scale_i)),
                        pi0_t=pi0,
                        a_t=u,
                        mu_t=f32(mu),
                        adv_t=f32([1.0, -1.0, 3.0, -3.0]),
                        ret_t=f32(rng.normal(size=T)),
                        v_tm1=f32(rng.normal(size=T)),
                    )
                )

        @jax.jit
        def evaluate(x):
            def loss(diff):
                return _ppo(dist, {**x, **diff}, regularizer=regularizer, advantage_scale=3.0)

            return jax.value_and_grad(loss, has_aux=True)(
                {k: x[k] for k in ("pi_t", "pi0_t", "v_tm1")}
            )

        for i, x in enumerate(cases):
            out = evaluate(x)
            self.assertTrue(_all_finite(out), (i, out))
            self.assertTrue(np.all(np.isfinite(np.asarray(dist.log_prob(x["pi_t"], x["a_t"])))))

    def test_errors_name_the_argument(self):
        traj = _trajectory(5)
        T = traj["r_t"].shape[0]
        x = _ppo_inputs(traj, traj["r_t"])
        names = dict(
            mu_t="behaviour_log_pi_t", adv_t="advantage_t", ret_t="returns_t", v_tm1="v_tm1"
        )
        call = functools.partial(_ppo, dists.categorical())
        cases = [
            ("advantage_t", dict(adv_t=x["adv_t"][:, None])),
            ("a_t", dict(a_t=x["a_t"][:3])),
            ("a_t", dict(a_t=x["a_t"][:1])),  # would broadcast to every step
            ("a_t", dict(a_t=x["a_t"][:, None, None])),
            ("pi0_t", dict(pi0_t=x["pi0_t"][:, :2])),
            ("pi0_t", dict(pi0_t=x["pi0_t"][:1])),
            # Both policies of one step: must not broadcast against the [T] arrays.
            ("pi_t", dict(pi_t=x["pi_t"][:1], pi0_t=x["pi0_t"][:1])),
            ("pi_t", dict(pi_t=x["pi_t"][0], pi0_t=x["pi0_t"][0])),
        ]
        for key, name in names.items():
            if key != "adv_t":
                cases.append((name, {key: x[key][: T - 1]}))
        for name, bad in cases:
            with self.assertRaisesRegex(ValueError, name):
                call({**x, **bad})
        with self.assertRaisesRegex(ValueError, "regularizer"):
            call(x, regularizer="exact")


# ----------------------------------------------------------------------------- the learner's scale

# A stateless two-task problem (one state, never-ending episodes) where everything is exact:
# the value V_i = (E_π r_i + g_i)/(1 − γ), and E[∇log π(a_t) Â_t] = ∇_logits E_π r_i for GAE
# advantages Â_t of any length (later δ's are independent of a_t and have mean zero).
_MC_REWARDS = np.array([[1.0, 0.0, 0.5], [0.0, 0.1, 0.05]], np.float32)
_MC_LOGITS = np.array([[0.5, -0.3, 0.1], [-0.2, 0.4, 0.0]], np.float32)
_MC_LOGITS_0 = np.array([0.1, 0.2, -0.1], np.float32)


def _policy_gradient_coefficient(T: int, B: int, draws: int, seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo ⟨E[PPO's policy-gradient part], d⟩ / (E[κ] ⟨d, d⟩), d = ∇_logits E_π r.

    Each draw is a rollout ``[N, B, T]`` (one minibatch, ρ = 1) whose κ comes from the
    learner's own ``next_advantage_scale`` after an independent previous rollout, and the loss
    is the learner's ``ppo_joint_loss``. The regulariser's part of the same loss is κ ∇(−g)
    exactly (checked), so the returned coefficient is the policy gradient's weight against the
    regulariser's: 1 means β is the β asked for. Returns (mean, standard error).
    """
    hp = jax.tree_util.tree_map(
        np.asarray, TrainConfig(variant="distral_klent_1col", beta=3.0).hyperparams()
    )
    gamma = float(hp.gamma)
    dist = dists.categorical()
    rewards, logits, logits_0 = (jnp.asarray(x) for x in (_MC_REWARDS, _MC_LOGITS, _MC_LOGITS_0))
    N, A = rewards.shape
    pi = jax.nn.softmax(logits)
    logits_t = jnp.broadcast_to(logits[:, None, None], (N, B, T, A))
    logits0_t = jnp.broadcast_to(logits_0, (N, B, T, A))

    def regulariser_of(task_logits):  # g = −(α/β) KL(π_i‖π_0) + ((1−α)/β) H(π_i), one task
        kl = dist.kl(task_logits[None], logits_0[None])[0]
        entropy = dist.entropy(task_logits[None])[0]
        return -(hp.alpha / hp.beta) * kl + ((1 - hp.alpha) / hp.beta) * entropy

    g = jax.vmap(regulariser_of)(logits)
    value = (jnp.sum(pi * rewards, -1) + g) / (1 - gamma)
    returns_fn = jax.vmap(
        jax.vmap(
            functools.partial(
                losses.regularized_returns, dist, alpha=hp.alpha, beta=hp.beta, lambda_=hp.lambda_
            )
        )
    )

    def rollout(key):
        a = jax.random.categorical(key, logits_t)
        r = jnp.take_along_axis(rewards[:, None, None, :], a[..., None], axis=-1)[..., 0]
        v = jnp.broadcast_to(value[:, None, None], (N, B, T))
        discount, done = jnp.full((N, B, T), gamma), jnp.zeros((N, B, T))
        returns, advantages = returns_fn(logits_t, logits0_t, a, r, discount, done, v, v)
        return a, returns, advantages

    def one_draw(key):
        k_previous, k_now = jax.random.split(key)
        state = ppo_learner.PPOState(mean_square=jnp.ones(N), seen=jnp.zeros((), bool))
        _, state = ppo_learner.next_advantage_scale(state, rollout(k_previous)[2])
        a, returns, advantages = rollout(k_now)
        scale, _ = ppo_learner.next_advantage_scale(state, advantages)
        mu = dist.log_prob(logits_t, a)

        def loss(lt, adv):
            out, _ = ppo_learner.ppo_joint_loss(
                dist, lt, logits0_t, jnp.zeros((N, B, T)), a, mu, adv, returns, scale, hp,
                clip=0.2, regularizer="analytic",
            )  # fmt: skip
            return out

        total = jax.grad(loss)(logits_t, advantages)
        regulariser = jax.grad(loss)(logits_t, jnp.zeros_like(advantages))
        return jnp.sum(total - regulariser, axis=(1, 2)), jnp.sum(regulariser, axis=(1, 2)), scale

    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    pg, regulariser, scale = jax.jit(jax.vmap(one_draw))(keys)
    # The regulariser's part is exactly κ ∂(−g)/∂logits per task (one term per step, mean 1/T).
    direct = jax.vmap(jax.grad(lambda x: -regulariser_of(x)))(logits)
    np.testing.assert_allclose(
        regulariser, scale[:, None, None] * direct[None], rtol=1e-4, atol=1e-6
    )
    d = pi * (rewards - jnp.sum(pi * rewards, -1, keepdims=True))
    per_draw = jnp.sum(-pg * d[None], axis=(1, 2)) / (jnp.mean(scale) * jnp.sum(d * d))
    return float(jnp.mean(per_draw)), float(jnp.std(per_draw) / np.sqrt(draws))


@pytest.mark.parametrize("T, B", [(1, 16), (10, 4)])
def test_policy_gradient_keeps_its_weight_against_the_regulariser(T, B):
    """The expected policy-gradient coefficient of the PPO learner's loss, relative to the
    regulariser's, is 1 (β is the β asked for), at T = 1 and at T > 1.

    Measured: 1.000 ± 0.0015 (T = 1, B = 16) and 1.003 ± 0.002 (T = 10, B = 4), 20k draws. The
    defects this guards against, measured with the same draws: centring by the minibatch mean
    0.936 and 0.910 (the (1 − S̄/B) of docs/maths.md §6); κ from the samples it scales 0.980
    and 0.961. The tolerance, 0.012, is below every one of them and five standard errors wide.
    """
    mean, stderr = _policy_gradient_coefficient(T, B, draws=20_000)
    print(f"T={T} B={B}: coefficient {mean:.4f} ± {stderr:.4f}")
    assert stderr < 0.003
    assert abs(mean - 1.0) < 0.012, (mean, stderr)


def test_advantage_scale_pools_tasks_in_the_objective():
    """κ = 1/√(Σ w_i ms_i / Σ w_i): a task of weight 0 changes nothing; before any rollout was
    seen the current one is used, afterwards the previous one."""
    ms = jnp.array([4.0, 0.25, 100.0])
    w = jnp.array([1.0, 1.0, 0.0])
    np.testing.assert_allclose(
        ppo_learner.advantage_scale(ms, w), 1 / np.sqrt((4.0 + 0.25) / 2), rtol=1e-6
    )
    np.testing.assert_allclose(
        ppo_learner.advantage_scale(ms.at[2].set(1e6), w), ppo_learner.advantage_scale(ms, w)
    )
    advantages = jnp.broadcast_to(jnp.array([2.0, 0.5, 10.0])[:, None, None], (3, 4, 5))
    fresh = ppo_learner.PPOState(mean_square=jnp.ones(3), seen=jnp.zeros((), bool))
    scale, state = ppo_learner.next_advantage_scale(fresh, advantages, w)
    np.testing.assert_allclose(scale, 1 / np.sqrt((4.0 + 0.25) / 2), rtol=1e-6)
    np.testing.assert_allclose(state.mean_square, [4.0, 0.25, 100.0], rtol=1e-6)
    scale, _ = ppo_learner.next_advantage_scale(state, 3 * advantages, w)
    np.testing.assert_allclose(scale, 1 / np.sqrt((4.0 + 0.25) / 2), rtol=1e-6)


def test_ppo_defaults_to_the_sampled_regulariser_and_warns_of_the_analytic_one():
    """``regularizer=None`` is the learner's own: sampled for PPO (clipped with the rewards),
    analytic for A2C; PPO given the analytic one with several minibatch steps is warned."""
    assert TrainConfig(learner="ppo").learner_regularizer == "sampled"
    assert TrainConfig(learner="a2c").learner_regularizer == "analytic"
    assert TrainConfig(learner="ppo", regularizer="analytic").learner_regularizer == "analytic"
    env = MultiTaskBandit([[1.0, 0.0], [0.0, 1.0]])
    tiny = dict(
        learner="ppo", num_envs=4, unroll_length=1, episode_length=1, total_env_steps=8,
        iterations_per_call=1, eval_every=8, eval_envs=2, hidden_sizes=(4,),
    )  # fmt: skip
    with pytest.warns(UserWarning, match="`regularizer`='analytic' with PPO's 16 minibatch"):
        train(env, TrainConfig(regularizer="analytic", **tiny), show_progress=False)
    with warnings.catch_warnings():  # one step per rollout, or the default: no warning
        warnings.simplefilter("error")
        single = dict(tiny, ppo_epochs=1, ppo_minibatches=1)
        for config in (TrainConfig(regularizer="analytic", **single), TrainConfig(**tiny)):
            train_module._warn_of_the_analytic_regularizer_under_ppo(config)


# ----------------------------------------------------------------------------- training

# PPO settings for the point mass (4 goals, per-step rewards −‖p − g‖/A ∈ [−1.5, 0]), from a
# sweep of lr ∈ {1e-3 … 2e-2} × γ ∈ {0.95, 0.99} × β ∈ {30 … 300} (4–16 seeds each): lr 1e-3
# to 3e-3 and γ = 0.99 learn too slowly for this budget; β ≥ 100 (a weaker entropy bonus,
# about H/β per step) left one task pinned under the wall at the greedy return in some seeds;
# β = 30–50 with lr 1e-2–2e-2 was reliable. β = 50 suits the a3c baseline too (at β = 30 its
# outer tasks stay ~10 below Distral's, whose entropy weight is (1 − α)/β, half of a3c's).
# 16 envs × 20 steps × 4 tasks = 1,280 env steps per update of 4 epochs × 4 minibatches, 240
# updates (76,800 env steps per task): presets.point_mass_ppo, with more evaluation episodes.
POINT_MASS_PPO = presets.point_mass_ppo().replace(eval_envs=32)


def _train_point_mass(env: PointMassGoals, variant: str, seed: int = 0) -> dict:
    """One PPO run; per-evaluation returns of the sampled and the greedy task policies."""
    config = POINT_MASS_PPO.replace(variant=variant, seed=seed)
    history = []
    train(env, config, progress_fn=lambda s, m: history.append((s, m)), show_progress=False)
    return dict(
        steps=np.array([s for s, _ in history]),
        sampled=np.stack([m["eval/episode_return"] for _, m in history]),  # [evals, N]
        greedy=np.stack([m["eval/episode_return_greedy"] for _, m in history]),
        loss=history[-1][1]["training/loss"],
    )


def _first_step_at(steps, curve, threshold) -> float:
    """First evaluation at which every task is at or above its threshold (inf if never)."""
    return float(steps_to_threshold(steps, curve[None], threshold)[0])


def test_ppo_distral_klent_2col_matches_the_scripted_controller_on_every_task():
    """Issue requirement: on the point mass, ``distral_klent_2col`` with PPO reaches a stated
    return on every task within a small budget; independent PPO (``a3c``) runs beside it.

    Threshold: the scripted go-around controller's mean return, per task (−32 on the outer
    goals, −55 on the central ones, against −123 / −142 for random actions). On the central
    goals it is 23 above the greedy steer-at-the-goal controller (−78), so reaching it means the
    policy has learned to go round the wall, not to press against it. It must be met on every
    task at the same evaluation, by the sampled and by the greedy policy, within 307k env steps.

    Why this is not a lucky seed: over the 8 seeds of ``experiments/brax_multitask.py
    --family point_mass`` (the same settings) every Distral run reached it, median 77k steps
    [quartiles 77k–102k], and 7 of 8 a3c runs, median 90k [77k–154k]. After reaching it a
    run can dip below it for an evaluation, so the final policies are held only to halfway
    from random to scripted (−78 outer, −98 central).

    Measured (seed 0, 2-core CPU, ~30 s for both runs with compilation, PPO as in
    docs/maths.md §6: advantages neither centred nor rescaled): distral_klent_2col reached the
    scripted return on every task after 102k steps (sampled and greedy), final sampled
    [−19.5, −34.0, −33.1, −19.3]; a3c did not on one task within the budget (final sampled
    [−19.7, −35.5, −79.4, −20.5]: past halfway, short of the scripted −55 on task 2).
    """
    env = PointMassGoals(num_tasks=4)
    episode_length = POINT_MASS_PPO.episode_length
    scripted = env.reference_returns("scripted", episode_length=episode_length, num_episodes=64)
    random = env.reference_returns("random", episode_length=episode_length, num_episodes=64)
    halfway = 0.5 * (scripted + random)
    budget = POINT_MASS_PPO.total_env_steps

    runs = {variant: _train_point_mass(env, variant) for variant in ("distral_klent_2col", "a3c")}
    for variant, run in runs.items():
        reached = {p: _first_step_at(run["steps"], run[p], scripted) for p in ("sampled", "greedy")}
        run["reached"] = reached
        print(
            f"{variant}: scripted-level return on every task after {reached} env steps; "
            f"final sampled {np.round(run['sampled'][-1], 1)}, greedy "
            f"{np.round(run['greedy'][-1], 1)} (scripted {np.round(scripted, 1)})"
        )
        assert np.all(np.isfinite(run["loss"])), variant
        # Every variant learns: the final policies are past halfway on every task.
        for policy in ("sampled", "greedy"):
            final = run[policy][-1]
            assert np.all(final >= halfway), (variant, policy, final, halfway)

    distral = runs["distral_klent_2col"]
    for policy in ("sampled", "greedy"):
        assert distral["reached"][policy] <= budget, (policy, distral[policy], scripted)
