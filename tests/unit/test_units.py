"""Dispatch units: grouping, naming, ordering, dependency errors."""

from __future__ import annotations

import textwrap

import pytest

from seqharness.errors import SpecError
from seqharness.taskscan import parse
from seqharness.units import build_units, slugify


def units_of(text: str, granularity: str = "parent"):
    return build_units(parse(textwrap.dedent(text).lstrip().encode(), "tasks.md"), granularity)


NESTED = """
    - [ ] 1. Alone
    - [ ] 2. Parent
      - [ ] 2.1 Child
        - [ ] 2.1.1 Grandchild
      - [ ]* 2.2 Optional child
    - [x] 3. Done already
    """


def test_parent_granularity_groups_descendants() -> None:
    units = units_of(NESTED)
    assert [u.name for u in units] == ["1", "2", "3"]
    assert [t.id for t in units[1].tasks] == ["2", "2.1", "2.1.1", "2.2"]
    assert units[1].task_keys == ["2", "2.1", "2.1.1", "2.2"]


def test_leaf_granularity_dispatches_leaves() -> None:
    assert [u.name for u in units_of(NESTED, "leaf")] == ["1", "2.1.1", "2.2", "3"]


def test_flat_cc_sdd_layout_groups_by_id() -> None:
    units = units_of("""
        - [ ] 1. Foundation
        - [ ] 1.1 First sub
        - [ ] 1.2 Second sub
        - [ ] 2. Next
        """)
    assert [u.name for u in units] == ["1", "2"]
    assert [t.id for t in units[0].tasks] == ["1", "1.1", "1.2"]


def test_done_in_file_ignores_optional_children_unless_included() -> None:
    units = units_of("""
        - [x] 1. Parent done
          - [x] 1.1 Child done
          - [ ]* 1.2 Optional open
        - [x] 2. Parent done, child open
          - [ ] 2.1 Open child
        """)
    assert units[0].done_in_file(include_optional=False) is True
    assert units[0].done_in_file(include_optional=True) is False
    assert units[1].done_in_file(include_optional=False) is False


def test_names_for_idless_and_duplicate_tasks() -> None:
    units = units_of("""
        - [ ] 6. Same id
        - [ ] 6. Same id again
        - [ ] Update pom.xml with **required** deps
        - [ ] Update pom.xml with **required** deps
        - [ ] 日本語のタスク
        """)
    assert [u.name for u in units] == ["6", "6[2]", "update-pom-xml-with-required-deps",
                                       "update-pom-xml-with-required-deps[2]", "日本語のタスク"]


def test_slugify_limits_and_fallback() -> None:
    assert slugify("x" * 100) == "x" * 40
    assert slugify("$(touch X); `rm`") == "touch-x-rm"
    assert slugify("!!!") == "task"


def test_summary_checklists_are_not_units() -> None:
    units = units_of("""
        # Plan
        - [ ] 1. Real work
        ## Success Criteria
        - [ ] All tests pass
        """)
    assert [u.name for u in units] == ["1"]


def test_dependencies_reorder_stably() -> None:
    units = units_of("""
        - [ ] 1. Uses three
          - _Depends: 3_
        - [ ] 2. Free
        - [ ] 3. Base
        """)
    assert [u.name for u in units] == ["2", "3", "1"]
    assert [d.name for d in units[2].depends_on] == ["3"]


def test_dependency_on_a_subtask_maps_to_its_unit() -> None:
    units = units_of("""
        - [ ] 1. Parent
          - [ ] 1.1 Sub
        - [ ] 2. Needs the sub
          - _Depends: 1.1_
        """)
    assert [d.name for d in units[1].depends_on] == ["1"]


def test_unknown_dependency_names_file_and_line() -> None:
    with pytest.raises(SpecError) as info:
        units_of("""
            - [ ] 1. One
            - [ ] 2. Two
              - _Depends: 9.9_
            """)
    assert str(info.value) == "tasks.md:2: task 2 depends on unknown task '9.9'"


def test_cycle_is_reported_with_its_path() -> None:
    with pytest.raises(SpecError) as info:
        units_of("""
            - [ ] 1. One
              - _Depends: 3_
            - [ ] 2. Two
              - _Depends: 1_
            - [ ] 3. Three
              - _Depends: 2_
            """)
    assert str(info.value).startswith("tasks.md:1: dependency cycle: ")
    assert "1 -> 3 -> 2 -> 1" in str(info.value)


WAVES = """
    ## Task Dependency Graph

    ```json
    {"waves": [{"id": 0, "tasks": ["9.9", "2"]}, {"id": 1, "tasks": ["1"]}]}
    ```

    ## Tasks

    - [ ] 1. Listed in the second wave
    - [ ] 2. Listed in the first wave
    """


def test_wave_graph_orders_units_and_ignores_unknown_ids() -> None:
    units = units_of(WAVES)
    assert [u.name for u in units] == ["2", "1"]
    assert units[1].depends_on == [] and [u.name for u in units[1].after] == ["2"]


def test_contradictory_waves_at_parent_granularity_fall_back_to_file_order() -> None:
    text = """
        ## Task Dependency Graph

        ```json
        {"waves": [{"tasks": ["4.1", "5.1"]}, {"tasks": ["4.2", "5.2"]}]}
        ```

        - [ ] 4. Four
          - [ ] 4.1 a
          - [ ] 4.2 b
        - [ ] 5. Five
          - [ ] 5.1 c
          - [ ] 5.2 d
        """
    assert [u.name for u in units_of(text)] == ["4", "5"]
    assert [u.name for u in units_of(text, "leaf")] == ["4.1", "5.1", "4.2", "5.2"]
