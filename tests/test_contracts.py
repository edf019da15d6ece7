"""A user's mistakes at the library's boundary become named errors (a table per boundary)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from distral_jax import acting, distributions, losses
from distral_jax.configs import TrainConfig
from distral_jax.envs.bandit import MultiTaskBandit
from distral_jax.envs.checks import FamilyError, check_family
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.networks import make_networks
from distral_jax.train import train
from distral_jax.trainer import Trainer

REWARDS = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5]])


# ----------------------------------------------------------------------------- task families


class WrongObservationSize(MultiTaskBandit):
    observation_size = property(lambda self: 2)


class WrongImageShape(MultiTaskBandit):
    observation_size = property(lambda self: 4)
    observation_shape = property(lambda self: (2, 2, 1))


class VectorReward(MultiTaskBandit):
    def step(self, state, action, task):
        return state.replace(reward=jnp.zeros(3), done=jnp.ones(()))


class ListTasks(MultiTaskBandit):
    def tasks(self):
        return [np.asarray(r) for r in REWARDS.tolist()]


class MetricsAppear(MultiTaskBandit):
    def step(self, state, action, task):
        out = super().step(state, action, task)
        return out.replace(metrics={"extra": jnp.zeros(())})


class ObsChangesDtype(MultiTaskBandit):
    def step(self, state, action, task):
        out = super().step(state, action, task)
        return out.replace(obs=out.obs.astype(jnp.int32))


class ZeroActions(MultiTaskBandit):
    action_size = property(lambda self: 0)


FAMILY_ERRORS = [
    (
        WrongObservationSize,
        # The family set observation_size only: the message names that attribute.
        "WrongObservationSize.reset: `obs` has shape (1,) but observation_size says 2",
    ),
    (
        WrongImageShape,
        "WrongImageShape.reset: `obs` has shape (1,) but observation_shape says (2, 2, 1)",
    ),
    (VectorReward, "VectorReward.step: `reward` must be a scalar, got shape (3,)"),
    (ListTasks, "ListTasks.tasks: `tasks()[0]` must be an array with leading axis num_tasks=2"),
    (MetricsAppear, "MetricsAppear.step: `state` changes structure"),
    (ObsChangesDtype, "ObsChangesDtype.step: `state.obs` is int32[1] after step but float32[1]"),
    (ZeroActions, "ZeroActions.action_size: `action_size` must be a positive integer, got 0"),
]


@pytest.mark.parametrize("family, message", FAMILY_ERRORS)
def test_broken_families_are_named_where_the_trainer_is_built(family, message):
    with pytest.raises(FamilyError) as error:
        Trainer(family(REWARDS), TrainConfig(num_envs=2))
    assert message in str(error.value)


class BoolDone(MultiTaskBandit):
    def reset(self, rng, task):
        state = super().reset(rng, task)
        return state.replace(done=jnp.zeros((), bool))

    def step(self, state, action, task):
        return super().step(state, action, task).replace(done=jnp.ones((), bool))


def test_bool_done_is_accepted_and_trains():
    check_family(BoolDone(REWARDS))
    config = TrainConfig(
        variant="a3c", num_envs=4, unroll_length=1, episode_length=1, iterations_per_call=5,
        total_env_steps=40, eval_every=40, eval_envs=2, hidden_sizes=(4,),
    )  # fmt: skip
    train(BoolDone(REWARDS), config, show_progress=False)


FAMILY_ARGUMENTS = [
    (lambda: PointMassGoals(ctrl_cost=float("nan")), "ctrl_cost must be finite"),
    (lambda: PointMassGoals(arena_size=float("inf")), "arena_size must be finite"),
]


@pytest.mark.parametrize("build, message", FAMILY_ARGUMENTS)
def test_family_constructors_reject_bad_numbers(build, message):
    with pytest.raises(ValueError, match=message):
        build()


# ----------------------------------------------------------------------------- losses

T, A = 5, 3
LOGITS = jnp.zeros((T, A))
ZEROS = jnp.zeros(T)
ACTIONS = jnp.array([0, 1, 2, 0, 1])


def _ac_loss(**changes):
    args = dict(
        dist=distributions.categorical(),
        pi_t=LOGITS,
        pi0_t=LOGITS,
        a_t=ACTIONS,
        r_t=ZEROS,
        discount_t=ZEROS + 0.9,
        done_t=ZEROS,
        v_tm1=ZEROS,
        v_t=ZEROS,
        alpha=0.5,
        beta=10.0,
    )
    args.update(changes)
    return losses.distral_actor_critic_loss(**args)


LOSS_ERRORS = [
    (dict(a_t=ACTIONS.astype(jnp.float32)), "`a_t` must hold integer action indices"),
    (dict(a_t=jax.nn.one_hot(ACTIONS, A)), "one-hot actions? pass jnp.argmax"),
    (dict(alpha=50.0), "`alpha` must be in [0, 1], got 50.0"),
    (dict(alpha=0.01, beta=0.01, a_t=ACTIONS), None),  # the costs as (α, β): legal values
    (dict(beta=0.0), "`beta` must be > 0, got 0.0"),
    (dict(r_t=ZEROS[:3]), "r_t"),
    (dict(a_t=ACTIONS[:3]), "`a_t` has 3 steps but `r_t` has 5"),
    (dict(pi0_t=LOGITS[:, :2]), "`pi0_t` has shapes"),
]


@pytest.mark.parametrize("changes, message", LOSS_ERRORS)
def test_loss_inputs_are_checked_with_named_errors(changes, message):
    if message is None:
        loss, _ = _ac_loss(**changes)
        assert np.isfinite(loss)
        return
    with pytest.raises(ValueError) as error:
        _ac_loss(**changes)
    assert message in str(error.value)


def test_gaussian_parameters_given_as_lists():
    loc, scale = [[0.0, 0.0]] * T, [[1.0, 1.0]] * T
    loss, _ = _ac_loss(
        dist=distributions.gaussian(), pi_t=(loc, scale), pi0_t=(loc, scale), a_t=[[0.1, 0.2]] * T
    )
    assert np.isfinite(loss)
    with pytest.raises(ValueError, match=r"`alpha` must be in \[0, 1\], got \[0.5, 2.0\]"):
        losses.check_alpha_beta(np.array([0.5, 2.0]), 1.0)


def test_losses_accept_lists_and_traced_hyperparameters():
    loss, _ = _ac_loss(r_t=[0.0] * T, a_t=[0, 1, 2, 0, 1])
    assert np.isfinite(loss)
    traced = jax.jit(lambda a, b: _ac_loss(alpha=a, beta=b)[0])(0.5, 10.0)
    assert np.isfinite(traced)
    with pytest.raises(ValueError, match="`alpha` must be in"):
        losses.regularized_rewards(ZEROS, ZEROS, ZEROS, alpha=-1.0, beta=1.0)


# ----------------------------------------------------------------------------- policies


@pytest.fixture(scope="module")
def bandit_policy():
    env = MultiTaskBandit(REWARDS)
    config = TrainConfig(variant="a3c", hidden_sizes=(4,))
    networks = make_networks(env, config)
    trainer_state = Trainer(env, config).init(jax.random.PRNGKey(0))
    return networks, trainer_state.policy_params


def test_make_policy_checks_the_task_axis(bandit_policy):
    networks, params = bandit_policy
    key = jax.random.PRNGKey(1)
    policy = acting.make_policy(networks, params)
    assert policy(jnp.ones((2, 7, 1)), key).shape == (2, 7)
    with pytest.raises(ValueError, match=r"task axis first.*task=i"):
        policy(jnp.ones((7, 1)), key)
    with pytest.raises(ValueError, match=r"observation shape \(1,\)"):
        policy(jnp.ones((2, 7, 3)), key)
    one_task = acting.make_policy(networks, params, task=1, deterministic=True)
    both = acting.make_policy(networks, params, deterministic=True)(jnp.ones((2, 7, 1)), key)
    np.testing.assert_array_equal(one_task(jnp.ones((7, 1)), key), both[1])
    action, extras = acting.make_policy(networks, params, with_extras=True)(
        jnp.ones((2, 7, 1)), key
    )
    assert action.shape == (2, 7) and extras == {}
    with pytest.raises(ValueError, match=r"`task` must be in \[0, 2\)"):
        acting.make_policy(networks, params, task=2)
