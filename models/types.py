"""Type aliases shared by the pure model code."""

from __future__ import annotations

from typing import Any

import jax

from models.errors import ModelsError as ModelsError

Params = dict[str, Any]
"""A nested ``dict[str, ...]`` pytree of float32 arrays (see docs/INTERFACES.md)."""

PRNGKey = jax.Array
