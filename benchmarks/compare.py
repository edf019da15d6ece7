"""Side by side, in one process: the bare simulator, this trainer, Brax's PPO and SAC, a task loop.

    python benchmarks/compare.py --quick    # CPU: about 20 minutes on 2 cores
    python benchmarks/compare.py            # sized for one GPU (benchmarks/gpu.sh)
    python benchmarks/compare.py --tiny     # the CI smoke test's size: no Brax physics
    python benchmarks/compare.py --quick --only sac   # one section, a JSON of its own

On the same environments, batch sizes, unroll and networks, for each family of the profile:

  * ``raw``: the family wrapped for training (time limit, auto-reset), stepped with uniformly
    random actions in one jitted ``scan``: the ceiling any trainer can reach.
  * ``trainer``: ``distral_jax.trainer.Trainer`` (Distral 2-column and ``a3c``; A2C and PPO),
    learning included; compile is the wall time of ``Trainer.compile`` (all three programs).
  * ``brax_ppo``: ``brax.training.agents.ppo.train`` on the same physics (Brax's own
    ``halfcheetah`` for ``halfcheetah_vel``), with as many environments as tasks × envs here;
    its compile is the sum of JAX's compile events before its first update finished.
  * ``sac`` (quick and default profiles): on one task of ``halfcheetah_vel``, the raw env, this
    trainer's ``a3c`` SAC and ``brax.training.agents.sac.train`` (Brax's ``halfcheetah``) at the
    same settings (``brax_sac.py``: one env step per environment, then that many gradient steps
    of that batch, the same networks' sizes, learning rate, discount, τ, replay and warm-up);
    and Distral-SAC (``distral_klent_2col``) against independent SAC (``a3c``) on
    ``sac_tasks`` tasks at the same per-task settings. Brax SAC's rate is its own
    ``training/sps`` (best epoch after the first), its compile JAX's compile events until its
    first epoch's metrics.
  * ``per_task_loop``: the trainer's update for one task at a time, called from a Python loop
    over the tasks once per update, as public Distral implementations train their workers.
  * ``scaling``: N = 1, 4, 16, 64 tasks with the same total environments, and with the same
    environments per task.
  * ``peers``: rejax's PPO against this trainer's ``a3c`` PPO at rejax's (PureJaxRL's) settings
    on gymnax CartPole-v1 and Pendulum-v1, seeds vmapped (``peers.py``; needs rejax).

Rates on a shared machine drift by tens of percent within minutes, so ratios come from windows
timed in alternation: each trainer row with the raw environment (``raw_sps``), the per-task loop
with the vmapped trainer (``vmapped_sps``), each scaling row with the first task count
(``first_sps``), Distral-SAC with independent SAC (``a3c_sps``); each of Brax's runs, which
cannot alternate, is bracketed by raw-environment windows just before and after it.

Every row records env steps/s (the best of ``repeats`` timed windows after a warm-up call),
compile seconds and memory: XLA's own size of the compiled training program (arguments,
outputs and temporaries), and the device's peak bytes on an accelerator or the process's
resident set on CPU. The JSON goes to ``benchmarks/results/compare_<backend>_<profile>.json`` and
``benchmarks/RESULTS.md`` is regenerated from every such JSON there; an ``--out`` elsewhere
gets a ``RESULTS.md`` of its own beside it, from the ``compare_*.json`` of its folder and itself
(``--report`` names another).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from distral_jax.configs import TrainConfig
from distral_jax.envs.base import batch_reset, batch_step
from distral_jax.envs.episodes import random_policy
from distral_jax.envs.gridworld import GridWorld, spread_goals
from distral_jax.envs.point_mass import PointMassGoals
from distral_jax.envs.wrappers import TaskSubset, wrap_for_training
from distral_jax.trainer import Trainer, runs_hparams

sys.path.insert(0, str(Path(__file__).parent))
import brax_sac  # noqa: E402
import compare_report  # noqa: E402
import peers  # noqa: E402
from brax_sac import SACSettings  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Family:
    """One family's settings: the same for every method measured on it."""

    name: str
    tasks: int
    envs: int
    config: TrainConfig  # unroll, networks, PPO epochs/minibatches, episode length
    learners: tuple[str, ...] = ("a2c", "ppo")
    variants: tuple[str, ...] = ("distral_klent_2col", "a3c")
    iterations: int = 1  # updates per jitted call: a timed call should last about a second


@dataclasses.dataclass(frozen=True)
class Profile:
    families: tuple[Family, ...]
    loop_family: str  # the family of the per-task loop comparison
    scaling_family: Family  # its tasks and envs are replaced by the scaling's
    scaling_tasks: tuple[int, ...]
    scaling_total_envs: int
    scaling_envs_per_task: int
    scaling_steps_per_call: int  # env steps per timed call, whatever the tasks and envs
    repeats: int
    brax_ppo: bool
    peers: tuple[str, ...] = ()  # gymnax ids for rejax's PPO at its settings (peers.py)
    peer_steps: int = 500_000  # env steps per seed
    peer_seeds: int = 4
    sac: SACSettings | None = None  # the SAC rows' settings on halfcheetah_vel (None: no rows)
    sac_tasks: int = 4  # tasks of the Distral-SAC against independent SAC rows


def _config(**kw) -> TrainConfig:
    base = dict(ppo_epochs=4, ppo_minibatches=4, eval_envs=4, normalize_observations=False)
    return TrainConfig(**{**base, **kw})


_GRID = dict(unroll_length=10, hidden_sizes=(64,), episode_length=50)
_POINT = dict(unroll_length=20, hidden_sizes=(32, 32), episode_length=100)
_CHEETAH = dict(
    unroll_length=20,
    hidden_sizes=(32, 32),
    episode_length=1000,
    normalize_observations=True,
    gamma=0.97,
)

QUICK = Profile(
    families=(
        Family("gridworld", 8, 32, _config(**_GRID), iterations=100),
        Family("point_mass", 8, 32, _config(**_POINT), iterations=50),
        Family("halfcheetah_vel", 4, 64, _config(**_CHEETAH), iterations=4),
    ),
    loop_family="gridworld",
    scaling_family=Family("point_mass", 0, 0, _config(**_POINT)),
    scaling_tasks=(1, 4, 16, 64),
    scaling_total_envs=256,
    scaling_envs_per_task=16,
    scaling_steps_per_call=250_000,
    repeats=3,
    brax_ppo=True,
    peers=("CartPole-v1", "Pendulum-v1"),
    # Sized for 2 CPU cores: a timed window (200 training steps of 64 envs) lasts a few
    # seconds, and learning starts after 16 of them.
    sac=SACSettings(
        envs=64,
        batch_size=256,
        grad_updates=8,
        hidden_sizes=(64, 64),
        learning_rate=1e-3,
        replay_size=100_000,
        warmup=1024,
        steps_per_call=200,
    ),
)

PROFILES = {
    "tiny": Profile(
        families=(
            Family(
                "gridworld",
                2,
                8,
                _config(**{**_GRID, "hidden_sizes": (8,), "unroll_length": 5}),
                learners=("a2c",),
                variants=("distral_klent_2col",),
                iterations=2,
            ),
        ),
        loop_family="gridworld",
        scaling_family=Family("point_mass", 0, 0, _config(**{**_POINT, "hidden_sizes": (8,)})),
        scaling_tasks=(1, 2),
        scaling_total_envs=8,
        scaling_envs_per_task=4,
        scaling_steps_per_call=500,
        repeats=1,
        brax_ppo=False,
    ),
    "quick": QUICK,
    # Sized for one GPU: the quick profile's families and scaling with 32-16x the environments.
    "default": dataclasses.replace(
        QUICK,
        families=(
            Family("gridworld", 8, 1024, _config(**_GRID), iterations=100),
            Family("point_mass", 16, 256, _config(**_POINT), iterations=50),
            Family(
                "halfcheetah_vel",
                16,
                256,
                _config(**{**_CHEETAH, "hidden_sizes": (64, 64)}),
                iterations=10,
            ),
        ),
        scaling_total_envs=4096,
        scaling_envs_per_task=256,
        scaling_steps_per_call=5_000_000,
        sac=SACSettings(
            envs=128,
            batch_size=512,
            grad_updates=64,
            hidden_sizes=(256, 256),
            learning_rate=3e-4,
            replay_size=1_000_000,
            warmup=8192,
            steps_per_call=200,
        ),
    ),
}


def make_family(name: str, num_tasks: int):
    if name == "gridworld":
        return GridWorld("two_rooms", goals=spread_goals("two_rooms", num_tasks))
    if name == "point_mass":
        return PointMassGoals(num_tasks=num_tasks)
    from distral_jax.envs.registry import make_family as registry_family  # noqa: PLC0415

    return registry_family(name, num_tasks=num_tasks)


# ----------------------------------------------------------------------------------- memory
def host_memory() -> dict:
    """Device peak bytes on an accelerator; resident and peak resident set on CPU."""
    device = jax.local_devices()[0]
    stats = device.memory_stats() if device.platform != "cpu" else None
    if stats:
        return {"device_peak_bytes": int(stats.get("peak_bytes_in_use", 0))}
    status = Path("/proc/self/status")
    if not status.exists():
        return {}
    fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
    kib = lambda key: int(fields[key].split()[0]) * 1024 if key in fields else None
    return {"rss_bytes": kib("VmRSS"), "peak_rss_bytes": kib("VmHWM")}


def program_bytes(compiled) -> int | None:
    """XLA's own account of a compiled program: arguments + outputs + temporaries."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if m is None:
        return None
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


@dataclasses.dataclass
class Timed:
    """A jitted call to time and the env steps it makes."""

    call: Callable[[], Any]
    steps: int


def best_rates(timed: list[Timed], repeats: int) -> list[float]:
    """Env steps per second of each call: the best of ``repeats`` windows, taken in turn.

    The calls alternate (A B A B ...), so that a slower minute of a shared machine slows every
    one of them alike and their ratio stays meaningful; each is warmed up first.
    """
    for t in timed:
        jax.block_until_ready(t.call())
    best = [float("inf")] * len(timed)
    for _ in range(repeats):
        for i, t in enumerate(timed):
            start = time.perf_counter()
            jax.block_until_ready(t.call())
            best[i] = min(best[i], time.perf_counter() - start)
    return [t.steps / b for t, b in zip(timed, best, strict=True)]


# ------------------------------------------------------------------------------ measurements
def measure_raw(family: Family, repeats: int) -> tuple[dict, Timed]:
    """Random actions through the training wrappers, as many steps per call as the trainer's
    (``family.iterations × unroll``).

    Returns the row and the timed call, which later rows alternate with (``best_rates``).
    """
    env = wrap_for_training(make_family(family.name, family.tasks), family.config.episode_length)
    tasks = env.tasks()
    policy = random_policy(env)
    steps = family.iterations * family.config.unroll_length

    def rollout(state, key):
        def body(state, k):
            return batch_step(env, state, policy(state.obs, k), tasks), None

        return jax.lax.scan(body, state, jax.random.split(key, steps))[0]

    start = time.perf_counter()
    keys = jax.random.split(jax.random.PRNGKey(0), (family.tasks, family.envs))
    state = jax.jit(lambda k: batch_reset(env, k, tasks))(keys)
    compiled = jax.jit(rollout, donate_argnums=0).lower(state, jax.random.PRNGKey(1)).compile()
    state = jax.block_until_ready(compiled(state, jax.random.PRNGKey(1)))
    compile_s = time.perf_counter() - start
    holder = {"state": state, "key": jax.random.PRNGKey(2)}

    def call():
        holder["key"], k = jax.random.split(holder["key"])
        holder["state"] = compiled(holder["state"], k)
        return holder["state"].reward

    timed = Timed(call, family.tasks * family.envs * steps)
    (sps,) = best_rates([timed], repeats)
    return {"sps": sps, "compile_s": compile_s, "program_bytes": program_bytes(compiled)}, timed


def trainer_timed(family_env, config: TrainConfig) -> tuple[Timed, dict]:
    """The on-device trainer, one run, compiled: its timed call (``iterations_per_call``
    updates) and ``Trainer.compile``'s time and XLA's size of the training program."""
    trainer = Trainer(family_env, config)
    compiled = trainer.compile(
        jax.random.split(jax.random.PRNGKey(0), 1), runs_hparams(config, None, 1)
    )
    holder = {"state": compiled.state}

    def call():
        holder["state"], metrics = compiled.run(holder["state"])
        return metrics

    timed = Timed(call, trainer.env_steps_per_iteration * config.iterations_per_call)
    return timed, {
        "compile_s": compiled.compile_time_s,
        "program_bytes": program_bytes(compiled.run),
    }


def finite_loss(timed: Timed) -> bool:
    """One more call of a trainer: whether every loss it reports is finite."""
    return bool(np.all(np.isfinite(np.asarray(timed.call()["loss"]))))


def measure_trainer(
    family_env, config: TrainConfig, repeats: int, raw: Timed | None = None
) -> tuple[dict, Timed]:
    """The on-device trainer, one run: env steps/s of ``run`` and ``Trainer.compile``'s time.

    With ``raw``, its windows alternate with the trainer's and ``raw_sps`` is their rate.
    Returns the row and the timed call.
    """
    timed, compiled = trainer_timed(family_env, config)
    rates = best_rates([timed] if raw is None else [timed, raw], repeats)
    row = {"sps": rates[0], **compiled, "finite": finite_loss(timed)}
    if raw is not None:
        row["raw_sps"] = rates[1]
    return row, timed


def measure_per_task_loop(
    family: Family, config: TrainConfig, repeats: int, vmapped: Timed
) -> dict:
    """One update per task at a time from Python: ``tasks`` states, one compiled 1-task program.

    Every task keeps its own networks and environments; the program (compiled once, for task 0's
    shapes) is called for task 0, then 1, ... then again for task 0: ``tasks`` dispatches per
    update, the way a per-task worker loop trains. Its windows alternate with ``vmapped`` (the
    trainer on all tasks at once), whose rate is returned as ``vmapped_sps``.
    """
    env = make_family(family.name, family.tasks)
    single = config.replace(iterations_per_call=1)
    trainers = [Trainer(TaskSubset(env, [i]), single) for i in range(family.tasks)]
    keys = jax.random.split(jax.random.PRNGKey(0), 1)
    hparams = runs_hparams(single, None, 1)
    compiled = trainers[0].compile(keys, hparams)
    states = [compiled.state] + [jax.jit(jax.vmap(t.init))(keys, hparams) for t in trainers[1:]]

    def call():
        for _ in range(family.iterations):
            for i in range(len(states)):
                states[i], metrics = compiled.run(states[i])
        return metrics

    steps = trainers[0].env_steps_per_iteration * family.tasks * family.iterations
    sps, vmapped_sps = best_rates([Timed(call, steps), vmapped], repeats)
    return {"sps": sps, "compile_s": compiled.compile_time_s, "vmapped_sps": vmapped_sps}


def measure_brax_ppo(family: Family) -> dict:
    """``brax.training.agents.ppo.train`` on Brax's ``halfcheetah`` with the family's settings.

    ``tasks × envs`` environments, minibatches of ``envs`` (so one training step collects one
    unroll per environment, as an iteration here does), ``ppo_epochs`` passes; three epochs of
    ``family.iterations`` training steps. Steps/s is Brax's own ``training/sps``, the best of
    its epochs after the first (which includes compilation).
    """
    from brax import envs as brax_envs  # noqa: PLC0415
    from brax.training.agents.ppo import networks as ppo_networks  # noqa: PLC0415
    from brax.training.agents.ppo import train as ppo  # noqa: PLC0415

    brax_sac.shim_device_put_replicated()
    events = brax_sac.compile_events()
    cfg = family.config
    num_envs = family.tasks * family.envs
    per_step = num_envs * cfg.unroll_length
    env = brax_envs.get_environment("halfcheetah", backend="spring")
    sizes = tuple(cfg.hidden_sizes)
    network_factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=sizes,
        value_hidden_layer_sizes=sizes,
    )
    marks, rates = {}, []

    def policy_params_fn(step, *_):
        if step > 0 and "first_update" not in marks:
            marks["first_update"] = events.total

    def progress_fn(step, metrics):
        if "training/sps" in metrics:
            rates.append(float(metrics["training/sps"]))

    events.total, events.active = 0.0, True
    try:
        ppo.train(
            env,
            num_timesteps=3 * family.iterations * per_step,
            num_evals=4,
            num_envs=num_envs,
            max_devices_per_host=1,
            episode_length=cfg.episode_length,
            unroll_length=cfg.unroll_length,
            batch_size=num_envs // cfg.ppo_minibatches,
            num_minibatches=cfg.ppo_minibatches,
            num_updates_per_batch=cfg.ppo_epochs,
            network_factory=network_factory,
            normalize_observations=cfg.normalize_observations,
            discounting=cfg.gamma,
            num_eval_envs=16,
            seed=0,
            progress_fn=progress_fn,
            policy_params_fn=policy_params_fn,
        )
    finally:
        events.active = False
    return {"sps": max(rates[1:]), "compile_s": marks["first_update"]}


# ----------------------------------------------------------------------------------------- SAC
SAC_FAMILY = "halfcheetah_vel"  # Brax's halfcheetah physics, which Brax's SAC runs


def sac_one_task_rows(settings: SACSettings, repeats: int) -> list[dict]:
    """One task of ``halfcheetah_vel`` at ``settings``: the raw env (``envs`` environments,
    ``steps_per_call`` steps per call), this trainer's ``a3c`` SAC in windows alternating with
    it, and Brax's SAC with the raw env timed just before and after it."""
    env = make_family(SAC_FAMILY, 1)
    config = brax_sac.trainer_config(settings, env.action_size)
    family = Family(SAC_FAMILY, 1, settings.envs, config, iterations=settings.steps_per_call)
    raw, raw_timed = measure_raw(family, repeats)
    rows = [{"method": "raw", **raw, **host_memory()}]
    print(f"  raw env: {raw['sps']:,.0f} steps/s, compile {raw['compile_s']:.1f} s", flush=True)
    r, _ = measure_trainer(env, config, repeats, raw=raw_timed)
    rows.append({"method": "trainer a3c sac", **r, **host_memory()})
    print(
        f"  trainer a3c sac: {r['sps']:,.0f} steps/s ({r['sps'] / r['raw_sps']:.2f} of the raw "
        f"env's {r['raw_sps']:,.0f} in alternate windows), compile {r['compile_s']:.1f} s",
        flush=True,
    )
    # As for Brax's PPO: its run cannot alternate with the raw env, so the raw env is timed
    # just before and after it and the better kept.
    (before,) = best_rates([raw_timed], repeats)
    r = brax_sac.measure_brax_sac(settings)
    (after,) = best_rates([raw_timed], repeats)
    r["raw_sps"] = max(before, after)
    rows.append({"method": "brax_sac", **r, **host_memory()})
    print(
        f"  brax sac: {r['sps']:,.0f} steps/s (raw env {before:,.0f} before, {after:,.0f} "
        f"after), compile {r['compile_s']:.1f} s",
        flush=True,
    )
    return rows


def sac_multitask_rows(settings: SACSettings, tasks: int, repeats: int) -> dict:
    """Distral-SAC (``distral_klent_2col``) and independent SAC (``a3c``) on ``tasks`` tasks
    at ``settings`` per task, their windows alternating; the Distral row's ``a3c_sps`` is the
    other's rate."""
    env = make_family(SAC_FAMILY, tasks)
    # As many env steps per call as the one-task rows', but at least the warm-up's updates: the
    # untimed first call has to finish it, so that every timed window acts with the policies.
    warmup_iterations = -(-settings.warmup_env_steps // settings.envs)
    iterations = max(settings.steps_per_call // tasks, warmup_iterations)
    timed, rows = [], []
    for variant in ("distral_klent_2col", "a3c"):
        config = brax_sac.trainer_config(
            settings, env.action_size, variant=variant, iterations_per_call=iterations
        )
        t, compiled = trainer_timed(env, config)
        timed.append(t)
        rows.append({"method": f"trainer {variant} sac", **compiled})
    rates = best_rates(timed, repeats)
    for row, t, sps in zip(rows, timed, rates, strict=True):
        row.update(sps=sps, finite=finite_loss(t), **host_memory())
    rows[0]["a3c_sps"] = rates[1]
    print(
        f"  {tasks} tasks: distral sac {rates[0]:,.0f} steps/s, a3c sac {rates[1]:,.0f} "
        f"(alternate windows; {rates[0] / rates[1]:.2f}), compile "
        f"{rows[0]['compile_s']:.1f} / {rows[1]['compile_s']:.1f} s",
        flush=True,
    )
    return {"tasks": tasks, "envs": settings.envs, "iterations": iterations, "rows": rows}


def sac_section(profile: Profile) -> dict | None:
    """The profile's SAC rows (None when it has none), with their ratios."""
    settings = profile.sac
    if settings is None:
        return None
    print(
        f"sac ({SAC_FAMILY}): 1 task x {settings.envs} envs, batch {settings.batch_size}, "
        f"{settings.grad_updates} gradient steps per env step, hidden {settings.hidden_sizes}",
        flush=True,
    )
    out = {
        "family": SAC_FAMILY,
        "settings": dataclasses.asdict(settings),
        "rows": sac_one_task_rows(settings, profile.repeats),
        "multitask": sac_multitask_rows(settings, profile.sac_tasks, profile.repeats),
    }
    out["ratios"] = compare_report.sac_ratios(out)
    return out


def scaling_rows(profile: Profile, repeats: int) -> list[dict]:
    """Distral A2C at each task count; every row after the first is timed in alternation with
    the first (one task: ``first_sps``), so that its ratio to it is not the machine's drift."""
    base = profile.scaling_family
    rows = []
    for mode in ("same_total_envs", "same_envs_per_task"):
        first: Timed | None = None
        for n in profile.scaling_tasks:
            envs = (
                profile.scaling_total_envs // n
                if mode == "same_total_envs"
                else profile.scaling_envs_per_task
            )
            per_iteration = n * envs * base.config.unroll_length
            config = base.config.replace(
                variant="distral_klent_2col",
                learner="a2c",
                num_envs=envs,
                iterations_per_call=max(1, profile.scaling_steps_per_call // per_iteration),
            )
            r, timed = measure_trainer(make_family(base.name, n), config, repeats, raw=first)
            if first is None:
                first = timed
            else:
                r["first_sps"] = r.pop("raw_sps")
            row = {"family": base.name, "mode": mode, "tasks": n, "envs": envs, **r}
            row.update(host_memory())
            print(f"  scaling {mode}: {n} tasks x {envs} envs: {r['sps']:,.0f} steps/s", flush=True)
            rows.append(row)
    return rows


SECTIONS = ("families", "sac", "scaling", "peers")


def run(profile_name: str, sections: tuple[str, ...] = SECTIONS) -> dict:
    """The profile's measurements; only the named ``sections`` (the others stay empty)."""
    profile = PROFILES[profile_name]
    out: dict = {
        "profile": profile_name,
        "families": [],
        "loop": None,
        "sac": None,
        "scaling": [],
    }
    for family in profile.families if "families" in sections else ():
        cfg = family.config.replace(num_envs=family.envs, iterations_per_call=family.iterations)
        family = dataclasses.replace(family, config=cfg)
        print(f"{family.name}: {family.tasks} tasks x {family.envs} envs", flush=True)
        entry = {
            "family": family.name,
            "tasks": family.tasks,
            "envs": family.envs,
            "unroll_length": cfg.unroll_length,
            "hidden_sizes": list(cfg.hidden_sizes),
            "ppo": f"{cfg.ppo_epochs} epochs x {cfg.ppo_minibatches} minibatches",
            "rows": [],
        }
        raw, raw_timed = measure_raw(family, profile.repeats)
        entry["rows"].append({"method": "raw", **raw, **host_memory()})
        print(f"  raw env: {raw['sps']:,.0f} steps/s, compile {raw['compile_s']:.1f} s", flush=True)
        env = make_family(family.name, family.tasks)
        vmapped = None  # Distral A2C's timed call, for the per-task loop's comparison
        for learner in family.learners:
            for variant in family.variants:
                config = cfg.replace(variant=variant, learner=learner)
                r, timed = measure_trainer(env, config, profile.repeats, raw=raw_timed)
                if (variant, learner) == ("distral_klent_2col", "a2c"):
                    vmapped = timed
                method = f"trainer {variant} {learner}"
                entry["rows"].append({"method": method, **r, **host_memory()})
                print(
                    f"  {method}: {r['sps']:,.0f} steps/s ({r['sps'] / r['raw_sps']:.2f} of "
                    f"the raw env's {r['raw_sps']:,.0f} in alternate windows), compile "
                    f"{r['compile_s']:.1f} s",
                    flush=True,
                )
        if profile.brax_ppo and family.name == "halfcheetah_vel":
            # Brax's run cannot alternate with the raw env: time the raw env just before and
            # after it instead, and keep the better.
            (before,) = best_rates([raw_timed], profile.repeats)
            r = measure_brax_ppo(family)
            (after,) = best_rates([raw_timed], profile.repeats)
            r["raw_sps"] = max(before, after)
            entry["rows"].append({"method": "brax_ppo", **r, **host_memory()})
            print(
                f"  brax ppo: {r['sps']:,.0f} steps/s (raw env {before:,.0f} before, "
                f"{after:,.0f} after), compile {r['compile_s']:.1f} s",
                flush=True,
            )
        if family.name == profile.loop_family and vmapped is not None:
            config = cfg.replace(variant="distral_klent_2col", learner="a2c")
            r = measure_per_task_loop(family, config, profile.repeats, vmapped)
            out["loop"] = {"family": family.name, "tasks": family.tasks, "envs": family.envs, **r}
            print(
                f"  per-task loop: {r['sps']:,.0f} steps/s; vmapped in alternate windows "
                f"{r['vmapped_sps']:,.0f}",
                flush=True,
            )
        out["families"].append(entry)
    if "sac" in sections:
        out["sac"] = sac_section(profile)
    if "scaling" in sections:
        out["scaling"] = scaling_rows(profile, profile.repeats)
    out["peers"] = peer_rows(profile) if "peers" in sections else []
    return out


def peer_rows(profile: Profile) -> list[dict]:
    """rejax's PPO and this trainer at rejax's settings (``peers.py``), each in turn; none
    when the profile has no peers or rejax is not installed (said on stdout)."""
    if not profile.peers:
        return []
    try:
        import rejax  # noqa: F401, PLC0415
    except ImportError:
        print("peers: rejax is not installed (pip install rejax==0.1.3 --no-deps): skipped")
        return []
    print(f"peers: {profile.peer_seeds} seeds x {profile.peer_steps:,} steps", flush=True)
    return peers.measure(profile.peers, profile.peer_steps, profile.peer_seeds)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_const", const="quick", dest="profile")
    size.add_argument("--tiny", action="store_const", const="tiny", dest="profile")
    parser.add_argument(
        "--out",
        default=None,
        help="the JSON (default: benchmarks/results/compare_<backend>_<profile>.json)",
    )
    parser.add_argument(
        "--report",
        default=None,
        help="regenerated from every compare_*.json in the JSON's folder (default: "
        "benchmarks/RESULTS.md for the default folder, else RESULTS.md beside the JSON, so that "
        "an --out elsewhere never rewrites the standing table from its one file)",
    )
    parser.add_argument(
        "--only",
        nargs="+",
        choices=SECTIONS,
        default=None,
        help="measure only these sections; written to a JSON of their own "
        "(compare_<backend>_<profile>_<sections>.json), so the whole profile's is kept",
    )
    args = parser.parse_args()
    profile = args.profile or "default"
    sections = SECTIONS if args.only is None else tuple(s for s in SECTIONS if s in args.only)
    start = time.perf_counter()
    result = run(profile, sections)
    command = "python benchmarks/compare.py" + ("" if profile == "default" else f" --{profile}")
    if sections != SECTIONS:
        command += " --only " + " ".join(sections)
    result["meta"] = {
        "command": command,
        "device": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
        "cpu": platform.processor() or platform.machine(),
        "jax": jax.__version__,
        "date": time.strftime("%Y-%m-%d"),
        "wall_s": time.perf_counter() - start,
    }
    suffix = "" if sections == SECTIONS else "_" + "_".join(sections)
    here = Path(__file__).resolve().parent  # the standing files, wherever this runs from
    default_out = here / "results" / f"compare_{jax.default_backend()}_{profile}{suffix}.json"
    out = Path(args.out).resolve() if args.out else default_out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    paths = sorted(set(out.parent.glob("compare_*.json")) | {out})
    results = [json.loads(p.read_text()) for p in paths]
    if args.report:
        report = Path(args.report)
    else:  # the standing table only from the standing folder
        report = (here if out.parent == default_out.parent else out.parent) / "RESULTS.md"
    report.write_text(compare_report.render(results, compare_report.load_host(out.parent)))
    print(f"wrote {out} and {report}")


if __name__ == "__main__":
    main()
