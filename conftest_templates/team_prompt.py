"""conftest.py template: add your team's rules to every prompt."""

from seqharness.prompt import build_prompt

TEAM_RULES = """\
Team rules:
- Write the failing test first, then the code (TDD).
- Run the whole test suite before you say the task is done.
- Keep commits small; do not push.
"""  # EDIT


def pytest_seqharness_build_prompt(unit, context):
    """The built-in prompt plus the rules above (return None to keep the default)."""
    return build_prompt(unit, context) + "\n" + TEAM_RULES
