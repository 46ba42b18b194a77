"""The systemd unit templates: notify type, restart policy, watchdog, config path, hardening."""

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "config" / "systemd"
FEDCHAIN = str(Path(sys.executable).parent / "fedchain")


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


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
@pytest.mark.parametrize("name", ["fedchain-org.service", "fedchain-client@.service"])
def test_systemd_analyze_accepts_the_unit(tmp_path: Path, name: str) -> None:
    text = (UNITS / name).read_text().replace("/opt/fedchain/.venv/bin/fedchain", FEDCHAIN)
    unit = tmp_path / name.replace("@.", "@demo.")
    unit.write_text(text)
    res = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    problems = [line for line in (res.stdout + res.stderr).splitlines() if unit.name in line]
    assert res.returncode == 0 and not problems, res.stdout + res.stderr
