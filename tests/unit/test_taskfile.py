"""Tests for seqharness.taskscan and seqharness.taskfile: the lossless tasks.md index, its edits.

Every fixture is written inline (no dependency on the shared corpus), mirroring
the variations catalogued in real Kiro / cc-sdd / spec-kit files.
"""

from __future__ import annotations

import os
import re
import stat
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqharness.annotations import prose_depends, split_depends, split_requirements
from seqharness.taskfile import (
    STATUS_BY_CELL,
    Annotation,
    Diagnostic,
    StaleTaskError,
    Task,
    TaskFile,
    TaskFileError,
    set_status,
    split_lines,
)
from seqharness.taskscan import load, parse


def P(text: str | bytes) -> TaskFile:
    return parse(text.encode("utf-8") if isinstance(text, str) else text)


def one(text: str | bytes) -> Task:
    tf = P(text)
    assert len(tf.tasks) == 1, [t.title for t in tf.tasks]
    return tf.tasks[0]


def codes(tf: TaskFile) -> list[str]:
    return [d.code for d in tf.diagnostics]


def cell_bytes(tf: TaskFile, t: Task) -> bytes:
    return tf.data[t.cell_start : t.cell_end]


# --------------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("cell", "status", "done"),
    [
        (" ", "todo", False),
        ("x", "done", True),
        ("X", "done", True),
        ("-", "in_progress", False),
        ("~", "queued", False),
        ("/", "in_progress", False),
    ],
)
def test_known_status_cells(cell: str, status: str, done: bool) -> None:
    tf = P(f"- [{cell}] 1. Do it\n")
    t = tf.tasks[0]
    assert (t.cell, t.status, t.done) == (cell, status, done)
    assert cell_bytes(tf, t) == cell.encode()
    assert STATUS_BY_CELL[cell] == status
    assert tf.diagnostics == []


def test_unknown_single_char_cell_is_a_task_reported() -> None:
    tf = P("- [?] 1. Unsure\n- [✅] 2. Emoji tick\n")
    assert [t.status for t in tf.tasks] == ["unknown", "unknown"]
    assert [t.done for t in tf.tasks] == [False, False]
    assert codes(tf) == ["unknown_status", "unknown_status"]


def test_emoji_cell_with_variation_selector() -> None:
    tf = P("- [⏭️] 6. Build alerts **[SKIPPED]**\n")
    t = tf.tasks[0]
    assert t.cell == "⏭️" and t.status == "unknown" and t.id == "6"
    assert cell_bytes(tf, t) == "⏭️".encode() and t.cell_end - t.cell_start == 6
    assert "unknown_status" in codes(tf)


def test_multi_char_cell_needs_an_id() -> None:
    tf = P("- [搁置：] 8. React Web 客户端架构\n- [搁置：] no id here\n- [US#] label maps task\n")
    assert [(t.line, t.cell, t.id) for t in tf.tasks] == [(1, "搁置：", "8")]


@pytest.mark.parametrize(
    "line",
    [
        "- [Vite]ビルドの設定",
        "- [Vite]x",
        "- [Text](https://example.com/page)",
        "- [x](url)",
        "- []",
        "- [] 1. empty box",
        "- [x]text glued",
        "- [ ]*text glued after star",
        "- [US#] label maps task to story",
        "- [too long cell] 1. id",
        "-[ ] 1. no gap after marker",
        "[x] **T1.1** bare",
    ],
)
def test_not_tasks(line: str) -> None:
    assert P(line + "\n").tasks == []


def test_bare_checkbox_reported() -> None:
    tf = P("[x] **T1.1** Add manifest\n")
    assert tf.tasks == [] and codes(tf) == ["bare_checkbox"]


def test_star_plus_and_ordered_bullets_accepted_and_reported() -> None:
    tf = P("* [ ] 1. star\n+ [x] 2. plus\n1. [ ] 3. ordered\n2) [ ] 4. paren\n")
    assert [t.id for t in tf.tasks] == ["1", "2", "3", "4"]
    assert codes(tf) == ["star_or_plus_bullet"] * 2 + ["ordered_list_checkbox"] * 2


def test_prettier_gap_and_spaces_after_box() -> None:
    tf = P("-   [x] 1. Prettier\n- [x]   2. Wide gap\n-\t[ ] 3. Tab gap\n")
    assert [(t.id, t.title) for t in tf.tasks] == [
        ("1", "Prettier"),
        ("2", "Wide gap"),
        ("3", "Tab gap"),
    ]


# --------------------------------------------------------------------------- optional


@pytest.mark.parametrize(
    ("line", "optional", "tid"),
    [
        ("- [ ]* 2.2 Write unit tests", True, "2.2"),
        ("- [x]\\* 3.3 Escaped star", True, "3.3"),
        ("- [ ] 7.9* (P) Performance test", True, "7.9"),
        ("- [ ]* 3. Starred top level", True, "3"),
        ("- [ ] 2.2 Plain", False, "2.2"),
        ("- [ ] 4. Write tests (optional)", False, "4"),
        ("- [ ]*", True, None),
    ],
)
def test_optional_forms(line: str, optional: bool, tid: str | None) -> None:
    t = one(line + "\n")
    assert (t.optional, t.id) == (optional, tid)


# --------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("rest", "tid", "raw_id", "title"),
    [
        ("1. Set up project", "1", "1.", "Set up project"),
        ("1.1 Create models", "1.1", "1.1", "Create models"),
        ("1.1. Define interface", "1.1", "1.1.", "Define interface"),
        ("1.1.1 Third level", "1.1.1", "1.1.1", "Third level"),
        ("0. Zero based", "0", "0.", "Zero based"),
        ("**1.1** Bold id", "1.1", "**1.1**", "Bold id"),
        ("**8.1** ResourceCreate", "8.1", "**8.1**", "ResourceCreate"),
        ("**Task 1.1**: Создать state", "1.1", "**Task 1.1**:", "Создать state"),
        ("Task 3: Word prefix", "3", "Task 3:", "Word prefix"),
        ("Step 2. Install", "2", "Step 2.", "Install"),
        ("T001 Add deps", "T001", "T001", "Add deps"),
        ("T0.1.1: Spec kit dotted", "T0.1.1", "T0.1.1:", "Spec kit dotted"),
        ("A1. 新增字段", "A1", "A1.", "新增字段"),
        ("1) Paren", "1", "1)", "Paren"),
        ("1: Colon", "1", "1:", "Colon"),
        ("1.1.1: Colon dotted", "1.1.1", "1.1.1:", "Colon dotted"),
        ("12.", "12", "12.", ""),
        ("All requirements implemented", None, None, "All requirements implemented"),
        ("60fps animation", None, None, "60fps animation"),
        ("100% Natural Language", None, None, "100% Natural Language"),
        ("20 unit tests passing", None, None, "20 unit tests passing"),
        ("10a. Alphanumeric", None, None, "10a. Alphanumeric"),
        ("2.5x faster", None, None, "2.5x faster"),
        ("", None, None, ""),
    ],
)
def test_id_forms(rest: str, tid: str | None, raw_id: str | None, title: str) -> None:
    t = one(f"- [ ] {rest}\n")
    assert (t.id, t.raw_id, t.title) == (tid, raw_id, title)


def test_malformed_id_reported() -> None:
    tf = P("- [ ] 10a. Alphanumeric suffix\n")
    assert tf.tasks[0].id is None and codes(tf) == ["malformed_id"]


def test_title_is_raw_and_stripped() -> None:
    t = one("- [x] 17.5 ~~dev/prod 분리~~ — 결정 (P) ✅  \r\n")
    assert t.title == "~~dev/prod 분리~~ — 결정 (P) ✅"


# --------------------------------------------------------------------------- nesting


def ids_and_parents(tf: TaskFile) -> list[tuple[str | None, str | None, int]]:
    return [(t.id, t.parent.id if t.parent else None, t.depth) for t in tf.tasks]


def test_nesting_two_spaces() -> None:
    tf = P("- [ ] 1. A\n  - [x] 1.1 B\n  - [ ] 1.2 C\n- [ ] 2. D\n")
    assert ids_and_parents(tf) == [("1", None, 0), ("1.1", "1", 1), ("1.2", "1", 1), ("2", None, 0)]
    assert [t.id for t in tf.tasks[0].children] == ["1.1", "1.2"]
    assert [t.id for t in tf.roots()] == ["1", "2"]
    assert not any(t.parent_by_id for t in tf.tasks)


def test_nesting_four_spaces_and_three_levels() -> None:
    tf = P("- [ ] 1. A\n    - [ ] 1.1 B\n        - [ ] 1.1.1 C\n    - [ ] 1.2 D\n")
    assert ids_and_parents(tf) == [
        ("1", None, 0),
        ("1.1", "1", 1),
        ("1.1.1", "1.1", 2),
        ("1.2", "1", 1),
    ]
    assert [t.id for t in tf.tasks[0].descendants()] == ["1.1", "1.1.1", "1.2"]


def test_nesting_tabs_and_odd_indent() -> None:
    text = "- [ ] 1.0 Parent\n\t- [ ] 1.1 Tab child\n\t- [ ] 1.2 Tab child\n- [ ] 3.0 P\n       - [x] 3.1 Seven spaces\n"
    tf = P(text)
    assert ids_and_parents(tf) == [
        ("1.0", None, 0), ("1.1", "1.0", 1), ("1.2", "1.0", 1), ("3.0", None, 0), ("3.1", "3.0", 1)
    ]  # fmt: skip
    assert [t.indent for t in tf.tasks] == [0, 4, 4, 0, 7]


def test_tab_width_is_next_multiple_of_four() -> None:
    tf = P("- [ ] 1. a\n  \t- [ ] 1.1 b\n")
    assert tf.tasks[1].indent == 4


def test_flat_cc_sdd_layout_uses_id_parent() -> None:
    tf = P(
        "- [ ] 1. Foundation\n- [ ] 1.1 Init\n  - detail\n- [ ] 1.2 More\n- [ ] 2. Next\n- [ ] 2.1 Sub\n"
    )
    assert ids_and_parents(tf) == [
        ("1", None, 0), ("1.1", "1", 1), ("1.2", "1", 1), ("2", None, 0), ("2.1", "2", 1)
    ]  # fmt: skip
    assert [t.parent_by_id for t in tf.tasks] == [False, True, True, False, True]
    assert tf.tasks[1].details == ["  - detail"]


def test_id_parent_only_within_the_section() -> None:
    tf = P("## Phase 1\n- [ ] 1. A\n## Phase 2\n- [ ] 1.1 B\n")
    assert tf.tasks[1].parent is None


def test_indent_id_conflict_indentation_wins() -> None:
    tf = P("- [ ] 5. Top\n  - [x] 5.2 Sub\n  - [x] 5.2.1 Written as a sibling\n")
    assert ids_and_parents(tf) == [("5", None, 0), ("5.2", "5", 1), ("5.2.1", "5", 1)]
    assert codes(tf) == ["indent_id_conflict"]
    assert tf.diagnostics[0].line == 3


def test_heading_resets_nesting() -> None:
    tf = P("- [ ] 1. A\n## Next\n  - [ ] 2. Indented after heading\n")
    assert tf.tasks[1].parent is None


def test_tasks_without_ids_nest_by_indentation() -> None:
    tf = P("- [x] 1. Set up\n  - [x] Update pom.xml\n  - [ ] Add dependency\n")
    assert ids_and_parents(tf) == [("1", None, 0), (None, "1", 1), (None, "1", 1)]


# --------------------------------------------------------------------------- details


def test_details_belong_to_their_own_task_only() -> None:
    text = (
        "- [ ] 2. Implement core\n"
        "  - Parent detail\n"
        "  - [x] 2.1 Create module\n"
        "    - Child detail\n"
        "\n"
        "    Child paragraph after a blank\n"
        "    - _Requirements: 6.1_\n"
        "\n"
        "  - [ ]* 2.2 Tests\n"
        "    - _Requirements: 6.2_\n"
        "  - Back at parent level\n"
        "\n"
        "## Notes\n"
        "- plain note\n"
    )
    tf = P(text)
    t2, t21, t22 = tf.tasks
    assert t2.details == ["  - Parent detail", "  - Back at parent level"]
    assert t21.details == [
        "    - Child detail",
        "",
        "    Child paragraph after a blank",
        "    - _Requirements: 6.1_",
    ]
    assert t22.details == ["    - _Requirements: 6.2_"]
    assert t21.requirements == ("6.1",) and t2.requirements == ()


def test_column_zero_text_ends_the_body() -> None:
    tf = P("- [ ] 1. A\n  - detail\nParagraph at column 0\n  - indented again\n")
    assert tf.tasks[0].details == ["  - detail"]


def test_details_keep_non_ascii_and_replace_invalid_bytes() -> None:
    tf = P(b"- [ ] 1. A\n  - caf\xc3\xa9 \xff bad\n")
    assert tf.tasks[0].details == ["  - café \ufffd bad"]


# --------------------------------------------------------------------------- annotations


def anns(t: Task) -> list[tuple[str, str, str]]:
    return [(a.key, a.norm, a.value) for a in t.annotations]


def test_underscore_annotation() -> None:
    t = one("- [ ] 1. A\n  - _Requirements: 1.1, 2.3_\n")
    assert anns(t) == [("Requirements", "requirements", "1.1, 2.3")]
    assert t.requirements == ("1.1", "2.3")
    assert t.annotations[0].line == 2 and isinstance(t.annotations[0], Annotation)


@pytest.mark.parametrize(
    "key", ["要件", "需求", "対応要件", "Требования", "Requirement", "Validates"]
)
def test_localised_requirement_keys(key: str) -> None:
    t = one(f"- [ ] 1. A\n  - _{key}: 1.1, 1.2_\n")
    assert t.annotations[0].key == key and t.annotations[0].norm == "requirements"
    assert t.requirements == ("1.1", "1.2")


def test_fullwidth_colon_and_no_bullet() -> None:
    t = one("- [ ] 1. A\n  _需求：3.1、3.2_\n")
    assert anns(t) == [("需求", "requirements", "3.1、3.2")]
    assert t.requirements == ("3.1", "3.2")


def test_key_only_italic_forms() -> None:
    t = one(
        "- [ ] 1. A\n  - _Requirements:_ 12\n  - _Boundary:_ ddata wiring\n  - _成熟方案_: 遵循最佳实践\n"
    )
    assert anns(t) == [
        ("Requirements", "requirements", "12"),
        ("Boundary", "boundary", "ddata wiring"),
        ("成熟方案", "成熟方案", "遵循最佳实践"),
    ]
    assert t.requirements == ("12",)


def test_wrapped_annotation() -> None:
    text = "- [ ] 3. A\n  - _Requirements: 3.1–3.3, 4.1,\n    9.1–9.2, 10.1_\n  - Next detail\n"
    tf = P(text)
    t = tf.tasks[0]
    assert anns(t) == [("Requirements", "requirements", "3.1–3.3, 4.1, 9.1–9.2, 10.1")]
    assert t.requirements == ("3.1", "3.2", "3.3", "4.1", "9.1", "9.2", "10.1")
    assert tf.diagnostics == []


def test_wrapped_annotation_unclosed_keeps_first_line() -> None:
    tf = P("- [ ] 1. A\n  - _Requirements: 1.1,\n  - not a continuation\n- [ ] 2. B\n")
    assert anns(tf.tasks[0]) == [("Requirements", "requirements", "1.1,")]
    assert codes(tf) == ["wrapped_annotation_unclosed"]
    assert tf.diagnostics[0].line == 2


def test_inline_annotation_on_title_and_detail() -> None:
    tf = P(
        "- [ ] 3.1 Create types with serde camelCase. _Requirements: 2.1_\n"
        "  - Returns Some(Route::Ncf). _Requirements: 2.2_\n"
    )
    t = tf.tasks[0]
    assert t.title.endswith("_Requirements: 2.1_")  # the title stays raw
    assert t.requirements == ("2.1", "2.2")


def test_bold_property_and_validates() -> None:
    t = one(
        "- [ ]* 3.4 Property test\n  - **Property 1: Bedrock API Invocation**\n  - **Validates: Requirements 1.1, 5.5**\n"
    )
    assert anns(t) == [
        ("Property 1", "property", "Bedrock API Invocation"),
        ("Validates", "requirements", "Requirements 1.1, 5.5"),
    ]
    assert t.requirements == ("1.1", "5.5")


def test_other_keys_and_underscored_keys() -> None:
    t = one(
        "- [ ] 1. A\n"
        "  - _Completed: 2025-11-07_\n"
        "  - _Bug_Condition: input.deposito > input.monto_mensual_\n"
        "  - _Blocked: waiting on infra_\n"
    )
    assert anns(t) == [
        ("Completed", "completed", "2025-11-07"),
        ("Bug_Condition", "bug_condition", "input.deposito > input.monto_mensual"),
        ("Blocked", "blocked", "waiting on infra"),
    ]


def test_italic_without_key_is_not_an_annotation() -> None:
    t = one("- [ ] 1. A\n  - _just emphasis_\n  - snake_case_name in text\n")
    assert t.annotations == []


def test_annotations_of_children_not_in_parent() -> None:
    tf = P("- [ ] 1. A\n  - [ ] 1.1 B\n    - _Requirements: 7_\n")
    assert tf.tasks[0].annotations == [] and tf.tasks[1].requirements == ("7",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.1, 2.3", ["1.1", "2.3"]),
        ("1.1–1.3", ["1.1", "1.2", "1.3"]),
        ("2.1-2.3, 5.5", ["2.1", "2.2", "2.3", "5.5"]),
        ("3.5–4.2", ["3.5–4.2"]),
        ("14", ["14"]),
        ("Req 1–3", ["1", "2", "3"]),
        ("Requirement 2, Requirement 3", ["2", "3"]),
        ("FR-3; R-001", ["FR-3", "R-001"]),
        ("All requirements", ["All requirements"]),
        ("16.5 (16.3 partly)", ["16.5"]),
        ("1.1、1.2", ["1.1", "1.2"]),
        ("", []),
    ],
)
def test_split_requirements(value: str, expected: list[str]) -> None:
    assert split_requirements(value) == expected


# --------------------------------------------------------------------------- depends


@pytest.mark.parametrize(
    ("detail", "expected"),
    [
        ("  - _Depends: 1.2_", ["1.2"]),
        ("  - _Depends on: 1, 2_", ["1", "2"]),
        ("  - _Dependencies: none_", []),
        ("  - _Depends:_ none", []),
        ("  - _依存タスク: -_", []),
        ("  - _依存タスク: 1.1, 1.2_", ["1.1", "1.2"]),
        ("  - Depends on task 1", ["1"]),
        ("  - depends on: 1, 2", ["1", "2"]),
        ("  - depends on T006, T007", ["T006", "T007"]),
        ("  - depends on 3 services", []),
        ("  - Each wave depends on the previous wave", []),
    ],
)
def test_depends_forms(detail: str, expected: list[str]) -> None:
    tf = P(f"- [ ] 1. A\n- [ ] 1.2 B\n- [ ] 9. C\n{detail}\n")
    assert tf.tasks[2].depends == tuple(expected)


def test_depends_in_title_and_dedup() -> None:
    t = one("- [X] T028 Register services — depends on T021, T023\n  - _Depends: T021_\n")
    assert t.depends == ("T021", "T023")


def test_split_depends_and_prose_helpers() -> None:
    assert split_depends("- ") == [] and split_depends("Task 1.2 and 3") == ["1.2", "3"]
    assert prose_depends("Depends on task 3 and 4") == ["3", "4"]


WAVES = """\
# Plan

## Task Dependency Graph

```json
{"waves": [{"id": 0, "tasks": ["1.1"]}, {"id": 1, "tasks": ["1.2", "2.1"]}, {"id": 2, "tasks": ["3"]}]}
```

## Tasks

- [ ] 1. A
  - [ ] 1.1 A1
  - [ ] 1.2 A2
- [ ] 2. B
  - [ ] 2.1 B1
- [ ] 3. C
"""


def test_wave_graph_dependencies() -> None:
    tf = P(WAVES)
    dep = {t.id: t.wave_depends for t in tf.tasks}
    assert dep == {"1": (), "1.1": (), "1.2": ("1.1",), "2": (), "2.1": ("1.1",), "3": ("1.2", "2.1")}
    assert all(t.depends == () for t in tf.tasks)  # explicit dependencies stay apart
    assert tf.diagnostics == []


def test_wave_graph_list_of_lists_and_integer_ids() -> None:
    text = '## Task Dependency Graph (Waves)\n```json\n{"waves": [[1, 2], ["3"]]}\n```\n## Tasks\n- [ ] 1. a\n- [ ] 2. b\n- [ ] 3. c\n'
    assert P(text).by_id("3")[0].wave_depends == ("1", "2")


def test_wave_graph_applies_to_duplicates() -> None:
    text = WAVES + "- [ ] 3. C again\n"
    tf = P(text)
    assert [t.wave_depends for t in tf.by_id("3")] == [("1.2", "2.1"), ("1.2", "2.1")]


def test_wave_graph_malformed_is_a_diagnostic() -> None:
    tf = P('## Task Dependency Graph\n\n```json\n{"waves": [ oops\n```\n- [ ] 1. a\n')
    assert "wave_graph_invalid" in codes(tf) and len(tf.tasks) == 1


def test_json_fence_outside_graph_section_is_ignored() -> None:
    tf = P('## Design\n```json\n{"waves": [["1"], ["2"]]}\n```\n- [ ] 1. a\n- [ ] 2. b\n')
    assert tf.by_id("2")[0].depends == () and tf.by_id("2")[0].wave_depends == ()


# --------------------------------------------------------------------------- regions


def test_fenced_code_is_not_tasks() -> None:
    text = (
        "- [ ] 1. A\n"
        "  ```bash\n"
        "  - [ ] 2. inside an indented fence\n"
        "  # not a heading\n"
        "  ```\n"
        "~~~\n- [ ] 3. inside tildes\n~~~\n"
        "````md\n```\n- [ ] 4. shorter fence does not close\n````\n"
        "- [ ] 5. After\n"
    )
    tf = P(text)
    assert [t.id for t in tf.tasks] == ["1", "5"]
    assert tf.tasks[0].details[:2] == ["  ```bash", "  - [ ] 2. inside an indented fence"]
    assert tf.tasks[1].section == ()


def test_unclosed_fence_runs_to_end() -> None:
    tf = P("- [ ] 1. A\n```\n- [ ] 2. hidden\n")
    assert [t.id for t in tf.tasks] == ["1"] and codes(tf) == ["unclosed_fence"]


def test_inline_backticks_are_not_a_fence() -> None:
    tf = P("```inline``` text\n- [ ] 1. A\n")
    assert len(tf.tasks) == 1


def test_html_comments() -> None:
    text = (
        "<!-- one line -->\n"
        "- [ ] 1. A <!-- trailing note -->\n"
        "<!--\n"
        "- [ ] 2. hidden\n"
        "-->\n"
        "- [ ] 3. After\n"
        "<!-- unclosed\n"
        "- [ ] 4. hidden too\n"
    )
    tf = P(text)
    assert [t.id for t in tf.tasks] == ["1", "3"]
    assert codes(tf) == ["unclosed_comment"]


def test_heading_opening_a_comment() -> None:
    tf = P("## Tasks <!-- begin\n- [ ] 1. hidden\n-->\n- [ ] 2. B\n")
    assert [t.id for t in tf.tasks] == ["2"] and tf.tasks[0].section == ("Tasks <!-- begin",)


def test_task_line_opening_a_comment_stays_a_task() -> None:
    tf = P("- [ ] 1. A <!-- starts\n- [ ] 2. hidden\n-->\n- [ ] 3. B\n")
    assert [t.id for t in tf.tasks] == ["1", "3"]


def test_tables_blockquotes_headings() -> None:
    text = (
        "| Task | Done |\n|---|---|\n| T0.1 | [ ] |\n"
        "> - [ ] 1. quoted\n"
        "### [ ] 0. Team Alignment\n"
        "#### - [ ] 0.1 Rename view\n"
        "### 0.1 Create Directory Structure\n"
        "- [ ] 2. Real\n"
    )
    tf = P(text)
    assert [t.id for t in tf.tasks] == ["2"]
    assert codes(tf) == [
        "checkbox_in_table", "checkbox_in_blockquote", "checkbox_in_heading", "checkbox_in_heading",
        "heading_task_number",
    ]  # fmt: skip


def test_front_matter() -> None:
    tf = P("---\ntitle: x\n- [ ] 1. in front matter\n---\n# Plan\n- [ ] 2. Real\n")
    assert [t.id for t in tf.tasks] == ["2"]
    # An unclosed '---' is a thematic break, not front matter.
    assert [t.id for t in P("---\n- [ ] 1. A\n").tasks] == ["1"]


def test_sections_and_indented_h1_and_closing_hashes() -> None:
    tf = P(
        "  # Approval System ##\n## Phase 1: Core\n- [ ] 1. A\n### Sub\n- [ ] 2. B\n## Phase 2\n- [ ] 3. C\n"
    )
    assert [t.section for t in tf.tasks] == [
        ("Approval System", "Phase 1: Core"),
        ("Approval System", "Phase 1: Core", "Sub"),
        ("Approval System", "Phase 2"),
    ]


@pytest.mark.parametrize(
    "heading",
    [
        "## Notes",
        "## Success Criteria",
        "### ✅ Summary",
        "## Definition of Done",
        "## 完了条件",
        "## Implementation Notes",
    ],
)
def test_summary_sections(heading: str) -> None:
    sub = "#" * (len(heading.split()[0]) + 1)
    tf = P(
        f"# Implementation Plan\n- [ ] 1. Work\n{heading}\n- [x] All requirements implemented\n{sub} Detail\n- [ ] nested\n"
    )
    assert [t.in_summary_section for t in tf.tasks] == [False, True, True]


def test_non_summary_heading() -> None:
    tf = P("# Implementation Plan Summary Tasks\n- [ ] 1. Work\n")
    assert tf.tasks[0].in_summary_section is False


# --------------------------------------------------------------------------- bytes and line endings


def assert_offsets(tf: TaskFile) -> None:
    for t in tf.tasks:
        assert tf.data[t.line_start : t.line_start + len(t.line_bytes)] == t.line_bytes
        assert tf.data[t.cell_start : t.cell_end] == t.cell.encode()
        assert split_lines(tf.data)[t.line - 1] == t.line_bytes
    assert b"".join(tf.lines()) == tf.data


def test_crlf() -> None:
    tf = P(b"# P\r\n- [ ] 1. A\r\n  - [x] 1.1 B\r\n")
    assert tf.newline == b"\r\n" and [t.title for t in tf.tasks] == ["A", "B"]
    assert tf.tasks[1].line_bytes == b"  - [x] 1.1 B\r\n"
    assert_offsets(tf)


def test_lone_cr_and_mixed_and_no_final_newline() -> None:
    tf = P(b"- [ ] 1. A\r- [x] 2. B\n- [ ] 3. C\r\n- [ ] 4. D")
    assert [t.line for t in tf.tasks] == [1, 2, 3, 4]
    assert [t.title for t in tf.tasks] == ["A", "B", "C", "D"]
    assert tf.tasks[3].line_bytes == b"- [ ] 4. D"
    assert_offsets(tf)


def test_bom_is_skipped_for_matching_and_kept() -> None:
    data = b"\xef\xbb\xbf- [ ] 1. First\n- [ ] 2. Second\n"
    tf = P(data)
    assert [t.id for t in tf.tasks] == ["1", "2"]
    assert tf.tasks[0].line_start == 0 and tf.tasks[0].line_bytes.startswith(b"\xef\xbb\xbf")
    assert tf.tasks[0].cell_start == 3 + 3
    assert_offsets(tf)


def test_bom_then_heading() -> None:
    tf = P("\ufeff# 実装計画\n- [ ] 1. タスク\n")
    assert tf.tasks[0].section == ("実装計画",)


def test_non_ascii_offsets_and_invalid_utf8() -> None:
    data = "# 计划 ✅\n- [x] 1. 搜索 🚀\n".encode() + b"- [ ] 2. bad \xff\xfe bytes\n  - \xc3 cut\n"
    tf = P(data)
    assert [t.id for t in tf.tasks] == ["1", "2"]
    assert tf.tasks[1].title == "bad \ufffd\ufffd bytes"
    assert_offsets(tf)


def test_dominant_newline() -> None:
    assert P(b"a\rb\rc\n").newline == b"\r"
    assert P(b"a\nb\nc\r\n").newline == b"\n"
    assert P(b"a\r\nb\n").newline == b"\r\n"  # a tie goes to CRLF
    assert P(b"no terminator").newline == b"\n"


def test_repr_is_short_and_not_recursive() -> None:
    tf = P("- [ ] 1. A\n  - [x] 1.1 B\n    - detail\n")
    text = repr(tf.tasks[1])
    assert "1.1" in text and "detail" not in text and "children" not in text
    assert "data=" not in repr(tf)


def test_empty_and_taskless_files() -> None:
    assert P(b"").tasks == [] and P(b"").diagnostics == []
    assert P("# Plan\n\nJust prose.\n").tasks == []
    assert P(b"\n\n\n").tasks == []


def test_junk_before_heading() -> None:
    tf = P("@.@# Implementation Plan\n- [ ] 1. A\n")
    assert [t.id for t in tf.tasks] == ["1"] and tf.tasks[0].section == ()


def test_nul_byte_is_a_one_line_error() -> None:
    with pytest.raises(TaskFileError) as ei:
        parse(b"- [ ] 1. A\r\nline two\n\x00binary", "x/tasks.md")
    err = ei.value
    assert (err.path, err.line) == ("x/tasks.md", 3)
    assert str(err) == "x/tasks.md:3: binary file, not a tasks list" and "\n" not in str(err)


def test_task_file_error_str_is_one_line() -> None:
    err = TaskFileError("p.md", 4, "two\nlines")
    assert str(err) == "p.md:4: two lines"
    assert issubclass(StaleTaskError, TaskFileError)


def test_load(tmp_path: Path) -> None:
    p = tmp_path / "tasks.md"
    p.write_bytes(b"- [ ] 1. A\n")
    tf = load(p)
    assert tf.path == str(p) and len(tf.tasks) == 1
    with pytest.raises(TaskFileError) as ei:
        load(tmp_path / "missing.md")
    assert ei.value.line == 0 and "cannot read" in str(ei.value) and "\n" not in str(ei.value)


# --------------------------------------------------------------------------- duplicates, lookup


def test_duplicates_kept_and_reported() -> None:
    tf = P("- [x] 6. 更新 useEvents\n\n\n- [ ] 6. 更新 useEvents\n")
    assert len(tf.tasks) == 2 and [t.index for t in tf.by_id("6")] == [0, 1]
    assert codes(tf) == ["duplicate_id"] and tf.diagnostics[0].line == 4
    assert tf.by_id("nope") == []
    assert isinstance(tf.diagnostics[0], Diagnostic)


def test_task_identity_equality() -> None:
    a, b = P("- [ ] 1. Same\n- [ ] 1. Same\n").tasks
    assert a != b and a is not b
    assert a in [a] and b not in [a]


# --------------------------------------------------------------------------- set_status


def write(tmp_path: Path, data: bytes, name: str = "tasks.md") -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def byte_diff(a: bytes, b: bytes) -> int:
    assert len(a) == len(b)
    return sum(x != y for x, y in zip(a, b))


def test_set_status_changes_exactly_one_byte(tmp_path: Path) -> None:
    data = "# 計画\r\n- [ ] 1. 一\r\n  - [ ]* 1.1 二\r\n".encode()
    p = write(tmp_path, data)
    tf = load(p)
    out = set_status(p, tf.tasks[1], "x")
    assert p.read_bytes() == out and byte_diff(data, out) == 1
    assert load(p).tasks[1].status == "done" and out.count(b"\r\n") == 3


def test_set_status_noop_does_not_write(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [x] 1. Done\n")
    tf = load(p)
    before = os.stat(p)
    time.sleep(0.01)
    assert set_status(p, tf.tasks[0], "x") == b"- [x] 1. Done\n"
    after = os.stat(p)
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_set_status_keeps_permissions(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A\n")
    os.chmod(p, 0o600)
    set_status(p, load(p).tasks[0], "-")
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600 and p.read_bytes() == b"- [-] 1. A\n"


def test_set_status_refuses_multibyte_cell(tmp_path: Path) -> None:
    data = "- [⏭️] 6. Skipped\n".encode()
    p = write(tmp_path, data)
    with pytest.raises(TaskFileError) as ei:
        set_status(p, load(p).tasks[0], "x")
    assert not isinstance(ei.value, StaleTaskError) and ei.value.line == 1
    assert p.read_bytes() == data


def test_set_status_rejects_bad_cell_argument(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A\n")
    with pytest.raises(ValueError):
        set_status(p, load(p).tasks[0], "xx")


def test_set_status_detects_stale_line(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A\n- [ ] 2. B\n")
    tf = load(p)
    p.write_bytes(b"- [ ] 1. A edited\n- [ ] 2. B\n")
    with pytest.raises(StaleTaskError) as ei:
        set_status(p, tf.tasks[0], "x")
    assert ei.value.line == 1 and "\n" not in str(ei.value)
    # The IDE ticked the box itself: the fingerprint no longer matches either.
    p.write_bytes(b"- [ ] 1. A\n- [x] 2. B\n")
    with pytest.raises(StaleTaskError):
        set_status(p, tf.tasks[1], "x")


def test_set_status_prefix_of_longer_line_is_stale(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A")
    tf = load(p)
    p.write_bytes(b"- [ ] 1. A but longer")
    with pytest.raises(StaleTaskError):
        set_status(p, tf.tasks[0], "x")


def test_set_status_follows_a_moved_unique_line(tmp_path: Path) -> None:
    p = write(tmp_path, b"# P\n- [ ] 1. A\n- [ ] 2. B\n")
    tf = load(p)
    p.write_bytes(b"# P\nInserted line above\n\n- [ ] 1. A\n- [ ] 2. B\n")
    out = set_status(p, tf.tasks[1], "x")
    assert out == b"# P\nInserted line above\n\n- [ ] 1. A\n- [x] 2. B\n"


def test_set_status_refuses_an_ambiguous_move(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A\n")
    tf = load(p)
    p.write_bytes(b"new\n- [ ] 1. A\n- [ ] 1. A\n")
    with pytest.raises(StaleTaskError):
        set_status(p, tf.tasks[0], "x")


def test_set_status_last_line_without_newline_and_bom(tmp_path: Path) -> None:
    data = b"\xef\xbb\xbf- [ ] 1. A\n- [ ] 2. B"
    p = write(tmp_path, data)
    tf = load(p)
    set_status(p, tf.tasks[0], "x")
    out = set_status(p, tf.tasks[1], "X")
    assert out == b"\xef\xbb\xbf- [x] 1. A\n- [X] 2. B"


def test_set_status_missing_file(tmp_path: Path) -> None:
    p = write(tmp_path, b"- [ ] 1. A\n")
    tf = load(p)
    p.unlink()
    with pytest.raises(TaskFileError):
        set_status(p, tf.tasks[0], "x")


# --------------------------------------------------------------------------- round trip and properties


CORPUS_LIKE = """\
@.@# Implementation Plan

## Overview

- [x] 1. Set up project structure and dependencies
  - Create `scripts/` directory
  - _Requirements: 5.1, 5.2_

- [-] 2. Implement core data models
  - [x] 2.1 Create data models module (`data_models.ts`)
    - _Requirements: 6.1–6.5_
  - [ ]* 2.2 Write unit tests
    - **Property 1: Round trip**
    - **Validates: Requirements 1.1**
- [~] 3. Queued
- [ ] 3.1 Flat child
  - _Depends: 2.1_
| a | [ ] |
<!-- note -->
## Notes
- [ ] Tasks marked with `*` are optional
"""


def test_round_trip_and_offsets_of_a_realistic_file() -> None:
    for nl in (b"\n", b"\r\n", b"\r"):
        data = CORPUS_LIKE.encode().replace(b"\n", nl)
        tf = P(data)
        assert len(tf.tasks) == 7
        assert_offsets(tf)


def test_parse_speed_is_linear_enough() -> None:
    lines = []
    for i in range(1, 2501):
        lines.append(f"- [ ] {i}. Task {i}\n")
        lines.extend(
            f"  - [x] {i}.{k} Sub {k}\n    - _Requirements: {i}.{k}_\n" for k in range(1, 4)
        )
    data = "".join(lines).encode()
    t0 = time.perf_counter()
    tf = parse(data)
    elapsed = time.perf_counter() - t0
    assert len(tf.tasks) == 10_000
    assert elapsed < 2.0  # ~0.1 s expected; this only catches quadratic behaviour


_cells = st.sampled_from([" ", "x", "X", "-", "~", "/", "?", "⏭️", "搁置：", "", "Vite"])
_ids = st.sampled_from(
    [
        "",
        "1. ",
        "1.1 ",
        "2.3.4 ",
        "0. ",
        "**1.1** ",
        "**Task 1.1**: ",
        "T001 ",
        "A1. ",
        "7.9* ",
        "60fps ",
        "10a. ",
    ]
)
_indent = st.sampled_from(["", "  ", "    ", "\t", "       ", " \t"])
_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
    max_size=12,
)


@st.composite
def _task_line(draw: st.DrawFn) -> bytes:
    star = draw(st.sampled_from(["", "*", "\\*"]))
    marker = draw(st.sampled_from(["-", "-", "*", "1.", "-  "]))
    line = f"{draw(_indent)}{marker} [{draw(_cells)}]{star} {draw(_ids)}{draw(_text)}"
    return line.encode()


_other_line = st.one_of(
    _text.map(str.encode),
    st.sampled_from(
        [
            b"",
            b"  ",
            b"# Heading",
            b"## Notes",
            b"## Task Dependency Graph",
            b"```",
            b"```json",
            b"~~~",
            b'{"waves": [["1"], ["1.1"]]}',
            b"<!--",
            b"-->",
            b"<!-- x -->",
            b"---",
            b"| [ ] |",
            b"> - [ ] q",
            b"[x] bare",
            b"  - _Requirements: 1.1,",
            b"    1.2_",
            b"  - _Depends: 1_",
            b"  - **Validates: Requirements 1.1**",
            b"  - depends on task 1",
            b"\xff\xfe\xc3",
            b"\xef\xbb\xbf- [ ] 1. bom",
        ]
    ),
    st.binary(max_size=8).filter(lambda b: b"\x00" not in b and b"\r" not in b and b"\n" not in b),
)
_line = st.one_of(_task_line(), _task_line(), _other_line)
_nl = st.sampled_from([b"\n", b"\n", b"\r\n", b"\r"])


@st.composite
def _document(draw: st.DrawFn) -> bytes:
    lines = draw(st.lists(st.tuples(_line, _nl), max_size=25))
    data = b"".join(line + nl for line, nl in lines)
    if lines and draw(st.booleans()):
        data = data.rstrip(b"\r\n")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    return data


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document())
def test_property_round_trip_and_one_byte_flips(data: bytes) -> None:
    tf = parse(data)
    assert tf.data is data
    assert b"".join(split_lines(data)) == data
    lines = split_lines(data)
    task_lines = [t.line for t in tf.tasks]
    for t in tf.tasks:
        assert lines[t.line - 1] == t.line_bytes
        assert data[t.line_start : t.line_start + len(t.line_bytes)] == t.line_bytes
        assert t.line_start <= t.cell_start < t.cell_end <= t.line_start + len(t.line_bytes)
        if t.cell_end - t.cell_start != 1 or data[t.cell_start] >= 0x80:
            continue
        new = b"x" if t.cell == " " else b" "
        flipped = data[: t.cell_start] + new + data[t.cell_end :]
        assert byte_diff(data, flipped) == (0 if new == t.cell.encode() else 1)
        again = parse(flipped)
        assert len(again.tasks) == len(tf.tasks)
        assert [u.line for u in again.tasks] == task_lines
        assert again.tasks[t.index].cell == new.decode()


@settings(max_examples=50, deadline=None)
@given(_document())
def test_property_set_status_on_disk(data: bytes) -> None:
    import tempfile

    tf = parse(data)
    ascii_tasks = [
        t for t in tf.tasks if t.cell_end - t.cell_start == 1 and data[t.cell_start] < 0x80
    ]
    if not ascii_tasks:
        return
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "tasks.md"
        p.write_bytes(data)
        t = ascii_tasks[0]
        new = " " if t.cell != " " else "x"
        out = set_status(p, t, new)
        assert p.read_bytes() == out and byte_diff(data, out) == 1
        assert len(parse(out).tasks) == len(tf.tasks)


# --------------------------------------------------------------------------- fast paths
# The scanner tries cheaper regexes for the dominant line shapes first.  They
# are only allowed to be faster, never different: these properties compare
# them with the general patterns on lines built to sit on their edges.

_fast_ids = st.sampled_from(
    ["1", "1.", "1.1", "1.1.", "12.3.4", "2.3.", "1.5x", "1.1*", "1.1:", "3)", "1:", "7", "0."]
)
_gap = st.sampled_from(["", " ", "  ", "\t", " \t"])


@st.composite
def _fast_task_line(draw: st.DrawFn) -> str:
    marker = draw(st.sampled_from(["-", "-", "-", "*", "+", "1."]))
    cell = draw(st.sampled_from([" ", "x", "X", "-", "~", "/", "?", ""]))
    star = draw(st.sampled_from(["", "", "*", "\\*", "**"]))
    title = draw(st.sampled_from(["", "Title", "Write `x_y.py`", "  spaced  ", "*b*", "1.2 more"]))
    marker_gap = draw(st.sampled_from([" ", "  ", "\t", ""]))
    return (
        f"{draw(_indent)}{marker}{marker_gap}[{cell}]{star}"
        f"{draw(_gap)}{draw(_fast_ids)}{draw(_gap)}{title}{draw(_gap)}"
    )


@settings(max_examples=1500, deadline=None)
@given(_fast_task_line())
def test_property_fast_task_regex_agrees_with_the_general_one(line: str) -> None:
    from seqharness.scanrules import TASK_FAST_RE as _TASK_FAST_RE
    from seqharness.scanrules import TASK_RE as _TASK_RE

    fast = _TASK_FAST_RE.match(line)
    if fast is None:
        return
    full = _TASK_RE.match(line)
    assert full is not None
    g = full.groups()
    indent, cell, star, tid, dot, title = fast.groups()
    assert (indent, cell, star is not None, tid, tid + (dot or ""), title.strip()) == (
        g[0], g[2], g[3] is not None or g[8] is not None, g[7], g[4], g[12].strip()
    )  # fmt: skip
    assert fast.start(2) == full.start(3)


@pytest.mark.parametrize(
    "line",
    ["- [ ] 1. Build", "  - [x] 2.3 Test it", "- [ ]* 4.1 Optional", "\t- [-] 10.2.1. Deep"],
)
def test_dominant_task_shapes_take_the_fast_path(line: str) -> None:
    from seqharness.scanrules import TASK_FAST_RE as _TASK_FAST_RE

    assert _TASK_FAST_RE.match(line) is not None


# The original, lazy form of the annotation fast path: the reference it must equal.
_LAZY_ANNOTATION_RE = re.compile(
    r"(?:[-*+][ \t]+)?_([^\W_][\w ]{0,39}?)[ \t]*[:：][ \t]*(?!_)(.*?)[ \t]*_[ \t]*$"
)


@st.composite
def _annotation_line(draw: st.DrawFn) -> str:
    parts = [
        draw(st.sampled_from(["", "- ", "* ", "-\t", "1. "])),
        "_",
        draw(st.sampled_from(["Requirements", "Req", "要件", "Depends on", "a_b", "_x", "K" * 45, ""])),
        draw(st.sampled_from(["", " ", "  ", "\t", " _"])),
        draw(st.sampled_from([":", "：", "", "::"])),
        draw(_gap),
        draw(st.sampled_from(["", "_", "1.1, 2.3", "a_b", "x _y", "  ", "1.1_2"])),
        draw(_gap),
        draw(st.sampled_from(["_", "", "__", "_x", "_ "])),
        draw(_gap),
    ]
    return "".join(parts)


@settings(max_examples=1500, deadline=None)
@given(_annotation_line())
def test_property_greedy_annotation_regex_equals_the_lazy_one(line: str) -> None:
    from seqharness.annotations import FAST_LINE_RE

    lazy = _LAZY_ANNOTATION_RE.match(line)
    greedy = FAST_LINE_RE.match(line)
    assert (lazy is None) == (greedy is None)
    if greedy is not None:
        key, value = greedy.groups()
        assert (key.rstrip(" "), value.rstrip(" \t")) == lazy.groups()
