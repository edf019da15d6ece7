"""distral_jax: Distral (Teh et al., NIPS 2017) in JAX.

Modules: ``losses`` (pure per-trajectory losses), ``distributions``, ``tabular`` (exact and
sample-based tabular Distral), ``networks``, ``configs``, ``train`` (the on-device trainer),
``sweeps``, ``analysis`` and ``envs`` (task families). Import what you need; Brax is only loaded
by ``distral_jax.envs.brax_tasks``.
"""

__version__ = "0.1.0"
