"""`boocontrol route explain auto:code --tokens 30000`: what a routing policy would pick right now, and why.

Thin: the facts are `gateway.facts.load_facts`, the order is `gateway.ranking.rank`. The gateway's own
in-flight counters and cooldowns live in the gateway process; from here they are not visible, so this
command ranks as if nothing were in flight and nothing cooling down (it says so).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click

from core.settings import Settings

if TYPE_CHECKING:
    from gateway.policies import PolicyBook


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1000:.1f} s" if v >= 10_000 else f"{v:,.0f} ms"


@click.group()
def route() -> None:
    """Routing of auto:* models: the policies and what they would pick right now."""


def _book(settings: Settings) -> PolicyBook:
    from cli.errors import fail
    from gateway.policies import PolicyBook, PolicyError

    try:
        return PolicyBook.load(settings.gateway_policies_path)
    except PolicyError as exc:
        fail(str(exc))


@route.command("policies")
@click.pass_obj
def route_policies(settings: Settings) -> None:
    """The routing policies (auto:* models) with their one-line description and where each comes from."""
    book = _book(settings)
    for p in book.policies:
        click.echo(f"{p.name}\t{p.description}\t({p.source})")


@route.command("explain")
@click.argument("policy")
@click.option("--tokens", type=click.IntRange(min=0), required=True, help="Prompt tokens of the request")
@click.option("--max-tokens", type=click.IntRange(min=0), default=None,
              help="Output tokens asked for (default: what the gateway assumes when a request does not say)")
@click.option("--endpoint", type=click.Choice(["chat", "completions", "embeddings"]), default="chat",
              show_default=True)
@click.pass_obj
def route_explain(settings: Settings, policy: str, tokens: int, max_tokens: int | None, endpoint: str) -> None:
    """Rank the fleet for POLICY: every candidate with each factor and why, then the skipped ones with why."""
    from cli.errors import fail
    from cli.main import require_schema
    from gateway.facts import load_facts
    from gateway.ranking import DEFAULT_MAX_TOKENS, Need, rank
    from warehouse.db import make_engine

    book = _book(settings)
    pol = book.get(policy)
    if pol is None:
        fail(f"unknown policy {policy!r} (known: {', '.join(book.names())}; see `boocontrol route policies`)")
    url = settings.resolved_database_url()
    require_schema(url)
    engine = make_engine(url, pool_size=1)
    try:
        now = datetime.now(UTC)
        facts = load_facts(engine, now)
    finally:
        engine.dispose()
    need = Need(endpoint, tokens, DEFAULT_MAX_TOKENS if max_tokens is None else max_tokens)
    r = rank(pol, need, facts, {}, ())
    click.echo(f"{pol.name}: {pol.description} ({pol.source})")
    click.echo(f"request: {endpoint}, {need.prompt_tokens:,} prompt + {need.max_tokens:,} output tokens; "
               f"facts as of {now:%Y-%m-%d %H:%M:%S} UTC; gateway in-flight counts and cooldowns are not "
               "visible from here (ranked as none)")
    if not r.candidates:
        click.echo("no candidate: nothing in the fleet may serve this request")
    for i, c in enumerate(r.candidates, 1):
        f = c.factors
        click.echo(f"{i:>2}. {c.key}  score {c.score:.3f}  quality {f['quality']:.2f}  speed {f['speed']:.2f}  "
                   f"energy {f['energy']:.2f}  expected {_ms(f.get('expected_ms'))}")
        for reason in c.reasons:
            click.echo(f"      {reason}")
    if r.skipped:
        click.echo("skipped:")
        for key, why in r.skipped:
            click.echo(f"  {key}: {why}")
