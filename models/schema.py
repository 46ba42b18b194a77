"""FederationSchema: which sections models and updates carry, their templates and limits.

One place decides, from the task's parameter template, the local penalty and the strategy,
what a federation's blobs hold: ``params`` always; ``fisher`` where EWC/FedCurv or a
Fisher-reading strategy uses it; FedCurv's ``u``/``v`` where the penalty is FedCurv; the
org's ``server_state`` (e.g. FedAdam's moments), which clients cannot predict. The org
(judging updates, publishing models) and the client (checking the base, encoding its
update) both ask it, so the two roles cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from models import pytree, registry
from models.validation import Limits

Sections = dict[str, dict[str, Any]]


def fisher_in_use(penalty: str, strategy: str, strategy_uses_fisher: bool = False) -> bool:
    """Whether updates and models of a federation carry the Fisher section."""
    return (
        penalty in registry.FISHER_PENALTIES
        or strategy in registry.FISHER_STRATEGIES
        or strategy_uses_fisher
    )


def _zeros_like(tree: Mapping[str, Any]) -> dict[str, Any]:
    flat = pytree.flatten(tree)
    return pytree.unflatten({p: np.zeros(np.shape(a), np.float32) for p, a in flat.items()})


@dataclass(frozen=True, eq=False)
class FederationSchema:
    """The blob layout of one federation: ``template`` is a params-shaped tree (zeros)."""

    template: Mapping[str, Any]
    penalty: str = "none"
    strategy: str = "fedavg"
    strategy_uses_fisher: bool = False

    @classmethod
    def of(
        cls, params: Mapping[str, Any], penalty: str, strategy: str, uses_fisher: bool = False
    ) -> FederationSchema:
        """A schema whose shapes are those of ``params`` (a task's template, or any params)."""
        return cls(_zeros_like(params), penalty, strategy, uses_fisher)

    @property
    def fisher(self) -> bool:
        """Whether the Fisher diagonal is computed, sent and kept."""
        return fisher_in_use(self.penalty, self.strategy, self.strategy_uses_fisher)

    @property
    def curvature(self) -> bool:
        """Whether updates carry FedCurv's ``u = F`` and ``v = F * params``."""
        return self.penalty == "fedcurv" and self.fisher

    def update_template(self, base: Mapping[str, Any] | None = None) -> Sections:
        """The sections, keys and shapes a client update must have.

        With ``base`` (the round's base params, checked to have the template's shapes) the
        params section holds its values, so a norm bound on the change from the base works.
        """
        shapes = dict(self.template)
        template: Sections = {"params": shapes, "fisher": shapes}
        if base is not None:
            self.check_params(base, "base params")
            template["params"] = dict(base)
        if self.penalty == "fedcurv":
            template.update({"u": shapes, "v": shapes})
        return template

    def update_limits(self, max_bytes: int, **bounds: Any) -> Limits:
        """The org's bounds for updates; the Fisher may be absent where nothing reads it."""
        optional = frozenset() if self.fisher else frozenset({"fisher"})
        return Limits(max_bytes=max_bytes, optional_sections=optional, **bounds)

    def check_params(self, params: Mapping[str, Any], what: str) -> None:
        """Raise ValueError unless ``params`` has exactly the template's paths and shapes."""
        want = {p: np.shape(a) for p, a in pytree.flatten(self.template).items()}
        got = {p: np.shape(a) for p, a in pytree.flatten(params).items()}
        if want != got:
            diff = sorted(p for p in set(want) | set(got) if want.get(p) != got.get(p))[:5]
            raise ValueError(f"{what} differ from the task's parameter template at {diff}")

    def model_template(self) -> Sections:
        """The sections a client checks in a base model (u, v, server state pass through)."""
        shapes = dict(self.template)
        return {"params": shapes, "fisher": shapes}

    def model_limits(self, max_bytes: int) -> Limits:
        """The client's bounds for base models (a base from Fisher-less rounds has none)."""
        return Limits(
            max_bytes=max_bytes,
            passthrough_sections=frozenset({"server_state", "u", "v"}),
            optional_sections=frozenset({"fisher"}),
        )

    def initial_sections(self, params: Mapping[str, Any]) -> Sections:
        """Round 0's model: the seeded params, with an all-zero Fisher where one is kept."""
        sections: Sections = {"params": dict(params)}
        if self.fisher:
            sections["fisher"] = _zeros_like(params)
        return sections

    def update_sections(self, params: Sections, fisher: Mapping[str, Any] | None) -> Sections:
        """An update's sections: params, the Fisher (if computed), FedCurv's u = F, v = F*θ."""
        sections: Sections = {"params": dict(params)}
        if fisher is None:
            return sections
        sections["fisher"] = dict(fisher)
        if self.penalty == "fedcurv":
            flat_f, flat_p = pytree.flatten(fisher), pytree.flatten(params)
            sections["u"] = sections["fisher"]
            sections["v"] = pytree.unflatten({k: flat_f[k] * flat_p[k] for k in flat_f})
        return sections
