"""Shared test settings.

Compilation dominates these tests on a CPU. Two things cut it: XLA's backend optimisation is
turned down, and a persistent compilation cache serves the session. Numeric hyperparameters are
traced, so runs that differ only in α, β, learning rate or budget compile to the same program
and every such run after the first skips XLA compilation.
"""

from __future__ import annotations

import os

# LLVM's optimisation passes are most of XLA's compile time on CPU and buy little for the tiny
# programs tests run: level 0 cuts compilation about threefold. Set before JAX starts.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
).strip()

import jax  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _compilation_cache(tmp_path_factory):
    cache = str(tmp_path_factory.mktemp("jax_cache"))
    jax.config.update("jax_compilation_cache_dir", cache)
    # What the experiments' --compilation-cache reads: launchers run in tests stay on this cache.
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
