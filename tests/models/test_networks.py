"""Networks: shapes, parameter counts, the two CNN convolutions agree."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from models.networks import MODEL_NAMES, conv_same_lax, conv_same_slices, num_params
from models.tasks.fashion_mnist import get_model
from models.types import ModelsError

# McMahan et al. 2017: 2NN 199,210 parameters; CNN 1,663,370.
EXPECTED_PARAMS = {"logreg": 7_850, "2nn": 199_210, "cnn": 1_663_370}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_param_count_and_logit_shape(name: str) -> None:
    model = get_model(name)
    params = model.init(jax.random.PRNGKey(0))
    assert num_params(params) == EXPECTED_PARAMS[name]
    x = jnp.zeros((3, *model.input_shape), jnp.float32)
    logits = jax.jit(model.apply)(params, x)
    assert logits.shape == (3, 10)
    assert logits.dtype == jnp.float32


def test_init_is_deterministic_per_key() -> None:
    model = get_model("2nn")
    a = model.init(jax.random.PRNGKey(1))
    b = model.init(jax.random.PRNGKey(1))
    c = model.init(jax.random.PRNGKey(2))
    assert all(
        np.array_equal(u, v) for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    assert not np.array_equal(a["fc1"]["w"], c["fc1"]["w"])


def test_slices_conv_matches_lax_conv() -> None:
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((2, 6, 6, 3)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((5, 5, 3, 4)), jnp.float32)
    a, b = jax.jit(conv_same_slices)(x, w), jax.jit(conv_same_lax)(x, w)
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    # Training differentiates through it: gradients must agree too.
    ga = jax.grad(lambda x, w: jnp.sum(conv_same_slices(x, w) ** 2), argnums=(0, 1))(x, w)
    gb = jax.grad(lambda x, w: jnp.sum(conv_same_lax(x, w) ** 2), argnums=(0, 1))(x, w)
    for u, v in zip(ga, gb, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-3, atol=1e-3)


def test_slices_conv_hand_checked() -> None:
    # A 3x3 all-ones kernel on a 3x3 all-ones image: each output counts its in-bounds neighbours.
    out = conv_same_slices(jnp.ones((1, 3, 3, 1)), jnp.ones((3, 3, 1, 1)))
    np.testing.assert_array_equal(out[0, :, :, 0], [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_cnn_slices_and_lax_give_same_logits() -> None:
    from models.tasks.fashion_mnist import cnn_apply_lax, cnn_apply_slices

    model = get_model("cnn")
    params = model.init(jax.random.PRNGKey(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (2, 28, 28, 1))
    np.testing.assert_allclose(
        jax.jit(cnn_apply_slices)(params, x), jax.jit(cnn_apply_lax)(params, x), atol=1e-4
    )


def test_unknown_model_names_the_choices() -> None:
    with pytest.raises(ModelsError, match="logreg, 2nn, cnn"):
        get_model("resnet")
