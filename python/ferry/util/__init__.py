"""Utilities with Ray's import paths (``ray.util``): scheduling strategies."""
from ferry.util import scheduling_strategies
from ferry.util.scheduling_strategies import NodeAffinitySchedulingStrategy

__all__ = ["NodeAffinitySchedulingStrategy", "scheduling_strategies"]
