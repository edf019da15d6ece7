"""SAC on the Distral objective: its losses against hand computations, the replay buffers, and
the learner at the exact optima of the one-state problems (discrete and continuous)."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from distral_jax import distributions as dists
from distral_jax import losses, replay
from distral_jax.configs import TrainConfig
from distral_jax.envs.bandit import MultiTaskBandit, distral_fixed_point
from distral_jax.envs.quadratic_bandit import QuadraticBandit, gaussian_optimum
from distral_jax.train import train
from distral_jax.trainer import Trainer, runs_hparams

ALPHA, BETA, GAMMA = 0.5, 3.0, 0.9


def _np_log_softmax(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def _np_gaussian_log_prob(loc, scale, x) -> np.ndarray:
    loc, scale, x = (np.asarray(v, np.float64) for v in (loc, scale, x))
    return np.sum(-0.5 * ((x - loc) / scale) ** 2 - np.log(scale) - 0.5 * np.log(2 * np.pi), -1)


def _batch(seed: int, A: int = 3, D: int = 2):
    """Three transitions: an ordinary step, a termination (discount 0) and a truncation (γ: it
    bootstraps from the state it reached), with everything the targets read at s'."""
    rng = np.random.default_rng(seed)
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)
    return dict(
        r=f32(3),
        discount=np.array([GAMMA, 0.0, GAMMA], np.float32),
        q_discrete=f32(3, 2, A),
        logits=f32(3, A),
        logits_0=f32(3, A),
        q_continuous=f32(3, 2),
        loc=f32(3, D),
        scale=np.exp(0.3 * f32(3, D)),
        loc_0=f32(3, D),
        scale_0=np.exp(0.3 * f32(3, D)),
        a=f32(3, D),
    )


# ----------------------------------------------------------------------------- soft Bellman target


class SoftBellmanTargetTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_discrete_target_is_the_exact_expectation(self):
        b = _batch(0)
        fn = self.variant(functools.partial(losses.soft_bellman_target, dists.categorical()))
        got = fn(
            b["r"], b["discount"], b["q_discrete"], b["logits"], b["logits_0"], None, ALPHA, BETA
        )
        log_pi, log_pi0 = _np_log_softmax(b["logits"]), _np_log_softmax(b["logits_0"])
        min_q = np.minimum(b["q_discrete"][:, 0], b["q_discrete"][:, 1]).astype(np.float64)
        want = []
        for t in range(3):  # by hand, transition by transition
            value = sum(
                np.exp(log_pi[t, a])
                * (min_q[t, a] + ALPHA / BETA * log_pi0[t, a] - log_pi[t, a] / BETA)
                for a in range(3)
            )
            want.append(b["r"][t] + b["discount"][t] * value)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        assert got[1] == b["r"][1]  # the termination does not bootstrap; the truncation does
        assert got[2] != b["r"][2]

    @chex.variants(with_jit=True, without_jit=True)
    def test_continuous_target_at_the_sampled_action(self):
        for squash in (False, True):
            b = _batch(1)
            dist = dists.tanh_gaussian() if squash else dists.gaussian()
            fn = self.variant(functools.partial(losses.soft_bellman_target, dist))
            pi, pi0 = (b["loc"], b["scale"]), (b["loc_0"], b["scale_0"])
            got = fn(b["r"], b["discount"], b["q_continuous"], pi, pi0, b["a"], ALPHA, BETA)
            log_pi = _np_gaussian_log_prob(b["loc"], b["scale"], b["a"])
            log_pi0 = _np_gaussian_log_prob(b["loc_0"], b["scale_0"], b["a"])
            if squash:  # both densities are of tanh(a): the same Jacobian for both
                jac = np.sum(np.log(1 - np.tanh(b["a"].astype(np.float64)) ** 2), -1)
                log_pi, log_pi0 = log_pi - jac, log_pi0 - jac
            min_q = b["q_continuous"].min(axis=1)
            value = min_q + ALPHA / BETA * log_pi0 - log_pi / BETA
            np.testing.assert_allclose(got, b["r"] + b["discount"] * value, rtol=1e-5, atol=1e-5)

    def test_twin_minimum(self):
        """Each action's value is the smaller critic's: raising the larger changes nothing,
        lowering it below the other does."""
        b = _batch(2)
        fn = functools.partial(losses.soft_bellman_target, dists.categorical())
        args = (b["logits"], b["logits_0"], None, ALPHA, BETA)
        q = b["q_discrete"]
        base = fn(b["r"], b["discount"], q, *args)
        swapped = fn(b["r"], b["discount"], q[:, ::-1], *args)
        higher = fn(b["r"], b["discount"], q + 5.0 * (q == q.max(1, keepdims=True)), *args)
        one = fn(b["r"], b["discount"], np.repeat(q[:, :1], 2, axis=1), *args)
        np.testing.assert_allclose(swapped, base)
        np.testing.assert_allclose(higher, base, rtol=1e-6)
        assert not np.allclose(one, base)  # without the min (critic 1 alone) the target differs

    def test_errors_name_the_argument(self):
        b = _batch(3)
        fn = functools.partial(losses.soft_bellman_target, dists.categorical())
        with pytest.raises(ValueError, match="q_next_t"):
            fn(b["r"], b["discount"], b["q_discrete"][:2], b["logits"], b["logits_0"], None, 0.5, 3)
        with pytest.raises(ValueError, match="a_next_t"):
            fn(b["r"], b["discount"], b["q_discrete"], b["logits"], b["logits_0"], b["a"], 0.5, 3)
        with pytest.raises(ValueError, match="beta"):
            fn(b["r"], b["discount"], b["q_discrete"], b["logits"], b["logits_0"], None, 0.5, 0.0)


def test_twin_critic_loss_by_hand():
    q = np.array([[1.0, 2.0], [0.0, -1.0], [3.0, 3.0]], np.float32)
    y = np.array([1.5, 0.0, 2.0], np.float32)
    want = np.mean([0.5 * (0.25 + 0.25), 0.5 * (0.0 + 1.0), 0.5 * (1.0 + 1.0)])
    np.testing.assert_allclose(losses.twin_critic_loss(q, y), want, rtol=1e-6)
    grad_y = jax.grad(lambda y: losses.twin_critic_loss(q, y))(y)
    np.testing.assert_array_equal(grad_y, 0.0)  # the target is a constant


# ----------------------------------------------------------------------------- policy loss


def _central_differences(f, x, eps=1e-6):
    basis = jnp.eye(x.shape[0], dtype=x.dtype) * eps
    return (jax.vmap(f)(x + basis) - jax.vmap(f)(x - basis)) / (2.0 * eps)


@pytest.mark.parametrize("squash", [False, True])
def test_continuous_policy_loss_gradient_matches_finite_differences(squash):
    """The reparameterised loss as a function of π_i's (loc, scale), with the noise fixed and a
    smooth critic of the action: autodiff against central differences in float64."""
    dist = dists.tanh_gaussian() if squash else dists.gaussian()
    with jax.enable_x64(True):
        b = {k: np.asarray(v, np.float64) for k, v in _batch(4).items()}
        noise = np.random.default_rng(5).normal(size=(3, 2))
        goal = np.array([0.3, -0.2])

        def loss(flat):
            loc, log_scale = flat[:6].reshape(3, 2), flat[6:].reshape(3, 2)
            pi = (loc, jnp.exp(log_scale))
            a = loc + jnp.exp(log_scale) * noise  # the reparameterised sample
            q = -jnp.sum((dist.postprocess(a) - goal) ** 2, -1)
            q = jnp.stack([q, q + 0.1], axis=1)  # twin critics; the min is the first
            return losses.sac_policy_loss(dist, pi, (b["loc_0"], b["scale_0"]), q, a, ALPHA, BETA)

        x = jnp.concatenate([b["loc"].ravel(), np.log(b["scale"]).ravel()])
        np.testing.assert_allclose(
            jax.grad(loss)(x), _central_differences(loss, x), rtol=1e-6, atol=1e-8
        )
        # π_0's parameters get nothing from this loss (the distillation is theirs).
        pi0_grad = jax.grad(
            lambda loc_0: losses.sac_policy_loss(
                dist,
                (b["loc"], b["scale"]),
                (loc_0, b["scale_0"]),
                b["q_continuous"],
                b["a"],
                ALPHA,
                BETA,
            )
        )(b["loc_0"])
        np.testing.assert_array_equal(pi0_grad, 0.0)


def test_discrete_policy_loss_gradient_and_minimiser():
    """The exact sum over actions: its gradient matches central differences, and it vanishes
    at π_i ∝ π_0^α exp(β min_k Q_k), the soft-greedy policy."""
    dist = dists.categorical()
    with jax.enable_x64(True):
        b = {k: np.asarray(v, np.float64) for k, v in _batch(6).items()}
        q, logits_0 = b["q_discrete"], b["logits_0"]
        loss = lambda flat: losses.sac_policy_loss(
            dist, flat.reshape(3, 3), logits_0, q, None, ALPHA, BETA
        )
        x = jnp.asarray(b["logits"].ravel())
        np.testing.assert_allclose(
            jax.grad(loss)(x), _central_differences(loss, x), rtol=1e-6, atol=1e-9
        )
        soft_greedy = ALPHA * _np_log_softmax(logits_0) + BETA * q.min(axis=1)
        np.testing.assert_allclose(
            jax.grad(loss)(jnp.asarray(soft_greedy.ravel())), 0.0, atol=1e-12
        )


def test_temperature_loss_moves_the_temperature_towards_the_target_entropy():
    grad = jax.grad(losses.temperature_loss)
    below = grad(jnp.log(0.5), jnp.array([0.1, 0.3]), 1.0)  # entropy below the target: raise it
    above = grad(jnp.log(0.5), jnp.array([2.0, 1.0]), 1.0)
    np.testing.assert_allclose(below, 0.5 * (0.2 - 1.0), rtol=1e-6)
    assert below < 0 < above  # gradient descent on log(1/β)


# ----------------------------------------------------------------------------- replay


def _reward_items(values) -> replay.Item:
    """Items ``[N, M]`` whose reward is ``values [N, M]`` (the rest zeros)."""
    values = np.asarray(values, np.float32)
    z = np.zeros(values.shape + (1,), np.float32)
    return replay.Item(obs=z, action=z, reward=values, discount=values * 0, next_obs=z)


def test_replay_wraps_around_and_samples_only_filled_slots_uniformly():
    buffer = replay.make_buffer(capacity=7, batch_size=7, items_per_add=3)
    state = replay.init(buffer, replay.empty_item((1,), 1, False), num_tasks=2)
    add = jax.jit(lambda s, x: replay.add(buffer, s, x))

    @jax.jit
    def sample(s, key):  # [N, 600 × 7] draws
        draws = jax.vmap(lambda k: replay.sample(buffer, s, k).reward)(jax.random.split(key, 600))
        return jnp.moveaxis(draws, 0, 1).reshape(2, -1)

    state = add(state, _reward_items([[1, 2, 3], [-1, -2, -3]]))
    np.testing.assert_array_equal(replay.filled(state), [3, 3])
    got = np.asarray(sample(state, jax.random.PRNGKey(0)))
    # Only the three filled slots, each about a third of the time, and each task its own.
    for task, values in ((0, [1, 2, 3]), (1, [-1, -2, -3])):
        assert set(got[task].tolist()) == set(values)
        freq = np.array([np.mean(got[task] == v) for v in values])
        np.testing.assert_allclose(freq, 1 / 3, atol=0.03)
    # Independent keys per task: the tasks' draws are not the same slots.
    assert np.mean(np.abs(got[0]) == np.abs(got[1])) < 0.5
    for start in (4, 7):  # 9 items into 7 slots: the two oldest are overwritten
        state = add(state, _reward_items([[start, start + 1, start + 2]] * 2))
    np.testing.assert_array_equal(replay.filled(state), [7, 7])
    np.testing.assert_array_equal(state.experience.reward[0, 0], [8, 9, 3, 4, 5, 6, 7])
    got = np.asarray(sample(state, jax.random.PRNGKey(1)))[0]
    freq = np.array([np.mean(got == v) for v in range(3, 10)])
    np.testing.assert_allclose(freq, 1 / 7, atol=0.025)


def test_items_flatten_a_rollout_environment_major_with_the_squashed_actions():
    rng = np.random.default_rng(0)
    shape = (2, 3, 4)  # N, E, T
    traj = jax.tree_util.tree_map(
        jnp.asarray,
        dict(
            obs=rng.normal(size=shape + (5,)),
            action=rng.normal(size=shape + (2,)),
            reward=rng.normal(size=shape),
            discount=rng.normal(size=shape),
            final_obs=rng.normal(size=shape + (5,)),
        ),
    )
    traj = type("Traj", (), traj)
    items = replay.items(traj, jnp.tanh)
    assert items.obs.shape == (2, 12, 5) and items.action.shape == (2, 12, 2)
    np.testing.assert_allclose(items.obs[1, 4 + 2], traj.obs[1, 1, 2])  # env 1, step 2
    np.testing.assert_allclose(items.next_obs[1, 4 + 2], traj.final_obs[1, 1, 2])
    np.testing.assert_allclose(items.action[0, 5], np.tanh(traj.action[0, 1, 1]), rtol=1e-6)


# ----------------------------------------------------------------------------- the learner


def _exact_optima():
    """``experiments/exact_optima.py`` (its one-state configs and policies)."""
    path = Path(__file__).resolve().parents[1] / "experiments" / "exact_optima.py"
    spec = importlib.util.spec_from_file_location("exact_optima", path)
    module = sys.modules.setdefault("exact_optima", importlib.util.module_from_spec(spec))
    if not hasattr(module, "policies_at_the_one_state"):
        spec.loader.exec_module(module)
    return module


SAC_ONE_STATE = dict(learner="sac", iterations_per_call=200, **_exact_optima().SAC_ONE_STATE)
UNEQUAL_BANDIT = np.array([[1.0, 0.0, 0.5], [0.0, 0.1, 0.05]])


# Variant -> (seeds, env steps). The 1-column case is the precise one (3 seeds, β ± 6 % fails);
# the 2-column logits run one seed. ``experiments/exact_optima.py --learner sac --variant V``
# runs every variant (docs/maths.md §11; MT-SAC, a3c_multitask, measured 9e-5 there).
# Not ``long_run``: SAC's small programs ran these tests faster at the suite's fast compilation
# (19 s for the three) than at XLA's full optimisation (32 s), compiling being most of them.
SAC_BANDIT_CASES = {
    "distral_klent_1col": (3, 51_200),
    "distral_klent_2col": (1, 25_600),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(SAC_BANDIT_CASES))
def test_bandit_reaches_the_distral_fixed_point_with_sac(variant):
    """Discrete SAC (exact expectations over the arms), seeds averaged, at the fixed point of
    π_i ∝ π_0^α exp(β r_i), π_0 = mean_i π_i (α = 0: π_i ∝ exp(β r_i), π_0 unused): within
    0.004 (the issue's bar is 0.012), which a 6 % error of β fails by far. Measured (400 and 200
    iterations): 1-column 2e-6, 2-column 1.2e-4."""
    env = MultiTaskBandit(UNEQUAL_BANDIT)
    eo = _exact_optima()
    seeds, steps = SAC_BANDIT_CASES[variant]
    config = eo.one_state_config(
        variant=variant, total_env_steps=steps, learning_rate=1e-2, **SAC_ONE_STATE
    )
    _, policy_params, metrics = train(env, config, num_runs=seeds, show_progress=False)
    logits, logits_0 = eo.policies_at_the_one_state(env, config, policy_params)
    pi = np.asarray(jax.nn.softmax(logits)).mean(axis=0)
    pi0 = np.asarray(jax.nn.softmax(logits_0)).mean(axis=0)
    alpha = config.resolved.alpha

    def error(beta):
        want_pi, want_pi0 = distral_fixed_point(UNEQUAL_BANDIT, alpha=alpha, beta=beta)
        if not config.resolved.distill:  # no π_0 to compare
            return np.abs(pi - want_pi).max()
        return max(np.abs(pi - want_pi).max(), np.abs(pi0 - want_pi0).max())

    print(f"sac {variant}: {error(3.0):.6f}; β ± 6 %: {error(2.82):.4f} {error(3.18):.4f}")
    assert error(3.0) < 0.004
    assert error(3.0 * 0.94) > 0.008 and error(3.0 * 1.06) > 0.008
    np.testing.assert_allclose(metrics["training/temperature"], 1 / 3.0, rtol=1e-6)
    # The last chunk's mean fill: 64 transitions per task per update into 4,096 slots.
    iterations = config.iterations_per_call
    updates = steps // (env.num_tasks * config.num_envs * config.unroll_length)
    last = np.arange(updates - iterations, updates) + 1
    want_fill = np.mean(np.minimum(64 * last, 4096) / 4096)
    np.testing.assert_allclose(metrics["training/replay_fill"], want_fill, rtol=1e-6)


@pytest.mark.slow
def test_continuous_bandit_reaches_the_gaussian_closed_form_with_sac():
    """Plain Gaussian policies (``action_squash=False``) on r_i(a) = −(a − g_i)², 4 seeds
    averaged, against ``gaussian_optimum``: means and standard deviations of π_i and π_0 within
    0.03. The ReLU critics' piecewise-linear fit of the parabola is what is left (measured
    +0.011, +0.003 in the stds, −0.008, −0.008 in the means, π_0 −0.011 ± −0.001). Without
    the (α/β) log π_0 term the stds would be 0.408 (0.058 off) and the means the targets
    themselves (0.12 off)."""
    targets = [[-0.5], [0.4]]
    env = QuadraticBandit(targets)
    eo = _exact_optima()
    config = eo.one_state_config(
        total_env_steps=128_000,
        learning_rate=1e-3,
        hidden_sizes=(64,),
        action_squash=False,
        **SAC_ONE_STATE,
    )
    _, policy_params, _ = train(env, config, num_runs=4, show_progress=False)
    (loc, scale), (loc_0, scale_0) = eo.policies_at_the_one_state(env, config, policy_params)
    mean = lambda x: np.asarray(x).mean(axis=0)
    want = gaussian_optimum(targets, curvature=1.0, alpha=0.5, beta=3.0)
    print(
        f"sac: std {mean(scale).ravel()} (want {want['scale'].ravel()}), mean {mean(loc).ravel()}"
        f" (want {want['loc'].ravel()}); π_0 {mean(loc_0)} ± {mean(scale_0)} "
        f"(want {want['loc_0']} ± {want['scale_0']})"
    )
    np.testing.assert_allclose(mean(scale), want["scale"], atol=0.03)
    np.testing.assert_allclose(mean(loc), want["loc"], atol=0.03)
    np.testing.assert_allclose(mean(scale_0), want["scale_0"], atol=0.03)
    np.testing.assert_allclose(mean(loc_0), want["loc_0"], atol=0.03)


def _bandit_trainer(**overrides) -> Trainer:
    config = _exact_optima().one_state_config(
        **{**SAC_ONE_STATE, "num_envs": 8, "replay_capacity": 64, "sac_batch_size": 16, **overrides}
    )
    return Trainer(MultiTaskBandit(UNEQUAL_BANDIT), config)


def _leaves_equal(a, b) -> bool:
    return all(
        np.array_equal(np.asarray(x), np.asarray(y))
        for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b), strict=True)
    )


WARMUP_TEST = dict(sac_warmup_steps=16, sac_tau=0.25, sac_auto_temperature=True)


def test_warmup_acts_at_random_and_learns_nothing_then_targets_follow_by_polyak():
    """16 warm-up steps per task, 8 envs × 1 step per iteration: both rollouts act uniformly at
    random; after the first nothing but the buffers has moved; the second update, with 16 steps
    stored, is the first to learn (one gradient step), and it moves the target critics by τ of
    the way to the new critics, exactly."""
    trainer = _bandit_trainer(**WARMUP_TEST)
    start = jax.jit(trainer.init)(jax.random.PRNGKey(0))
    iteration = jax.jit(trainer.iteration)
    assert bool(trainer.learner.acts_randomly(start.learner_state))
    state, _ = iteration(start)
    assert _leaves_equal((state.params, state.opt_state), (start.params, start.opt_state))
    assert _leaves_equal(state.learner_state.target, start.learner_state.target)
    np.testing.assert_array_equal(replay.filled(state.learner_state.replay), [8, 8])
    assert bool(trainer.learner.acts_randomly(state.learner_state))
    before = state
    state, metrics = iteration(state)
    actions = np.asarray(state.learner_state.replay.experience.action)[:, 0, :16]
    assert set(np.unique(actions).tolist()) == {0, 1, 2}  # uniform arms, not π_i's
    assert not bool(trainer.learner.acts_randomly(state.learner_state))
    critic, old = state.params.value, before.learner_state.target
    want = jax.tree_util.tree_map(lambda t, c: t + 0.25 * (c - t), old, critic)
    assert _leaves_equal(state.learner_state.target, want)
    assert not _leaves_equal(state.params.value, before.params.value)
    assert not _leaves_equal(state.params.task, before.params.task)
    scale = np.asarray(state.learner_state.log_temperature_scale)
    assert np.all(scale != 0)  # the temperatures learn (sac_auto_temperature)
    assert np.all(np.isfinite(np.asarray(metrics["critic_loss"])))


def test_pi0_is_distilled_with_the_weight_the_objective_gives_each_task():
    """θ_0's gradient (1 column, so the policy term gives θ_0 nothing: π_0 is held fixed in it)
    is J's: Σ_i w_i · distill_coef · (α/β_i) · ∇ CE(sg π_i, π_0) on the replayed states, with
    each task's own β_i (3 and 1.5 here) and curriculum weight w_i (1 and ¼)."""
    trainer = _bandit_trainer(**WARMUP_TEST)  # the warm-up test's programs, from the cache
    learner, key = trainer.learner, jax.random.PRNGKey(0)
    state, _ = jax.jit(trainer.iteration)(jax.jit(trainer.init)(key))  # 8 transitions a task
    temperature_scales = jnp.array([1.0, 2.0])  # β_i = β / scale_i
    sac_state = state.learner_state.replace(log_temperature_scale=jnp.log(temperature_scales))
    hp, obs_stats, params = trainer.config.hyperparams(), state.obs_stats, state.params
    batch = replay.sample(learner.buffer, sac_state.replay, key)
    weights = jnp.array([1.0, 0.25])
    actor = params.replace(value=())  # the policy loss's arguments: no critics

    def loss(actor):
        args = (params, sac_state, hp, obs_stats, batch, key, weights)
        return learner.policy_loss(actor, *args)[0]

    def objective(prior):
        pi, pi0, _ = learner.networks.policies(
            params.replace(prior=prior), obs_stats, batch.obs, hp.column_alpha
        )
        cross_entropy = -jnp.sum(
            jax.nn.softmax(jax.lax.stop_gradient(pi)) * jax.nn.log_softmax(pi0), axis=-1
        ).mean(axis=-1)
        beta = hp.beta / temperature_scales
        return jnp.sum(weights * hp.distill_coef * (hp.alpha / beta) * cross_entropy)

    got = jax.jit(jax.grad(loss))(actor).prior
    want = jax.jit(jax.grad(objective))(params.prior)
    assert optax.tree_utils.tree_norm(want) > 1e-3
    chex.assert_trees_all_close(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("variant", ["distral_klent_1col", "a3c_multitask"])
def test_a_task_out_of_the_objective_moves_nothing(variant):
    """Task 1 never enters (a curriculum): its policy, critics, target critics, temperature and
    Adam counts stay at their initial values, and what it experiences changes nothing that is
    shared: with other rewards for task 1, θ_0 (Distral) or the one task-conditioned network
    (MT-SAC) ends bit for bit the same."""
    trainer = _bandit_trainer(
        variant=variant, task_start_steps=(0, 10**9), sac_auto_temperature=True
    )
    start = jax.jit(trainer.init)(jax.random.PRNGKey(1))
    run = jax.jit(lambda s: jax.lax.fori_loop(0, 5, lambda _, x: trainer.iteration(x)[0], s))
    end = run(start)
    other_rewards = start.tasks.replace(
        rewards=start.tasks.rewards.at[1].set(jnp.array([5.0, -3, 2]))
    )
    end_other = run(start.replace(tasks=other_rewards))
    task = lambda tree, i: jax.tree_util.tree_map(lambda x: x[i], tree)
    per_task = [
        lambda s: s.learner_state.log_temperature_scale,
        lambda s: s.opt_state.temperature.count.task,
    ]
    if variant != "a3c_multitask":  # per-task networks
        per_task += [
            lambda s: s.params.task,
            lambda s: s.params.value,
            lambda s: s.learner_state.target,
            lambda s: s.opt_state.policy[1].count.task,
            lambda s: s.opt_state.critic[1].count.value,
        ]
    for tree in per_task:
        assert _leaves_equal(task(tree(end), 1), task(tree(start), 1))
        assert not _leaves_equal(task(tree(end), 0), task(tree(start), 0))
    learned = lambda s: (s.params, s.learner_state.target, s.learner_state.log_temperature_scale)
    assert _leaves_equal(learned(end), learned(end_other))
    assert not _leaves_equal(learned(end), learned(start))


def test_sac_refuses_what_it_cannot_honour():
    with pytest.raises(ValueError, match="`core`"):
        TrainConfig(learner="sac", core="lstm")
    with pytest.raises(ValueError, match="`replay_capacity`"):
        TrainConfig(learner="sac", num_envs=16, unroll_length=10, replay_capacity=100)
    with pytest.raises(ValueError, match="`sac_tau`"):
        TrainConfig(learner="sac", sac_tau=0.0)
    trainer = _bandit_trainer(replay_capacity=10**12)
    with pytest.raises(ValueError, match="`replay_capacity`=1000000000000 does not fit"):
        trainer.compile(
            jax.random.split(jax.random.PRNGKey(0), 2), runs_hparams(trainer.config, None, 2)
        )
