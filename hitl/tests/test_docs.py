"""The committed state-machine drawing (in docs/architecture.md) is the models' own."""

import difflib

import pytest
from django.db import models
from django.test.utils import isolate_apps
from django_fsm import FSMField, transition

from hitl import statediagram
from reviews.models import ReviewRequest


def test_the_committed_state_machine_drawing_is_current():
    path = statediagram.DOCUMENT
    text = path.read_text() if path.exists() else ""
    committed = statediagram.committed(text)
    fresh = statediagram.drawing()
    if committed != fresh:
        diff = "\n".join(
            difflib.unified_diff(
                (committed or "").splitlines(),
                fresh.splitlines(),
                "committed",
                "drawn from the models",
                lineterm="",
            )
        )
        pytest.fail(
            f"docs/{path.name} is stale (or lost its markers): run `{statediagram.COMMAND}` and "
            f"commit the result.\n{diff}",
            pytrace=False,
        )


def test_every_transition_is_drawn():
    drawn = statediagram.diagram(ReviewRequest, "state")
    field = ReviewRequest._meta.get_field("state")
    for t in field.get_all_transitions(ReviewRequest):
        assert any(
            line.startswith(f"    {t.source} --> {t.target}: ") and t.name in line
            for line in drawn.splitlines()
        ), t.name
    assert "    [*] --> pending" in drawn
    assert "    pending --> [*]" not in drawn and "    expired --> [*]" in drawn


def test_redrawing_keeps_the_text_around_the_markers():
    text = f"intro\n{statediagram.BEGIN}\nold\n{statediagram.END}\nafter\n"
    redrawn = statediagram.document(text)
    assert redrawn.startswith(f"intro\n{statediagram.BEGIN}\n")
    assert redrawn.endswith(f"{statediagram.END}\nafter\n")
    assert statediagram.committed(redrawn) == statediagram.drawing()
    assert statediagram.document(redrawn) == redrawn
    assert statediagram.document(None).startswith(statediagram.INTRODUCTION)


@isolate_apps("reviews")
def test_a_transition_without_one_arrow_is_refused():
    class Door(models.Model):  # noqa: DJ008
        state = FSMField(default="shut", choices=[("shut", "Shut"), ("open", "Open")])

        class Meta:
            app_label = "reviews"

        @transition(field=state, source="*", target="open")
        def open(self):
            pass

    with pytest.raises(ValueError, match=r"Door\.open"):
        statediagram.diagram(Door, "state")
