"""The `loyalnest` command line refuses values that would reach the ledger malformed."""

from __future__ import annotations

import pytest

from loyalnest.cli import parser

ADD = ["merchants", "add", "--shop", "a.myshopify.com", "--webhook-secret", "s"]


@pytest.mark.parametrize("locale", ["en", "he", "fil"])
def test_merchants_add_takes_a_language_code(locale: str) -> None:
    assert parser().parse_args([*ADD, "--locale", locale]).locale == locale


@pytest.mark.parametrize("locale", ["EN", "he-IL", "e", "english", "", "x" * 300])
def test_merchants_add_refuses_anything_else(
    locale: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parser().parse_args([*ADD, "--locale", locale])

    assert exited.value.code == 2
    assert "not a language code" in capsys.readouterr().err
