"""`imagent serve` options: loopback by default, a warning for any other address, clean usage errors."""

from __future__ import annotations

import pytest

from tests.helpers import run_cli


@pytest.fixture
def launched(monkeypatch: pytest.MonkeyPatch, tmp_path) -> list:
    import agent.web.layout as layout

    calls: list = []
    monkeypatch.setattr(layout, "launch", lambda config, **kw: calls.append((config, kw)))
    monkeypatch.setenv("IMAGENT_HOME", str(tmp_path))
    return calls


def test_binds_loopback_by_default(launched, capsys) -> None:
    code, out, err = run_cli(["serve", "--port", "7999"], capsys)
    assert code == 0 and "warning" not in err
    config, kw = launched[0]
    assert kw["host"] == "127.0.0.1" and kw["port"] == 7999
    assert config.model == "offline" and config.root.is_dir()
    assert not config.work.exists(), "the download folder is removed when the server stops"


def test_other_hosts_warn(launched, capsys) -> None:
    code, _, err = run_cli(["serve", "--host", "0.0.0.0"], capsys)
    assert code == 0 and "warning" in err and "no login" in err
    assert launched[0][1]["host"] == "0.0.0.0"


@pytest.mark.parametrize("args, words", [(["--port", "0"], "not a port"), (["--max-upload-mb", "0"], "above 0")])
def test_usage_errors(launched, capsys, args, words) -> None:
    code, _, err = run_cli(["serve", *args], capsys)
    assert code == 2 and words in err and not launched


def test_upload_limit_reaches_the_server(launched, capsys) -> None:
    run_cli(["serve", "--max-upload-mb", "5", "--max-pixels", "1000000"], capsys)
    config = launched[0][0]
    assert config.max_upload_bytes == 5 * 2**20 and config.max_pixels == 1_000_000
