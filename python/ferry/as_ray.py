"""Importing this module makes ``import ray`` resolve to ferry in this process.

Put it first in a Ray program, and the program runs on ferry unchanged::

    import ferry.as_ray  # noqa: F401  (before the first `import ray`)
    import ray

It is the one-line form of ``python -m ferry run --as-ray script.py``: after
it, ``ray``, ``ray.exceptions`` (with Ray's exception names),
``ray.experimental.collective``, ``ray.util.scheduling_strategies`` and
``ray.actor`` are ferry's modules, and a part of Ray's API that ferry lacks
fails with an error naming it (ferry._private.ray_compat,
docs/ray-compat.md). Raises ImportError if Ray itself was imported first.
"""
from ferry._private import ray_compat

ray_compat.install()
