"""Utility calls (titles, summaries): format checks by code, exact per-check verdicts on known answers, and
exact scores for a scripted model over the project's 12 items."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from engines.evals.completions import ModelClient
from engines.evals.utility import check, guess_language, load_items, parse_items, run_items, utility_metrics
from tests.support.scripted_openai import run_scripted_server

ITEMS = {i.key: i for i in load_items()}


def verdicts(answer: str | None, key: str) -> dict[str, bool]:
    return {c.type: c.passed for c in check(answer, ITEMS[key])}


def test_items_and_their_languages() -> None:
    assert len(ITEMS) == 12
    assert {i.task for i in ITEMS.values()} == {"title", "summary"}
    assert all(guess_language(i.text)[0] == i.lang for i in ITEMS.values())
    assert all(i.text in i.prompt() and str(i.max_words) in i.prompt() for i in ITEMS.values())
    with pytest.raises(ValueError, match="line 1"):
        parse_items(['{"id": "x"}'])
    with pytest.raises(ValueError, match="title\\|summary"):
        parse_items(['{"id": "x", "task": "poem", "lang": "en", "text": "t", "max_words": 3}'])


def test_title_checks() -> None:
    good = {"non_empty": True, "single_line": True, "length": True, "no_quotes": True, "no_preamble": True,
            "language_kept": True}  # fmt: skip
    assert verdicts("Solar Panels for Every Public School", "title-en-solar") == good
    assert verdicts("“Solar Panels for Schools”", "title-en-solar")["no_quotes"] is False
    assert verdicts("Solar panels for schools.", "title-en-solar")["no_quotes"] is False
    assert verdicts("Title: Solar Panels for Schools", "title-en-solar")["no_preamble"] is False
    assert verdicts("Solar\nPanels", "title-en-solar")["single_line"] is False
    assert verdicts("one two three four five six seven eight nine", "title-en-solar")["length"] is False
    assert verdicts("Library Opens on Sundays", "title-de-bibliothek")["language_kept"] is False
    # no function words: decided by the content words shared with the text
    assert verdicts("Stadtbibliothek Sonntagsöffnung", "title-de-bibliothek")["language_kept"] is True
    assert verdicts("Longer Hours Everywhere", "title-de-bibliothek")["language_kept"] is False
    assert verdicts("", "title-en-solar") == {"non_empty": False}


def test_summary_checks() -> None:
    src = ITEMS["sum-en-clinic"].text
    assert verdicts(src, "sum-en-clinic")["length"] is False  # not shorter than the text (and over 40 words)
    assert verdicts("A clinic.", "sum-en-clinic")["length"] is False
    assert verdicts("Here is the summary: a new clinic in the east sees far more patients than planned.",
                    "sum-en-clinic")["no_preamble"] is False  # fmt: skip


ANSWERS = {
    "title-en-solar": "Solar Panels for Every Public School",  # pass
    "title-en-bridge": '"Old Bridge Reopens to Walkers"',  # quotes
    "title-de-bahn": "Bahnstrecke im Sommer gesperrt",  # pass
    "title-de-bibliothek": "Library Opens on Sundays",  # English for German
    "title-fr-marche": "Title: Le marché couvert rouvre",  # preamble
    "title-es-agua": "Sequía: el ayuntamiento pide ahorrar agua en verano y limitar el riego de jardines",  # 14 words
    "sum-en-clinic": "A new clinic in the eastern district saw over nine hundred patients in its first month and "
    "needs two more nurses.",  # pass
    "sum-en-library": "Eine Reparaturwerkstatt in der Hauptstraße hat im ersten Jahr vierhundert Dinge repariert "
    "und sucht Helfer.",  # German for English
    "sum-de-radweg": "Der neue beleuchtete Radweg am Fluss verbindet nach zwei Jahren Bauzeit die Dörfer im Tal "
    "mit der Kreisstadt.",  # pass
    "sum-fr-ecole": "Un jardin.",  # too short
    "sum-es-biblioteca": "La biblioteca municipal presta ahora herramientas a los socios durante una semana y "
    "quiere ampliar el catálogo.",  # pass
    "sum-nl-fiets": "Bij het station is een bewaakte fietsenstalling voor tweeduizend fietsen geopend, de eerste "
    "dag gratis.",  # pass
}


def test_scripted_model_exact_scores() -> None:
    """Titles: 2 of 6 pass; summaries: 4 of 6; all items: 6 of 12. Per check: language 10/12, length 10/12,
    quotes 11/12, preamble 11/12; every answer is non-empty, every title one line."""
    by_prompt = {i.prompt(): ANSWERS[k] for k, i in ITEMS.items()}
    sampling = {"temperature": 0.0, "top_p": 1.0, "max_tokens": 64}
    with run_scripted_server(lambda msg, seed: by_prompt[msg]) as srv:

        async def go() -> dict:  # type: ignore[type-arg]
            async with httpx.AsyncClient(trust_env=False) as http:
                ask = ModelClient(http, srv.base_url + "/v1/chat/completions", "m", sampling, 1234, 30.0)
                return await run_items(list(ITEMS.values()), ask, parallel=2)

        results = asyncio.run(go())
    passed = sorted(k for k, (_, cs) in results.items() if all(c.passed for c in cs))
    assert passed == ["sum-de-radweg", "sum-en-clinic", "sum-es-biblioteca", "sum-nl-fiets", "title-de-bahn",
                      "title-en-solar"]  # fmt: skip
    assert utility_metrics(results) == {
        "title_pass": 2 / 6, "summary_pass": 4 / 6, "format_pass": 0.5,
        "check_pass:language_kept": 10 / 12, "check_pass:length": 10 / 12, "check_pass:no_preamble": 11 / 12,
        "check_pass:no_quotes": 11 / 12, "check_pass:non_empty": 1.0, "check_pass:single_line": 1.0,
    }  # fmt: skip
    assert len(srv.state.asked) == 12
