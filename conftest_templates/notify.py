"""conftest.py template: post a chat message to a webhook when a task halts.

Slack, Mattermost, Rocket.Chat and Discord (add ``/slack`` to its webhook URL)
accept ``{"text": "..."}``; for another format, change ``message()``.  For a
plain JSON event, a command or a desktop notification you need no conftest:
``--notify-url``, ``--notify-cmd``, ``--notify-desktop``.
"""

import os

from seqharness.notify import post_json

WEBHOOK_URL = os.environ.get("SEQHARNESS_WEBHOOK_URL", "")  # EDIT: or put the URL here


def message(spec, unit, question):
    """The message text: task text and the question only ever travel JSON-encoded."""
    return (f"seqharness: task {unit.name} ({unit.title}) of spec {spec.name} needs a human.\n"
            f"{question}\n"
            f"Answer it, then run seqharness again: it resumes at task {unit.name}.")


def pytest_seqharness_halt(spec, unit, question):
    """A task halted: the run stops and waits for an answer.  A failed post is one line."""
    if not WEBHOOK_URL:
        return
    error = post_json(WEBHOOK_URL, {"text": message(spec, unit, question)}, timeout=10)
    if error:
        print(f"seqharness: webhook not reached: {error}")
