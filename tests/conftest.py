"""Shared test settings.

Compilation dominates these tests on a CPU. Two things cut it: XLA's backend optimisation is
turned down, and a persistent compilation cache serves the session. Numeric hyperparameters are
traced, so runs that differ only in α, β, learning rate or budget compile to the same program
and every such run after the first skips XLA compilation.
"""

from __future__ import annotations

import os

# LLVM's optimisation passes are most of XLA's compile time on CPU and buy little for the tiny
# programs tests run: level 0 cuts compilation about threefold. XLA's fusion emitters (which
# emit each fusion through MLIR) then take most of what is left: without them the trainer's
# programs compiled 2.5-3x faster again (grid world A2C `run`: 2.7 s -> 0.9 s; `init` 1.0 ->
# 0.5 s) and ran about as fast. Set before JAX starts; subprocesses inherit both.
FAST_COMPILATION = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
os.environ["XLA_FLAGS"] = " ".join((os.environ.get("XLA_FLAGS", ""), *FAST_COMPILATION)).strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from distral_jax import trainer  # noqa: E402

# XLA's own defaults: what ``long_run`` tests compile the trainer's ``run`` program with, so
# that they run the program users run (the emitters off, the PPO optimum test's run was within
# noise of it: 36.5 s against 36.8 s).
FULL_OPTIMISATION = {"xla_backend_optimization_level": 3, "xla_cpu_use_fusion_emitters": True}


@pytest.fixture(autouse=True)
def _optimised_long_runs(request, monkeypatch):
    """Tests marked ``long_run`` train for long enough that running, not compiling, dominates:
    at level 0 their programs ran 2-7x slower. Their ``run`` program is compiled at XLA's full
    optimisation (``trainer.RUN_COMPILER_OPTIONS``)."""
    if request.node.get_closest_marker("long_run"):
        monkeypatch.setattr(trainer, "RUN_COMPILER_OPTIONS", FULL_OPTIMISATION)


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    # One cache for both pytest-xdist workers (their base folders share a parent): a program
    # one worker compiled is read by the other (an entry read while the other still writes it
    # is a miss: JAX warns and compiles).
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    cache = shared / "jax_cache"
    cache.mkdir(exist_ok=True)
    cache = str(cache)
    jax.config.update("jax_compilation_cache_dir", cache)
    # What the experiments' --compilation-cache reads: launchers run in tests stay on this cache.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield


# The modules that take longest (measured, in this order): under pytest-xdist they are handed
# out first, so that no long module starts when the other worker is nearly done.
LONGEST_FIRST = (
    "test_train",
    "test_mesh",
    "test_resume",
    "test_envpool_tasks",
    "test_recurrent",
    "test_multihost",
    "test_studies",
    "test_brax_tasks",
    "test_ppo",
    "test_sac",
    "test_cli",
    "test_sweeps",
    "test_checkpoint",
    "test_minigrid_experiment",
    "test_compare_benchmark",
    "test_readme",
    "test_brax_training",
)


def pytest_collection_modifyitems(items):
    """``dev.py test`` runs two workers with ``--dist loadscope``: a module's tests stay on one
    worker (its module-scoped fixtures — a trained run, a compiled family, a subprocess — are
    built once), and modules go to whichever worker is free, longest first."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))  # stable
