"""[federation] client_names: the org's names for its clients, validated strictly."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemons.errors import ConfigError
from daemons.runtime.config import load_config
from tests.daemons.test_config import ADDR, ORG, write

OTHER = "0x" + "22" * 20
TWO = ORG.replace(f'clients = ["{ADDR}"]', f'clients = ["{ADDR}", "{OTHER}"]')


def test_names_load(tmp_path: Path) -> None:
    names = f'client_names = {{ "{ADDR}" = "hospital-a", "{OTHER}" = "lab b" }}\n'
    fed = load_config(
        write(tmp_path, TWO.replace("[training]", names + "[training]")), "org"
    ).federation
    assert fed is not None and fed.client_names == {ADDR: "hospital-a", OTHER: "lab b"}
    assert load_config(write(tmp_path, ORG), "org").federation.client_names == {}  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("names", "needles"),
    [
        ('{ "0x12" = "a" }', ["client_names.0x12", "20-byte"]),
        (f'{{ "0x{"33" * 20}" = "a" }}', ["not in federation.clients"]),
        (f'{{ "{ADDR}" = "" }}', [f"client_names.{ADDR}", "non-empty string"]),
        (f'{{ "{ADDR}" = 3 }}', [f"client_names.{ADDR}", "non-empty string"]),
        (f'{{ "{ADDR}" = "a", "{OTHER}" = "a" }}', ["same name", "distinct"]),
        ('"hospital"', ["federation.client_names", "must be a table"]),
    ],
)
def test_bad_names_are_config_errors(tmp_path: Path, names: str, needles: list[str]) -> None:
    text = TWO.replace("[training]", f"client_names = {names}\n[training]")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), "org")
    for needle in needles:
        assert needle in str(info.value)
