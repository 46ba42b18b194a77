"""One list of names: the registry is JAX-free and every module's names come from it."""

import subprocess
import sys

from daemons.runtime import config
from daemons.testnet import spec
from models import penalties, registry, strategies
from models.tasks import fashion_mnist


def test_registry_imports_no_jax_or_numpy() -> None:
    code = "import sys, models.registry; print([m for m in ('jax', 'numpy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_list_is_the_registry() -> None:
    assert config.PENALTIES is registry.PENALTIES is penalties.PENALTY_KINDS
    assert config.STRATEGIES is registry.STRATEGIES is strategies.STRATEGY_NAMES
    assert spec.PENALTIES is registry.PENALTIES and spec.STRATEGIES is registry.STRATEGIES
    assert config.MODELS is registry.MODELS
    assert set(registry.task_models("fashion_mnist")) == set(registry.MODELS)
    for name in registry.MODELS:
        assert fashion_mnist.get_network(name).name == name


def test_plugin_refs_are_checked_for_form() -> None:
    assert registry.check_plugin_ref("my_pkg.my_task:task") is None
    assert registry.check_plugin_ref("my_pkg.my_task:make.task") is None
    assert "not of the form" in str(registry.check_plugin_ref("my-pkg:task"))
    assert "not of the form" in str(registry.check_plugin_ref(":task"))
    assert "attribute" in str(registry.check_plugin_ref("pkg:1x"))
    assert registry.default_model("diabetes") == "linear" and registry.default_model("a:b") == ""
