"""The systemd unit templates: notify type, restart policy, watchdog, config path, hardening."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "config" / "systemd"
FEDCHAIN = str(Path(sys.executable).parent / "fedchain")
ALL_UNITS = ("fedchain-org.service", "fedchain-client@.service", "fedchain-ipfs.service")


def service(name: str) -> configparser.SectionProxy:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp["Service"]


@pytest.mark.parametrize(
    ("name", "exec_start"),
    [
        ("fedchain-org.service", "fedchain org run --config /etc/fedchain/org.toml"),
        ("fedchain-client@.service", "fedchain client run --config /etc/fedchain/client-%i.toml"),
    ],
)
def test_unit_runs_the_daemon_as_notify_service_with_hardening(name: str, exec_start: str) -> None:
    s = service(name)
    assert s["Type"] == "notify"
    assert s["Restart"] == "on-failure"
    assert s["RestartPreventExitStatus"].split() == ["2", "3"]
    assert s["WatchdogSec"]
    assert s["ExecStart"].endswith(exec_start)
    assert s["User"] == "fedchain"
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "RestrictSUIDSGID"):
        assert s[key] == "yes"
    assert s["ProtectSystem"] == "strict"
    assert "KEY" not in (UNITS / name).read_text().replace("FEDCHAIN_KEYSTORE", "")


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(UNITS / name)
    return cp


def test_the_ipfs_unit_is_a_notify_service_the_daemons_want_and_wait_for() -> None:
    ipfs = service("fedchain-ipfs.service")
    assert ipfs["Type"] == "notify"  # `fedchain ipfs` sends READY=1 once its API answers
    assert " ipfs --repo /var/lib/fedchain/ipfs" in ipfs["ExecStart"]
    assert "$FEDCHAIN_IPFS_ARGS" in ipfs["ExecStart"]  # --peer / --swarm-host from an env file
    assert ipfs["ProtectSystem"] == "strict" and ipfs["User"] == "fedchain"
    for name in ("fedchain-org.service", "fedchain-client@.service"):
        u = unit(name)["Unit"]
        assert "fedchain-ipfs.service" in u["Wants"].split(), name
        assert "fedchain-ipfs.service" in u["After"].split(), name


@pytest.mark.parametrize("name", ALL_UNITS)
def test_every_unit_caps_its_memory(name: str) -> None:
    s = service(name)
    high, top = (_bytes(s[k]) for k in ("MemoryHigh", "MemoryMax"))
    assert 0 < high < top, name  # throttled before the OOM kill


def _bytes(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1]] if text[-1] in units else int(text)


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="needs systemd-analyze (Debian package systemd; make setup installs it)",
)
@pytest.mark.parametrize("name", ALL_UNITS)
def test_systemd_analyze_accepts_the_unit(tmp_path: Path, name: str) -> None:
    text = (UNITS / name).read_text().replace("/opt/fedchain/.venv/bin/fedchain", FEDCHAIN)
    unit = tmp_path / name.replace("@.", "@demo.")
    unit.write_text(text)
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (res.stdout + res.stderr).splitlines() if unit.name in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
