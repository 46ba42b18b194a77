"""Local training: exact first steps, masking of the ragged batch, determinism, learning."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.data import DEFAULT_FASHION_MNIST, Dataset, load_idx_dir
from models.evaluate import evaluate
from models.penalties import ewc
from models.tasks.fashion_mnist import get_model
from models.training import OptimizerRecipe, TrainingError, local_train

LOGREG = get_model("logreg")


@functools.lru_cache(maxsize=1)
def _real_subset() -> tuple[Dataset, Dataset]:
    train, test = load_idx_dir(DEFAULT_FASHION_MNIST)
    return train.subset(np.arange(600)), test.subset(np.arange(500))


def _zero_logreg() -> dict:
    return jax.tree.map(jnp.zeros_like, LOGREG.init(jax.random.PRNGKey(0)))


def test_one_sgd_step_by_hand_with_padded_batch() -> None:
    # Zero weights give uniform softmax 0.1; d(CE)/d(b) = 0.1 - onehot, averaged over the
    # 3 real samples only (7 padded slots are masked out of the batch of 10).
    data = Dataset(np.zeros((3, 28, 28, 1), np.float32), np.array([0, 1, 2], np.int32))
    params, metrics = local_train(LOGREG, _zero_logreg(), data, OptimizerRecipe(learning_rate=0.5))
    expected_b = -0.5 * (0.1 - np.array([1 / 3] * 3 + [0.0] * 7))
    np.testing.assert_allclose(params["out"]["b"], expected_b, rtol=1e-6)
    assert metrics.num_samples == 3
    assert metrics.loss == pytest.approx(np.log(10), rel=1e-6)
    assert metrics.accuracy == pytest.approx(1 / 3)  # argmax of ties is class 0


def test_same_seed_same_bits_and_other_seed_differs() -> None:
    train, _ = _real_subset()
    model = get_model("2nn")
    p0 = model.init(jax.random.PRNGKey(0))
    cfg = OptimizerRecipe(epochs=2, batch_size=32, seed=7)
    a, ma = local_train(model, p0, train, cfg)
    b, mb = local_train(model, p0, train, cfg)
    c, _ = local_train(model, p0, train, OptimizerRecipe(epochs=2, batch_size=32, seed=8))
    assert all(
        np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    assert ma == mb
    assert not np.array_equal(a["fc1"]["w"], c["fc1"]["w"])
    # The caller's params survive buffer donation.
    assert np.isfinite(np.asarray(p0["fc1"]["w"])).all()


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_loss_goes_down_on_real_fashion_mnist(optimizer: str) -> None:
    train, test = _real_subset()
    p0 = LOGREG.init(jax.random.PRNGKey(0))
    lr = 0.05 if optimizer == "sgd" else 0.003
    cfg = OptimizerRecipe(epochs=3, batch_size=20, learning_rate=lr, optimizer=optimizer)
    before = evaluate(LOGREG, p0, test)
    params, metrics = local_train(LOGREG, p0, train, cfg)
    after = evaluate(LOGREG, params, test)
    assert after.loss < before.loss - 0.5
    assert after.accuracy > 0.6 > before.accuracy
    assert metrics.num_samples == 600 and 0.6 < metrics.accuracy <= 1.0


def test_huge_ewc_lambda_pins_params_to_anchor() -> None:
    train, _ = _real_subset()
    p0 = LOGREG.init(jax.random.PRNGKey(0))
    ones = jax.tree.map(jnp.ones_like, p0)
    cfg = OptimizerRecipe(learning_rate=0.01)
    free, _ = local_train(LOGREG, p0, train, cfg)
    pinned, metrics = local_train(LOGREG, p0, train, cfg, penalty=ewc(p0, ones, lam=50.0))
    drift = lambda p: float(jnp.abs(p["out"]["w"] - p0["out"]["w"]).max())  # noqa: E731
    assert drift(pinned) < 0.2 * drift(free)
    assert metrics.loss > 0


def test_bad_config_and_empty_data_are_rejected() -> None:
    with pytest.raises(TrainingError, match="optimizer"):
        OptimizerRecipe(optimizer="lbfgs")
    with pytest.raises(TrainingError, match="batch_size"):
        OptimizerRecipe(batch_size=0)
    empty = Dataset(np.zeros((0, 28, 28, 1), np.float32), np.zeros(0, np.int32))
    with pytest.raises(TrainingError, match="empty"):
        local_train(LOGREG, _zero_logreg(), empty, OptimizerRecipe())


def test_evaluate_counts_exactly() -> None:
    # Zero logreg predicts class 0 everywhere: accuracy = share of label 0, loss = log(10).
    data = Dataset(np.zeros((7, 28, 28, 1), np.float32), np.array([0, 0, 1, 2, 3, 0, 4], np.int32))
    m = evaluate(LOGREG, _zero_logreg(), data, batch_size=3)
    assert m.accuracy == pytest.approx(3 / 7)
    assert m.loss == pytest.approx(np.log(10), rel=1e-6)
    assert m.num_samples == 7
