"""Pages offer host actions only for provider kinds that have them (core/kinds.py); others say why."""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.ui import seed
from tests.ui.conftest import run_page

REFUSAL = ("provider ds is of kind openai, which has no host actions (warm, unload, cancel and capture need a "
           "provider of kind llama-swap)")


def test_fleet_page_says_why_an_openai_provider_has_no_actions(app_env: Engine) -> None:
    with app_env.begin() as c:
        seed.provider(c, "ds", label="DeepSeek", base_url="https://api.deepseek.com")
        c.execute(text("UPDATE providers SET kind = 'openai' WHERE id = 'ds'"))
        seed.model(c, "ds", "deepseek-chat", state=None)
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    assert REFUSAL in [c.value for c in at.caption]
    assert not [b for b in at.button if b.label in ("Warm model", "Unload model", "Unload all", "Cancel request")]


def test_fleet_page_offers_actions_for_llama_swap(app_env: Engine) -> None:
    with app_env.begin() as c:
        seed.provider(c, "gpu", base_url="http://127.0.0.1:9")
    at = run_page("pages/1_Fleet.py")
    assert not at.exception, at.exception
    assert {"Warm model", "Unload model", "Unload all", "Cancel request"} <= {b.label for b in at.button}
    assert not [c.value for c in at.caption if "no host actions" in c.value]
