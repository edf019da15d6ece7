"""Configuration: the paper's variants, the traced hyperparameters and the program's structure.

Two kinds of settings are kept apart on purpose:
  * ``Hyperparams`` — numbers that enter the compiled program as *traced values* (α, β,
    learning rate, loss coefficients, γ, λ). They live in the training state, so a whole training
    run can be ``vmap``-ed over a grid of them without recompiling.
  * ``TrainConfig`` — structure that shapes the program (architecture, sizes, the learner) and
    the run's budget; the one place where every default is defined. Changing it recompiles.

A variant name resolves to a ``Variant`` (architecture, α, β, column weight, distillation); the
presets (Teh et al. 2017 §4; docs/maths.md §3):

    =====================  ============  =====  ============================
    name                   π_i           α      KL to π_0 and distillation
    =====================  ============  =====  ============================
    a3c                    own network   0      no
    a3c_multitask          one shared    0      no
    a3c_2col               2-column      0      no
    distral_kl_1col        own network   1      yes
    distral_klent_1col     own network   0.5    yes
    distral_kl_2col        2-column      1      yes
    distral_klent_2col     2-column      0.5    yes
    =====================  ============  =====  ============================

The baselines keep an entropy bonus of strength 1/β (α = 0). In ``a3c_2col`` the task logits are
``h_θ0 + f_θi`` (the 2-column network with its column weight fixed at 1) but nothing pulls the
columns towards π_0.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

import jax.numpy as jnp
import numpy as np
from flax import struct

from distral_jax.losses import Regularizer, alpha_beta

Architecture = Literal["1col", "2col", "shared"]
VariantName = Literal[
    "a3c",
    "a3c_multitask",
    "a3c_2col",
    "distral_kl_1col",
    "distral_klent_1col",
    "distral_kl_2col",
    "distral_klent_2col",
    "custom",
]
Learner = Literal["a2c", "ppo", "sac"]
Core = Literal["mlp", "lstm", "gru"]


@dataclasses.dataclass(frozen=True)
class Preset:
    """A row of the variants table: what a preset fixes (β comes from the config)."""

    architecture: Architecture
    alpha: float
    distill: bool


VARIANTS: dict[str, Preset] = {  # the names of ``VariantName`` but "custom"
    "a3c": Preset("1col", 0.0, distill=False),
    "a3c_multitask": Preset("shared", 0.0, distill=False),
    "a3c_2col": Preset("2col", 0.0, distill=False),
    "distral_kl_1col": Preset("1col", 1.0, distill=True),
    "distral_klent_1col": Preset("1col", 0.5, distill=True),
    "distral_kl_2col": Preset("2col", 1.0, distill=True),
    "distral_klent_2col": Preset("2col", 0.5, distill=True),
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """A variant resolved to what the trainer needs.

    Attributes:
      architecture: "1col", "2col" or "shared" (static: it shapes the networks).
      alpha: α ∈ [0, 1], the weight of log π_0 against the entropy.
      beta: β > 0, the inverse temperature.
      column_alpha: α_c, the weight of h_θ0 in the 2-column logits α_c h_θ0 + f_θi: α, or 1 when
        α = 0 (then π_0 is a shared column that nothing distils).
      distill: whether π_0 is distilled (and the KL to it is paid).
    """

    architecture: Architecture
    alpha: float
    beta: float
    column_alpha: float
    distill: bool

    @classmethod
    def create(
        cls, architecture: Architecture, alpha: float, beta: float, distill: bool
    ) -> Variant:
        return cls(architecture, alpha, beta, alpha if alpha > 0 else 1.0, distill)


def _require(condition: bool, field: str, allowed: str, value) -> None:
    if not condition:
        raise ValueError(f"`{field}` must be {allowed}, got {value!r}")


@struct.dataclass
class Hyperparams:
    """Numeric hyperparameters, traced in the compiled program (a pytree of scalars).

    Built by ``TrainConfig.hyperparams()`` (defaults live in ``TrainConfig``), or by
    ``Hyperparams.create`` for sweeps.

    Attributes:
      alpha: α ∈ [0, 1], the weight of log π_0 relative to the entropy (α = c_KL/(c_KL+c_Ent)).
      beta: β > 0, the inverse temperature (β = 1/(c_KL+c_Ent)). The per-step entropy bonus is
        about log|A|/β, so β must be large against the reward scale: with a unit reward at the
        goal and ~20-step episodes, β ≥ 50 keeps the bonus from outweighing the goal.
      learning_rate: optimiser step size.
      gamma: discount γ.
      lambda_: λ of the λ-returns / GAE.
      value_coef: weight of the value loss.
      distill_coef: multiplier of the distillation term (1 = the joint objective's gradient).
      column_alpha: weight of h_θ0 in 2-column logits α_c h_θ0 + f_θi (see ``Variant``).
    """

    alpha: jnp.ndarray
    beta: jnp.ndarray
    learning_rate: jnp.ndarray
    gamma: jnp.ndarray
    lambda_: jnp.ndarray
    value_coef: jnp.ndarray
    distill_coef: jnp.ndarray
    column_alpha: jnp.ndarray

    @classmethod
    def create(
        cls,
        *,
        alpha: float,
        beta: float,
        learning_rate: float,
        gamma: float,
        lambda_: float,
        value_coef: float,
        distill_coef: float,
        column_alpha: float,
    ) -> Hyperparams:
        """Validated construction from Python numbers (every field named)."""
        _require(0.0 <= alpha <= 1.0, "alpha", "in [0, 1]", alpha)
        _require(beta > 0, "beta", "> 0", beta)
        _require(learning_rate > 0, "learning_rate", "> 0", learning_rate)
        _require(0.0 <= gamma <= 1.0, "gamma", "in [0, 1]", gamma)
        _require(0.0 <= lambda_ <= 1.0, "lambda_", "in [0, 1]", lambda_)
        _require(value_coef >= 0, "value_coef", ">= 0", value_coef)
        _require(distill_coef >= 0, "distill_coef", ">= 0", distill_coef)
        _require(column_alpha >= 0, "column_alpha", ">= 0", column_alpha)
        # numpy, not jax: building a config must not start a JAX backend (a multi-host job has
        # to call jax.distributed.initialize() first); jit reads these like jax arrays.
        f32 = lambda x: np.asarray(x, np.float32)
        return cls(
            alpha=f32(alpha),
            beta=f32(beta),
            learning_rate=f32(learning_rate),
            gamma=f32(gamma),
            lambda_=f32(lambda_),
            value_coef=f32(value_coef),
            distill_coef=f32(distill_coef),
            column_alpha=f32(column_alpha),
        )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that shapes the compiled training program, plus the run's budget.

    Attributes:
      variant: one of the paper's presets (``configs.VARIANTS``), or ``"custom"`` (then
        ``architecture``, ``c_kl``, ``c_ent`` and ``distill`` decide).
      architecture: "1col" (own network per task), "2col" (α_c h_θ0 + f_θi) or "shared" (one
        task-conditioned network). Ignored unless ``variant == "custom"``.
      c_kl: the paper's cost of the KL to π_0, for custom variants (α = c_kl/(c_kl + c_ent),
        β = 1/(c_kl + c_ent)); presets take α from the table and β from ``beta``.
      c_ent: the paper's cost of (minus) the entropy, for custom variants.
      distill: whether π_0 is trained by distillation and the KL enters the reward (custom only).
      beta: β for presets.
      learner: "a2c" (the paper's advantage actor-critic), "ppo", or "sac" (soft actor-critic:
        off-policy, from a replay buffer per task; ``learners.sac``).
      regularizer: "analytic" (per-state KL and entropy) or "sampled" (the paper's: in the
        regularised reward); None (the default) is the learner's own, ``learner_regularizer``:
        analytic for A2C (lower variance), sampled for PPO, whose ratio clip caps the sampled
        regulariser's pull with the rewards' but not the analytic one's (with several minibatch
        steps per rollout the analytic fixed point moves towards more entropy, docs/maths.md §6).
      num_envs: environments per task (E).
      unroll_length: steps per rollout (T).
      iterations_per_call: updates per jitted call (the host regains control between calls).
      total_env_steps: budget, counted over all tasks and envs (rounded up to whole jitted
        calls of ``iterations_per_call`` updates).
      episode_length: time limit; longer episodes are truncated and bootstrapped. Families
        with a time limit of their own (``family.episode_length``: gymnax, XLand-MiniGrid, the
        cue recall) should train at it: ``experiments/train.py`` defaults to it, and ``train``
        warns when another is set.
      hidden_sizes: MLP widths of every network.
      core: ``"mlp"`` (feed-forward), or a recurrent ``"lstm"``/``"gru"`` cell of size
        ``hidden_sizes[-1]`` after the hidden layers of every network (π_0, the task policies or
        columns, the shared network, the values): policies then see the episode so far.
      eval_every: env steps between evaluations (rounded to whole jitted calls).
      eval_envs: episodes per task per evaluation.
      learning_rate: optimiser step size (Adam).
      gamma: discount γ.
      lambda_: λ of the λ-returns / GAE.
      value_coef: weight of the value loss.
      distill_coef: multiplier of the distillation term (1 is the joint objective's gradient).
      freeze_prior: θ_0 is never updated: π_0 (e.g. one trained on other tasks and passed to
        ``train(..., initial_params=...)``) stays a fixed prior that the task policies are
        regularised towards (and, in the 2-column architecture, a fixed column h_θ0).
      task_start_steps: a curriculum: env steps (all tasks) after which each task enters the
        objective, one per task (empty: every task from the start). Before its start a task's
        environments still run, but its losses (policy, value, KL and distillation) have weight
        0, so it changes no parameter.
      max_grad_norm: global gradient clipping.
      ppo_epochs: PPO's passes over each rollout.
      ppo_minibatches: PPO's minibatches per pass (a divisor of ``num_envs``).
      ppo_clip: PPO's clipping ε, in (0, 1).
      ppo_normalize_advantages: divide PPO's advantages (and its regulariser and distillation)
        by one scale κ = 1/σ pooled over the tasks, σ from the previous rollout. Off by default:
        under Adam a positive factor on the policy loss changes nothing but how often the
        gradient-norm clip binds, and with unit-scale advantages it binds on most updates,
        which moves the fixed point (β about 4 % smaller on the bandit, tanh-Gaussian policies
        13–15 % too wide at one epoch; docs/maths.md §6).
      normalize_observations: running mean/std normalisation of observations (shared by tasks).
      action_squash: Gaussian policies act through tanh, inside (−1, 1)^D (True, for bounded
        actions); False: plain Gaussians, for families whose actions are unbounded (the
        quadratic bandit's closed-form optimum, docs/maths.md §8).
      replay_capacity: SAC's transitions kept per task (a ring buffer per task on the device,
        ``distral_jax.replay``: N × capacity × (2 × observation + action + 2) float32 values).
      sac_batch_size: SAC's transitions sampled per task per gradient step.
      sac_grad_updates: SAC's gradient steps per iteration of ``num_envs × unroll_length`` env
        steps per task (the replay ratio is sac_grad_updates × sac_batch_size / (num_envs ×
        unroll_length) samples per env step).
      sac_warmup_steps: env steps per task, uniformly random actions, before SAC learns.
      sac_tau: Polyak factor of SAC's target critics, per gradient step.
      sac_auto_temperature: learn each task's β so that its policy keeps ``sac_target_entropy``
        (SAC's constrained form, docs/maths.md §11); off: β is the config's, fixed.
      sac_target_entropy: the entropy ``sac_auto_temperature`` holds (of −log π_i + α log π_0,
        docs/maths.md §11); None: −D for D continuous action dimensions, ½ (1 − α) log A for
        A actions (half the most it can be at that α).
      seed: PRNG seed.
      checkpoint_every: env steps between checkpoints when ``train`` is given a checkpoint
        directory (rounded up to whole jitted calls; the end of the run is always saved).
      keep_checkpoints: how many of the newest checkpoints to keep.
    """

    variant: VariantName = "distral_klent_2col"
    architecture: Architecture = "2col"
    c_kl: float = 0.01
    c_ent: float = 0.01
    distill: bool = True
    beta: float = 100.0
    learner: Learner = "a2c"
    regularizer: Regularizer | None = None
    num_envs: int = 16
    unroll_length: int = 10
    iterations_per_call: int = 50
    total_env_steps: int = 1_000_000
    episode_length: int = 100
    hidden_sizes: tuple[int, ...] = (64,)
    core: Core = "mlp"
    eval_every: int = 50_000
    eval_envs: int = 16
    learning_rate: float = 3e-3
    gamma: float = 0.95
    lambda_: float = 0.9
    value_coef: float = 0.5
    distill_coef: float = 1.0
    freeze_prior: bool = False
    task_start_steps: tuple[int, ...] = ()
    max_grad_norm: float = 1.0
    ppo_epochs: int = 4
    ppo_minibatches: int = 4
    ppo_clip: float = 0.2
    ppo_normalize_advantages: bool = False
    normalize_observations: bool = False
    action_squash: bool = True
    replay_capacity: int = 1_000_000
    sac_batch_size: int = 256
    sac_grad_updates: int = 16
    sac_warmup_steps: int = 10_000
    sac_tau: float = 0.005
    sac_auto_temperature: bool = False
    sac_target_entropy: float | None = None
    seed: int = 0
    checkpoint_every: int = 1_000_000
    keep_checkpoints: int = 3

    def __post_init__(self):
        allowed = sorted(VARIANTS) + ["custom"]
        _require(self.variant in allowed, "variant", f"one of {allowed}", self.variant)
        _require(
            self.architecture in ("1col", "2col", "shared"),
            "architecture",
            "'1col', '2col' or 'shared'",
            self.architecture,
        )
        _require(
            self.learner in ("a2c", "ppo", "sac"), "learner", "'a2c', 'ppo' or 'sac'", self.learner
        )
        _require(self.core in ("mlp", "lstm", "gru"), "core", "'mlp', 'lstm' or 'gru'", self.core)
        _require(
            self.regularizer in (None, "analytic", "sampled"),
            "regularizer",
            "'analytic', 'sampled' or None (the learner's default)",
            self.regularizer,
        )
        for name in (
            "num_envs",
            "unroll_length",
            "iterations_per_call",
            "total_env_steps",
            "episode_length",
            "eval_every",
            "eval_envs",
            "ppo_epochs",
            "ppo_minibatches",
            "checkpoint_every",
            "keep_checkpoints",
            "replay_capacity",
            "sac_batch_size",
            "sac_grad_updates",
        ):
            value = getattr(self, name)
            _require(isinstance(value, int) and value > 0, name, "a positive integer", value)
        _require(
            len(self.hidden_sizes) > 0 and all(int(h) > 0 for h in self.hidden_sizes),
            "hidden_sizes",
            "a non-empty tuple of positive integers",
            self.hidden_sizes,
        )
        _require(self.c_kl >= 0, "c_kl", ">= 0", self.c_kl)
        _require(self.c_ent >= 0, "c_ent", ">= 0", self.c_ent)
        _require(self.c_kl + self.c_ent > 0, "c_kl + c_ent", "> 0", self.c_kl + self.c_ent)
        # A preset fixes these: a value given with it would be ignored without a word.
        ignored = fields_a_preset_ignores(vars(self))
        for name in PRESET_FIXED_FIELDS:
            _require(
                name not in ignored,
                name,
                f"left at its default {_FIELD_DEFAULTS[name]!r} with variant={self.variant!r}, "
                "whose preset fixes it (only variant='custom' reads it)",
                getattr(self, name),
            )
        if self.variant == "custom" and not self.distill:
            # A KL to a π_0 that is never distilled would pull every task towards its random
            # initialisation.
            _require(self.c_kl == 0, "c_kl", "0 when distill=False", self.c_kl)
        _require(
            all(isinstance(t, int) and t >= 0 for t in self.task_start_steps),
            "task_start_steps",
            "a tuple of non-negative integers (one per task)",
            self.task_start_steps,
        )
        _require(self.max_grad_norm > 0, "max_grad_norm", "> 0", self.max_grad_norm)
        _require(0 < self.ppo_clip < 1, "ppo_clip", "in (0, 1)", self.ppo_clip)
        if self.learner == "ppo":
            _require(
                self.num_envs % self.ppo_minibatches == 0,
                "ppo_minibatches",
                f"a divisor of num_envs={self.num_envs}",
                self.ppo_minibatches,
            )
        if self.learner == "sac":
            self._check_sac()
        self.hyperparams()  # validates the numeric fields with named errors

    def _check_sac(self) -> None:
        _require(
            self.core == "mlp",
            "core",
            "'mlp' with learner='sac' (SAC replays single transitions; a recurrent core "
            "would need sequence replay)",
            self.core,
        )
        _require(
            isinstance(self.sac_warmup_steps, int) and self.sac_warmup_steps >= 0,
            "sac_warmup_steps",
            "a non-negative integer",
            self.sac_warmup_steps,
        )
        _require(0 < self.sac_tau <= 1, "sac_tau", "in (0, 1]", self.sac_tau)
        per_iteration = self.num_envs * self.unroll_length
        _require(
            self.replay_capacity >= per_iteration,
            "replay_capacity",
            f">= num_envs × unroll_length = {per_iteration} (one iteration's transitions per task)",
            self.replay_capacity,
        )
        _require(
            self.sac_batch_size <= self.replay_capacity,
            "sac_batch_size",
            f"<= replay_capacity = {self.replay_capacity}",
            self.sac_batch_size,
        )

    @property
    def resolved(self) -> Variant:
        """The variant after applying the preset (or the custom costs)."""
        if self.variant == "custom":
            alpha, beta = alpha_beta(self.c_kl, self.c_ent)
            return Variant.create(self.architecture, alpha, beta, self.distill)
        preset = VARIANTS[self.variant]
        return Variant.create(preset.architecture, preset.alpha, self.beta, preset.distill)

    def hyperparams(self) -> Hyperparams:
        """The traced hyperparameters of this config (validated, with named errors)."""
        variant = self.resolved
        return Hyperparams.create(
            alpha=variant.alpha,
            beta=variant.beta,
            learning_rate=self.learning_rate,
            gamma=self.gamma,
            lambda_=self.lambda_,
            value_coef=self.value_coef,
            distill_coef=self.distill_coef if variant.distill else 0.0,
            column_alpha=variant.column_alpha,
        )

    @property
    def uses_prior(self) -> bool:
        """Whether anything in the program reads π_0: not for a variant with α = 0, no
        distillation and no 2-column logits (``a3c``, ``a3c_multitask``), whose networks then
        skip h_θ0 (``DistralNetworks.uses_prior``)."""
        v = self.resolved
        return v.alpha > 0 or v.distill or v.architecture == "2col"

    @property
    def learner_regularizer(self) -> Regularizer:
        """The regulariser's estimator the learner uses: ``regularizer``, or when that is None
        the learner's default ("analytic" for A2C, "sampled" for PPO)."""
        if self.regularizer is not None:
            return self.regularizer
        return "sampled" if self.learner == "ppo" else "analytic"

    def final_env_step(self, num_tasks: int) -> int:
        """The env step a run of ``num_tasks`` tasks ends at: ``total_env_steps`` rounded up to
        whole jitted calls of ``iterations_per_call`` updates of ``num_tasks × num_envs ×
        unroll_length`` steps (300,000 → 307,200 for 4 tasks × 16 envs × 10 steps × 50)."""
        per_call = num_tasks * self.num_envs * self.unroll_length * self.iterations_per_call
        return max(1, -(-self.total_env_steps // per_call)) * per_call

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


# What only ``variant="custom"`` reads (a preset fixes them), and TrainConfig's defaults.
PRESET_FIXED_FIELDS = ("architecture", "c_kl", "c_ent", "distill")
_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def preset_fixed_defaults() -> dict[str, object]:
    """``PRESET_FIXED_FIELDS`` at their defaults: what ``config.replace(variant=preset,
    **preset_fixed_defaults())`` needs when ``config`` may be a custom one."""
    return {name: _FIELD_DEFAULTS[name] for name in PRESET_FIXED_FIELDS}


def fields_a_preset_ignores(values: dict) -> list[str]:
    """The ``PRESET_FIXED_FIELDS`` of ``values`` (``TrainConfig``'s fields by name, any subset)
    that its preset ignores: set to neither their default nor the preset's own value (its
    architecture and distill). None for ``variant="custom"``, which reads them all."""
    variant = values.get("variant", _FIELD_DEFAULTS["variant"])
    if variant == "custom":
        return []
    preset = VARIANTS[variant]
    return [
        name
        for name in PRESET_FIXED_FIELDS
        if name in values
        and values[name] not in (_FIELD_DEFAULTS[name], getattr(preset, name, None))
    ]


def reset_fields_a_preset_fixes(data: dict) -> tuple[dict, list[str]]:
    """A saved config (``TrainConfig``'s fields as plain data) with the fields its preset
    ignores (``fields_a_preset_ignores``) put back to their defaults, and their names.

    Configs written before presets refused those fields (a run launched with a preset and
    ``--c-kl``) trained as if they were at their defaults: reset, they load, resume and
    compare as the run they describe.
    """
    changed = fields_a_preset_ignores(data)
    return {**data, **{name: _FIELD_DEFAULTS[name] for name in changed}}, changed
