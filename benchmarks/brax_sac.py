"""Brax's SAC on ``halfcheetah``, and this trainer's SAC at the same settings.

``compare.py`` imports it for its ``sac`` rows. ``SACSettings`` holds one set of numbers;
``brax_kwargs`` turns them into the arguments of ``brax.training.agents.sac.train.train``, and
``trainer_config`` into a ``TrainConfig`` of this trainer. The two collect experience the same
way: Brax's training step is one env step in each of ``num_envs`` environments followed by
``grad_updates_per_step`` gradient steps on ``batch_size`` replayed transitions, which is this
trainer's iteration with ``unroll_length=1``, ``sac_grad_updates`` and ``sac_batch_size``.

Also here, because both Brax rows of ``compare.py`` need them: the ``device_put_replicated``
shim for Brax on JAX 0.10 and the sum of JAX's compile events.
"""

from __future__ import annotations

import dataclasses
import functools
import time

import jax
import jax.numpy as jnp

from distral_jax.configs import TrainConfig


@dataclasses.dataclass(frozen=True)
class SACSettings:
    """One SAC setting, for Brax and for this trainer alike (one task, ``halfcheetah``).

    Attributes:
      envs: environments (Brax's ``num_envs``; this trainer's ``num_envs`` per task).
      batch_size: replayed transitions per gradient step.
      grad_updates: gradient steps per env step of every environment.
      hidden_sizes: the policy's and the critics' hidden layers.
      learning_rate: Adam's step size, of the policy and of the critics.
      replay_size: transitions the replay holds (per task here; there is one task).
      warmup: transitions collected before the first gradient step (Brax's
        ``min_replay_size``, over all environments; here ``sac_warmup_steps``, env steps of the
        one task: the same count).
      steps_per_call: training steps (one env step per environment each) per Brax epoch and per
        timed call of this trainer: a call should last a few seconds.
      epochs: Brax's epochs; the first includes compilation and is not timed.
      discount: γ.
      tau: the target critics' Polyak factor per gradient step.
      normalize_observations: running mean and variance of the observations.
      episode_length: time limit of an episode.
      eval_envs: Brax's evaluation episodes after each epoch (outside its timed epochs).
    """

    envs: int
    batch_size: int
    grad_updates: int
    hidden_sizes: tuple[int, ...]
    learning_rate: float
    replay_size: int
    warmup: int
    steps_per_call: int
    epochs: int = 4
    discount: float = 0.97
    tau: float = 0.005
    normalize_observations: bool = True
    episode_length: int = 1000
    eval_envs: int = 16

    def __post_init__(self):
        # The first (untimed) call must finish the warm-up, or a timed window of this trainer
        # would hold warm-up updates (uniform actions, their learning discarded), which Brax's
        # timed epochs never hold (its prefill precedes them).
        if self.steps_per_call * self.envs < self.warmup_env_steps:
            raise ValueError(
                f"steps_per_call × envs = {self.steps_per_call * self.envs} is below the "
                f"warm-up's {self.warmup_env_steps} env steps"
            )

    @property
    def warmup_env_steps(self) -> int:
        """The warm-up rounded up to whole env steps of every environment, as Brax's prefill."""
        return -(-self.warmup // self.envs) * self.envs


# --------------------------------------------------------------------------- Brax and JAX 0.10
def shim_device_put_replicated() -> None:
    """Brax's PPO and SAC call ``jax.device_put_replicated``, which JAX 0.10 removed: an
    equivalent for the one device they are given here (``max_devices_per_host=1``)."""
    if hasattr(jax, "device_put_replicated"):
        return

    def device_put_replicated(x, devices):
        stack = lambda a: jnp.stack([jnp.asarray(a)] * len(devices))
        return jax.device_put(jax.tree_util.tree_map(stack, x), devices[0])

    jax.device_put_replicated = device_put_replicated


class CompileEvents:
    """Sums JAX's compile-event durations (tracing, lowering, XLA) while active."""

    NAMES = (
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    )

    def __init__(self):
        self.total = 0.0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, name: str, duration: float, **_) -> None:
        if self.active and name in self.NAMES:
            self.total += duration


_EVENTS: CompileEvents | None = None


def compile_events() -> CompileEvents:
    """The process's one listener (JAX cannot unregister one, so it is made once)."""
    global _EVENTS
    _EVENTS = _EVENTS or CompileEvents()
    return _EVENTS


# ------------------------------------------------------------------------------------ settings
def brax_kwargs(settings: SACSettings) -> dict:
    """``brax.training.agents.sac.train.train``'s arguments for ``settings`` (all but the
    environment and the callbacks)."""
    from brax.training.agents.sac import networks as sac_networks  # noqa: PLC0415

    steps_per_epoch = settings.envs * settings.steps_per_call
    return dict(
        # Brax splits what follows its prefill into num_evals - 1 equal epochs, each followed by
        # an evaluation; this many timesteps makes each exactly ``steps_per_call`` training steps.
        num_timesteps=settings.warmup_env_steps + settings.epochs * steps_per_epoch,
        num_evals=settings.epochs + 1,
        episode_length=settings.episode_length,
        num_envs=settings.envs,
        num_eval_envs=settings.eval_envs,
        max_devices_per_host=1,
        learning_rate=settings.learning_rate,
        discounting=settings.discount,
        batch_size=settings.batch_size,
        grad_updates_per_step=settings.grad_updates,
        normalize_observations=settings.normalize_observations,
        tau=settings.tau,
        min_replay_size=settings.warmup,
        max_replay_size=settings.replay_size,
        network_factory=functools.partial(
            sac_networks.make_sac_networks, hidden_layer_sizes=tuple(settings.hidden_sizes)
        ),
        seed=0,
    )


def trainer_config(settings: SACSettings, action_size: int, **overrides) -> TrainConfig:
    """This trainer's SAC at ``settings``: one env step per environment per iteration, then
    ``grad_updates`` gradient steps, as a Brax training step; ``iterations_per_call`` is
    ``steps_per_call``.

    Temperature as Brax's: learnt, starting at 1 (β = 1), towards an entropy of −D/2. Still
    different: Brax's policy is a ReLU MLP (here tanh), its temperature has an Adam of its own
    at 3e-4 (here the learning rate's), it clips no gradient (here ``max_grad_norm``), and its
    warm-up acts with the initial policy (here uniformly random actions).
    """
    base = dict(
        variant="a3c",
        learner="sac",
        num_envs=settings.envs,
        unroll_length=1,
        iterations_per_call=settings.steps_per_call,
        hidden_sizes=tuple(settings.hidden_sizes),
        learning_rate=settings.learning_rate,
        gamma=settings.discount,
        normalize_observations=settings.normalize_observations,
        episode_length=settings.episode_length,
        replay_capacity=settings.replay_size,
        sac_batch_size=settings.batch_size,
        sac_grad_updates=settings.grad_updates,
        sac_warmup_steps=settings.warmup_env_steps,
        sac_tau=settings.tau,
        sac_auto_temperature=True,
        sac_target_entropy=-0.5 * action_size,
        beta=1.0,
        eval_envs=4,
    )
    return TrainConfig(**{**base, **overrides})


# ----------------------------------------------------------------------------------- measuring
def measure_brax_sac(settings: SACSettings) -> dict:
    """``brax.training.agents.sac.train.train`` on Brax's ``halfcheetah`` (backend ``spring``).

    Steps/s is Brax's own ``training/sps``, the best of its epochs after the first (which
    includes compilation; its prefill and evaluations are outside every epoch). Compile is the
    sum of JAX's compile events until the first epoch's metrics arrive, i.e. before its first
    epoch of updates had finished (its evaluator, compiled for the evaluation before training,
    is in it, as in Brax PPO's row).
    """
    from brax import envs as brax_envs  # noqa: PLC0415
    from brax.training.agents.sac import train as sac  # noqa: PLC0415

    shim_device_put_replicated()
    events = compile_events()
    env = brax_envs.get_environment("halfcheetah", backend="spring")
    marks, rates = {}, []

    def progress_fn(step, metrics):
        if "training/sps" in metrics:
            marks.setdefault("first_epoch", events.total)
            rates.append(float(metrics["training/sps"]))

    events.total, events.active = 0.0, True
    start = time.perf_counter()
    try:
        sac.train(env, progress_fn=progress_fn, **brax_kwargs(settings))
    finally:
        events.active = False
    return {
        "sps": max(rates[1:]),
        "compile_s": marks["first_epoch"],
        "epoch_sps": rates,
        "wall_s": time.perf_counter() - start,
    }
