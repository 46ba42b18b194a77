"""Penalties: hand-checked values; transforms match the value's gradient; zero at the anchor."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from models.penalties import (
    Penalty,
    PenaltyError,
    ewc,
    fedcurv,
    fedcurv_others,
    fedprox,
    make_penalty,
)

THETA = {"a": {"w": jnp.array([1.0, 1.0])}, "b": jnp.array([3.0])}
ANCHOR = {"a": {"w": jnp.array([0.0, 0.0])}, "b": jnp.array([1.0])}
FISHER = {"a": {"w": jnp.array([1.0, 2.0])}, "b": jnp.array([0.5])}


def _added_gradient(pen: Penalty, params: dict) -> dict:
    tx = pen.transform()
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = jax.jit(tx.update)(zeros, tx.init(params), params)
    return updates


def _leaves_close(a: dict, b: dict) -> None:
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_ewc_value_and_gradient_by_hand() -> None:
    pen = ewc(ANCHOR, FISHER, lam=2.0)
    # lam/2 * (1*1 + 2*1 + 0.5*(3-1)^2) = 1 * (1 + 2 + 2) = 5
    assert float(jax.jit(Penalty.value)(pen, THETA)) == pytest.approx(5.0)
    grad = _added_gradient(pen, THETA)
    _leaves_close(grad, {"a": {"w": jnp.array([2.0, 4.0])}, "b": jnp.array([2.0])})
    _leaves_close(grad, jax.grad(pen.value)(THETA))


def test_ewc_and_fedprox_gradient_is_zero_at_anchor() -> None:
    for pen in (ewc(ANCHOR, FISHER, 3.0), fedprox(ANCHOR, 0.7)):
        grad = _added_gradient(pen, ANCHOR)
        assert all(not np.any(g) for g in jax.tree.leaves(grad))
        assert float(pen.value(ANCHOR)) == 0.0


def test_fedprox_value_and_gradient_by_hand() -> None:
    pen = fedprox(ANCHOR, mu=0.5)
    assert float(pen.value(THETA)) == pytest.approx(0.25 * (1 + 1 + 4))
    _leaves_close(_added_gradient(pen, THETA), jax.grad(pen.value)(THETA))


def test_ewc_chains_before_sgd() -> None:
    # One SGD step on a zero loss moves theta toward the anchor by lr * lam * F * (theta - a).
    tx = optax.chain(ewc(ANCHOR, FISHER, 1.0).transform(), optax.sgd(0.1))
    zeros = jax.tree.map(jnp.zeros_like, THETA)
    updates, _ = tx.update(zeros, tx.init(THETA), THETA)
    new = optax.apply_updates(THETA, updates)
    np.testing.assert_allclose(new["a"]["w"], [0.9, 0.8])
    np.testing.assert_allclose(new["b"], [3.0 - 0.1 * 0.5 * 2.0])


def test_fedcurv_matches_the_sum_over_other_clients() -> None:
    rng = np.random.default_rng(0)
    fishers = [{"w": jnp.asarray(rng.random(4), jnp.float32)} for _ in range(3)]
    thetas = [{"w": jnp.asarray(rng.standard_normal(4), jnp.float32)} for _ in range(3)]
    u = [f for f in fishers]
    v = [{"w": f["w"] * t["w"]} for f, t in zip(fishers, thetas, strict=True)]
    u_sum = {"w": sum(x["w"] for x in u)}
    v_sum = {"w": sum(x["w"] for x in v)}
    u_oth, v_oth = fedcurv_others(u_sum, v_sum, u[0], v[0])
    pen = fedcurv(u_oth, v_oth, lam=2.0)

    def exact(p: dict) -> jax.Array:
        # lam/2 * sum_{j != 0} F_j (theta - theta_j)^2, written out
        terms = [jnp.sum(fishers[j]["w"] * (p["w"] - thetas[j]["w"]) ** 2) for j in (1, 2)]
        return terms[0] + terms[1]

    theta = {"w": jnp.asarray(rng.standard_normal(4), jnp.float32)}
    _leaves_close(_added_gradient(pen, theta), jax.grad(exact)(theta))
    _leaves_close(jax.grad(pen.value)(theta), jax.grad(exact)(theta))
    # Same value up to a constant: differences between two points agree.
    other = {"w": theta["w"] + 0.5}
    assert float(pen.value(other) - pen.value(theta)) == pytest.approx(
        float(exact(other) - exact(theta)), rel=1e-4
    )
    # Its minimum (value 0) is the Fisher-weighted mean of the other clients.
    centre = {"w": v_oth["w"] / u_oth["w"]}
    assert float(pen.value(centre)) == pytest.approx(0.0, abs=1e-6)


def test_fedcurv_first_round_uses_the_full_sums() -> None:
    u, v = {"w": jnp.ones(2)}, {"w": jnp.zeros(2)}
    assert fedcurv_others(u, v, None, None) == (u, v)
    with pytest.raises(PenaltyError, match="both"):
        fedcurv_others(u, v, u, None)


def test_make_penalty_names_what_is_missing() -> None:
    assert make_penalty("none") is None
    assert make_penalty("ewc", anchor=ANCHOR, fisher=FISHER, lam=1.0) is not None
    with pytest.raises(PenaltyError, match="anchor and fisher"):
        make_penalty("ewc", anchor=ANCHOR)
    with pytest.raises(PenaltyError, match="u_others"):
        make_penalty("fedcurv", lam=1.0)
    with pytest.raises(PenaltyError, match="none, ewc, fedprox, fedcurv"):
        make_penalty("l2")
    with pytest.raises(PenaltyError, match="shape"):
        ewc(ANCHOR, {"a": {"w": jnp.ones(3)}, "b": jnp.ones(1)}, 1.0)


def _random_tree(rng: np.random.Generator, draw: str) -> dict:
    make = getattr(rng, draw)
    return {"a": {"w": jnp.asarray(make((6, 5)), jnp.float32)}, "b": jnp.asarray(make(3))}


def test_gradients_equal_the_closed_forms_they_replaced() -> None:
    # The transform's gradient is jax.grad of the value. For EWC and FedProx it is bit-equal
    # to the hand-written lam * F * (theta - a) and mu * (theta - a) the module used to add;
    # FedCurv's lam * (U' theta - V') is the same up to float32 rounding (grad computes
    # (lam * U') * (theta - V'/U')).
    rng = np.random.default_rng(3)
    theta, anchor = _random_tree(rng, "standard_normal"), _random_tree(rng, "standard_normal")
    fisher = jax.tree.map(lambda a: a * 100.0, _random_tree(rng, "random"))
    u = jax.tree.map(lambda a: a + 0.01, _random_tree(rng, "random"))
    v = jax.tree.map(jnp.multiply, u, _random_tree(rng, "standard_normal"))
    lam = np.float32(7.3)
    closed = [
        (ewc(anchor, fisher, lam), lambda t, a, f: lam * f * (t - a), (anchor, fisher)),
        (fedprox(anchor, lam), lambda t, a: lam * (t - a), (anchor,)),
    ]
    for pen, grad, args in closed:
        got = jax.tree.leaves(_added_gradient(pen, theta))
        for g, want in zip(got, jax.tree.leaves(jax.tree.map(grad, theta, *args)), strict=True):
            np.testing.assert_array_equal(g, want)
    got = _added_gradient(fedcurv(u, v, lam), theta)
    want = jax.tree.map(lambda t, a, b: lam * (a * t - b), theta, u, v)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=1e-5)


def test_fedcurv_without_curvature_does_not_pull() -> None:
    u = {"w": jnp.array([0.0, 2.0])}
    v = {"w": jnp.array([0.0, 2.0])}  # centre 1 where U' = 2; none where U' = 0
    pen = fedcurv(u, v, lam=1.0)
    theta = {"w": jnp.array([5.0, 3.0])}
    np.testing.assert_array_equal(_added_gradient(pen, theta)["w"], [0.0, 4.0])
    assert float(pen.value(theta)) == pytest.approx(4.0)  # 1/2 * 2 * (3 - 1)^2


def test_an_unknown_kind_is_refused_by_name() -> None:
    for build in (
        lambda: Penalty("l2", jnp.float32(1.0), ANCHOR, ANCHOR),
        lambda: make_penalty("l2"),
    ):
        with pytest.raises(PenaltyError, match=r"'l2'.*none, ewc, fedprox, fedcurv"):
            build()


def test_one_transform_serves_every_kind_and_vmaps() -> None:
    # Penalties of one kind stack along a client axis (models.training_many vmaps them).
    pens = [ewc(ANCHOR, FISHER, 1.0), ewc(THETA, FISHER, 2.0)]
    stacked = jax.tree.map(lambda *xs: jnp.stack(xs), *pens)
    values = jax.vmap(Penalty.value, in_axes=(0, None))(stacked, THETA)
    np.testing.assert_allclose(values, [2.5, 0.0])  # lam 1: half the 5.0 above; at its anchor
