"""The registry every process uses: the built-ins plus every loadable plugin.

Kept apart from ``registry.py`` so that the graph stays one-way: the
built-ins and the plugin loader build on ``Algorithm`` and ``Registry``, and
only this module puts them together.
"""

from __future__ import annotations

import functools

from algorithms.builtin import BUILTINS
from algorithms.plugins import load_plugins
from algorithms.registry import Registry

__all__ = ["default_registry"]


@functools.cache
def default_registry() -> Registry:
    """The built-ins plus every loadable plugin; built once per process.

    Broken plugins are in ``.reports`` (and logged as warnings), never raised.
    """
    registry = Registry(BUILTINS)
    load_plugins(registry)
    return registry
