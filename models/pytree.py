"""Nested-dict pytrees <-> flat `/`-joined paths, the naming the blob codec stores tensors under.

Only nested `dict[str, ...]` trees are supported on purpose: every params, fisher and server
state tree in fedchain is one, and a flat name must map back to exactly one position.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

SEP = "/"


def _check_key(key: object, where: str) -> str:
    """Return `key` if it can be a path segment, else raise ValueError naming where it sits."""
    if not isinstance(key, str) or not key or SEP in key:
        raise ValueError(
            f"pytree key {key!r} at {where or '<root>'!r} must be a non-empty str without {SEP!r}"
        )
    return key


def _walk(tree: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    """Yield (path, leaf) pairs depth-first in sorted key order."""
    for key in sorted(tree, key=str):
        path = f"{prefix}{SEP}{_check_key(key, prefix)}" if prefix else _check_key(key, prefix)
        value = tree[key]
        if isinstance(value, Mapping):
            yield from _walk(value, path)
        else:
            yield path, value


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten a nested dict to `{"a/b/c": leaf}` in sorted order; empty sub-dicts vanish."""
    if prefix:
        _check_key(prefix, "")
    return dict(_walk(tree, prefix))


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Rebuild the nested dict from `/`-joined paths; raises ValueError on conflicting paths."""
    root: dict[str, Any] = {}
    for path in sorted(flat):
        parts = path.split(SEP)
        node = root
        for depth, part in enumerate(parts):
            _check_key(part, SEP.join(parts[:depth]))
            if depth == len(parts) - 1:
                if part in node:
                    raise ValueError(f"path {path!r} is both a leaf and a subtree")
                node[part] = flat[path]
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(
                        f"path {path!r} goes through the leaf {SEP.join(parts[: depth + 1])!r}"
                    )
                node = child
    return root


def leaves(tree: Mapping[str, Any]) -> list[Any]:
    """The leaves of a nested dict in the same sorted order `flatten` uses."""
    return [leaf for _, leaf in _walk(tree, "")]


def map_leaves(fn: Any, tree: Mapping[str, Any]) -> dict[str, Any]:
    """Apply `fn` to every leaf, keeping the nesting."""
    return {k: map_leaves(fn, v) if isinstance(v, Mapping) else fn(v) for k, v in tree.items()}
