"""The `[training]` table reaches the optimizer whole (daemons/client/job.py::train_config)."""

from __future__ import annotations

import dataclasses

from daemons.client.job import train_config
from daemons.config import TrainingConfig
from models.training import OptimizerRecipe


def test_every_optimizer_field_comes_from_the_training_table() -> None:
    recipe_fields = {f.name for f in dataclasses.fields(OptimizerRecipe)} - {"seed"}
    table_fields = {f.name for f in dataclasses.fields(TrainingConfig)}
    assert recipe_fields <= table_fields, recipe_fields - table_fields


def test_train_config_copies_each_field_by_name_and_adds_the_seed() -> None:
    table = TrainingConfig(
        epochs=3, batch_size=7, learning_rate=0.125, optimizer="adam", momentum=0.5
    )
    recipe = train_config(table, seed=41)
    assert recipe == OptimizerRecipe(
        epochs=3, batch_size=7, learning_rate=0.125, optimizer="adam", momentum=0.5, seed=41
    )
