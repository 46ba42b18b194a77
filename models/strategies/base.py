"""The strategy interface and the shared numeric helpers (pure numpy, float64 accumulation).

Updates are sorted by client before anything is summed, and every sum runs in that order in
float64, so the result never depends on arrival order and the same inputs give bit-identical
output. Accumulating in float64 also makes N identical float32 updates average to exactly
themselves (n_i * x and its partial sums are exact in float64).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from models import pytree
from models.errors import StrategyError

Params = dict[str, Any]
Flat = dict[str, np.ndarray]


@dataclass(frozen=True)
class ClientUpdate:
    """One client's trained params (+ its Fisher diagonal, FedCurv u and v) for one round."""

    client: str
    params: Params
    num_samples: int
    fisher: Params | None = None
    u: Params | None = None
    v: Params | None = None

    @classmethod
    def from_sections(
        cls, client: str, num_samples: int, sections: Mapping[str, Params]
    ) -> ClientUpdate:
        """An update from a decoded blob's sections (`params`, optional `fisher`, `u`, `v`)."""
        return cls(
            client=client,
            params=sections["params"],
            num_samples=num_samples,
            fisher=sections.get("fisher"),
            u=sections.get("u"),
            v=sections.get("v"),
        )


@dataclass(frozen=True)
class AggregateResult:
    """The new model, its aggregated Fisher, per-client weights, exclusions, and server state.

    `excluded` maps a client to `"<code>: <detail>"`; `u` and `v` are FedCurv's published sums.
    """

    params: Params
    fisher: Params | None
    weights: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    state: Params = field(default_factory=dict)
    u: Params | None = None
    v: Params | None = None


class Strategy(Protocol):
    """What `get_strategy` returns: pure `init` and `aggregate` (Flower-style)."""

    @property
    def name(self) -> str:
        """The strategy's registered name (goes into the manifest)."""
        ...

    def init(self, base_params: Params) -> Params:
        """Server state for a fresh federation (an empty dict when stateless)."""
        ...

    def aggregate(
        self, base_params: Params, updates: Sequence[ClientUpdate], state: Params | None = None
    ) -> AggregateResult | None:
        """Merge `updates` into a new model; None when there is nothing to aggregate."""
        ...


class Stateless:
    """Mixin for strategies that carry no server state between rounds."""

    def init(self, base_params: Params) -> Params:
        """Stateless: an empty dict."""
        return {}


def prepare(updates: Sequence[ClientUpdate]) -> tuple[list[ClientUpdate], dict[str, str]]:
    """Sort by client, refuse duplicates, and set aside updates that carry no samples."""
    ordered = sorted(updates, key=lambda u: u.client)
    clients = [u.client for u in ordered]
    if len(set(clients)) != len(clients):
        dupes = sorted({c for c in clients if clients.count(c) > 1})
        raise StrategyError(f"more than one update from client(s) {dupes}")
    kept = [u for u in ordered if u.num_samples > 0]
    excluded = {u.client: "zero_samples: num_samples is 0" for u in ordered if u.num_samples <= 0}
    return kept, excluded


def flat64(tree: Mapping[str, Any]) -> Flat:
    """Flatten a params tree to float64 numpy arrays (sorted names)."""
    return {name: np.asarray(leaf, dtype=np.float64) for name, leaf in pytree.flatten(tree).items()}


def check_same_names(trees: Sequence[Flat], what: str, like: Flat) -> None:
    """Every tree must have exactly `like`'s names and shapes."""
    for tree in trees:
        if tree.keys() != like.keys():
            diff = sorted(set(tree) ^ set(like))[:5]
            raise StrategyError(f"{what} trees differ from the base in {diff}")
        for name, array in tree.items():
            if array.shape != like[name].shape:
                raise StrategyError(
                    f"{what} {name!r} has shape {array.shape}, base {like[name].shape}"
                )


def to_tree(flat: Flat, dtype: Any = np.float32) -> Params:
    """Nest a flat float64 result back into a params tree of `dtype` (float32 by default)."""
    return pytree.unflatten({name: array.astype(dtype) for name, array in flat.items()})


def weighted_sum(flats: Sequence[Flat], weights: Sequence[float]) -> Flat:
    """Σ w_i x_i per leaf, summed in the given (client) order in float64."""
    out: Flat = {}
    for name in flats[0]:
        acc = np.zeros_like(flats[0][name])
        for flat, weight in zip(flats, weights, strict=True):
            acc += weight * flat[name]
        out[name] = acc
    return out


def sample_mean(flats: Sequence[Flat], counts: Sequence[int]) -> Flat:
    """Σ n_i x_i / Σ n_i (McMahan et al. 2017), exact for identical inputs."""
    total = float(sum(counts))
    return {
        name: acc / total for name, acc in weighted_sum(flats, [float(n) for n in counts]).items()
    }


def sample_shares(updates: Sequence[ClientUpdate]) -> dict[str, float]:
    """n_i / Σ n_j per client."""
    total = sum(u.num_samples for u in updates)
    return {u.client: u.num_samples / total for u in updates}


def fisher_mean(updates: Sequence[ClientUpdate], base: Flat) -> Params | None:
    """Sample-weighted mean of the clients' Fishers (those that sent one); None if none did."""
    having = [u for u in updates if u.fisher is not None]
    if not having:
        return None
    fishers = [flat64(u.fisher) for u in having if u.fisher is not None]
    check_same_names(fishers, "fisher", base)
    return to_tree(sample_mean(fishers, [u.num_samples for u in having]))


def update_params(updates: Sequence[ClientUpdate], base: Flat) -> list[Flat]:
    """The updates' params as float64 flats, checked against the base's names and shapes."""
    flats = [flat64(u.params) for u in updates]
    check_same_names(flats, "params", base)
    return flats


def ranked(flats: Sequence[Flat]) -> dict[str, np.ndarray]:
    """Stack each leaf over clients (axis 0) for coordinate-wise statistics."""
    return {name: np.stack([flat[name] for flat in flats]) for name in flats[0]}


@dataclass(frozen=True)
class Combined:
    """What a strategy's combine step decides: the merged params and who counted how much."""

    params: Flat
    weights: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    u: Flat | None = None
    v: Flat | None = None


Combine = Callable[[list[ClientUpdate], list[Flat], Flat], Combined | None]
"""(included updates sorted by client, their params as float64 flats, base) -> Combined | None."""


def aggregate_with(
    base_params: Params, updates: Sequence[ClientUpdate], combine: Combine
) -> AggregateResult | None:
    """Shared shell: sort and screen updates, combine, then attach the included clients' Fisher."""
    kept, excluded = prepare(updates)
    if not kept:
        return None
    base = flat64(base_params)
    combined = combine(kept, update_params(kept, base), base)
    if combined is None:
        return None
    included = [u for u in kept if u.client in combined.weights]
    return AggregateResult(
        params=to_tree(combined.params),
        fisher=fisher_mean(included, base),
        weights=combined.weights,
        excluded={**excluded, **combined.excluded},
        u=None if combined.u is None else to_tree(combined.u),
        v=None if combined.v is None else to_tree(combined.v),
    )
