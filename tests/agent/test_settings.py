"""Settings: options > IMAGENT_* variables > ./imagent.toml > ~/.config/imagent/imagent.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.accounting import Accountant, price_of
from agent.errors import UserError
from agent.settings import Settings, load_settings


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for var in ("IMAGENT_MODEL", "IMAGENT_CRITIC", "IMAGENT_PRICES", "IMAGENT_TIMEOUT", "IMAGENT_MAX_COST_USD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return tmp_path


def test_defaults_without_files_or_variables() -> None:
    s = load_settings()
    assert (s.model, s.critic, s.base_url, s.max_cost_usd) == ("offline", "offline", None, None)


def test_precedence_user_file_then_project_file_then_env_then_options(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    user = tmp_path / "config" / "imagent"
    user.mkdir(parents=True)
    (user / "imagent.toml").write_text('model = "anthropic:claude-sonnet-4-5"\ntimeout = 30\n'
                                       'critic = "openai:gpt-4o-mini"\n')
    assert load_settings().model == "anthropic:claude-sonnet-4-5"
    (tmp_path / "work" / "imagent.toml").write_text('model = "ollama:llama3.1"\nbase_url = "http://localhost:11434/v1"\n'
                                                    '[prices."openai:my-model"]\ninput = 3.0\noutput = 12.0\n')
    s = load_settings()
    assert s.model == "ollama:llama3.1" and s.timeout == 30 and s.critic == "openai:gpt-4o-mini"
    assert s.prices["openai:my-model"].output == 12.0
    monkeypatch.setenv("IMAGENT_MODEL", "openai:gpt-4o")
    monkeypatch.setenv("IMAGENT_MAX_COST_USD", "0.25")
    s = load_settings()
    assert s.model == "openai:gpt-4o" and s.max_cost_usd == 0.25 and s.base_url == "http://localhost:11434/v1"
    assert load_settings(model="offline", max_cost_usd=None).model == "offline"
    assert load_settings(model=None).model == "openai:gpt-4o"  # None = not given


def test_bad_settings_name_the_key_and_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "work" / "imagent.toml").write_text('modle = "openai:gpt-4o"\n')
    with pytest.raises(UserError, match=r"'modle'.*unknown setting.*imagent.toml"):
        load_settings()
    (tmp_path / "work" / "imagent.toml").write_text("timeout = -1\n")
    with pytest.raises(UserError, match="'timeout'.*greater than 0"):
        load_settings()
    (tmp_path / "work" / "imagent.toml").write_text("model = \n")
    with pytest.raises(UserError, match="could not read settings"):
        load_settings()
    (tmp_path / "work" / "imagent.toml").unlink()
    monkeypatch.setenv("IMAGENT_PRICES", '{"openai:x": {"input": 1}}')
    with pytest.raises(UserError, match="prices"):
        load_settings()


def test_other_imagent_variables_are_not_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_NO_EMBEDDINGS", "1")  # read elsewhere; must not be refused here
    assert load_settings().model == "offline"


def test_prices_extend_and_override_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGENT_PRICES", '{"openai:gpt-4o-mini": {"input": 1, "output": 2}, '
                                         '"openai:test": {"input": 5, "output": 7}}')
    prices = load_settings().prices
    assert price_of("openai:gpt-4o-mini", prices).input == 1  # the user's price wins
    assert price_of("openai:gpt-4o-mini-2024-07-18").input == 0.15  # dated names use the listed prefix
    assert price_of("openai:gpt-4o-2024-08-06").input == 2.5  # the longest prefix, not gpt-4o-mini
    assert price_of("ollama:llama3.1").input == 0 and price_of("acme:brain") is None
    acct = Accountant(prices=prices)
    acct.record(1, "planner", "openai:test", _Msg(1000, 100), 0.5)
    acct.record(2, "critic", "acme:brain", _Msg(10, 10), 0.1)
    assert acct.cost_usd == pytest.approx((1000 * 5 + 100 * 7) / 1e6)
    assert acct.unpriced == ["acme:brain"] and acct.input_tokens == 1010 and acct.n_calls == 2
    assert [t["turn"] for t in acct.per_turn()] == [1, 2]


def test_settings_reach_the_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langchain_openai")
    from agent.planners import make_planner

    monkeypatch.setenv("IMAGENT_TIMEOUT", "7.5")
    monkeypatch.setenv("IMAGENT_MAX_RETRIES", "4")
    s = load_settings()
    model = make_planner("openai:gpt-4o-mini", base_url="http://127.0.0.1:9/v1", timeout=s.timeout,
                         max_retries=s.max_retries)
    assert model.request_timeout == 7.5 and model.max_retries == 4
    assert Settings.model_fields["max_retries"].description


class _Msg:
    def __init__(self, i: int, o: int) -> None:
        self.usage_metadata = {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}
