"""distral_jax: Distral (Teh et al., NIPS 2017) in JAX.

The data path, one module per step:

    envs (task families)  ->  acting (rollouts [N, E, T], evaluation, policies)
      ->  learners (A2C, PPO: losses vmapped over tasks and envs, one optimiser step)
      ->  train (the state, the jitted loop, the host loop)

Around it: ``losses`` (pure per-trajectory losses, the library users compose), ``two_column``
and ``distributions`` (policy heads), ``networks``, ``configs`` (variants, hyperparameters),
``normalization``, ``tabular`` (exact solvers), ``learners.soft_q`` (the sample-based tabular
agent), ``sweeps`` and ``analysis``. Brax is only imported by ``distral_jax.envs.brax_tasks``.
The mathematics: docs/maths.md.
"""

__version__ = "0.1.0"
