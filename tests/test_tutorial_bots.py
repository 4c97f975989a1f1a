"""Bots mixed into the tutorials' data set change none of the recipes' numbers: every recipe
leaves out what the edge flagged (``bot = ''``), and so does the independent computation
(tutorial_truth.people). Without those filters the same store gives other numbers."""

from __future__ import annotations

from pathlib import Path

import tutorial_truth as truth
from tutorial_store import BOTS_IN, CLI, DAYS, SEED, START, VISITORS, answers, events, everyday, with_bots_mixed_in

from band.demo.generate import generate

BOTS = 60  # bot visitors beside the 500 people


def test_the_generator_mixes_bots_in_without_changing_the_people() -> None:
    mixed = generate(SEED, VISITORS, DAYS, START, bots=BOTS)
    flagged = [e for e in mixed if e.get("bot")]
    assert {e["bot"] for e in flagged} == {"crawler", "headless", "no_ua", "spam_ref"}
    assert {e["name"] for e in flagged} >= {"session", "page", "scroll", "activity"}
    strip = [{k: v for k, v in e.items() if k != "id"} for e in truth.people(mixed)]
    assert strip == [{k: v for k, v in e.items() if k != "id"} for e in events()]
    assert truth.attribution(mixed) == truth.attribution(events())  # the truth leaves bots out too
    assert truth.funnels(mixed) == truth.funnels(events())


def test_every_recipe_answers_the_same_with_bots_in_the_store() -> None:
    mixed = with_bots_mixed_in(BOTS)
    for recipe in everyday():
        assert mixed[recipe] == answers(recipe), Path(recipe).name
    for key in ("history uid", "history user_id", CLI):
        assert mixed[key] == answers(key), key
    # the bots are in the store and count where a recipe does not leave them out
    changed = [Path(r).name for r in everyday() if mixed[f"{r} {BOTS_IN}"] != mixed[r]]
    assert {"05-attribution.sql", "06-markov-transitions.sql", "08-funnel-by-day.sql", "08-funnel-by-source.sql",
            "10-segments.sql"} <= set(changed), changed
