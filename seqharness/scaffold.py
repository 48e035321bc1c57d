"""``seqharness init``: start a spec, or copy a conftest template, without clobbering.

A team's first minutes with seqharness are a spec folder and perhaps one
customisation (the verification gate, git checkpoints, notifications).
``seqharness init SPEC`` creates ``.kiro/specs/SPEC`` with a starter
``requirements.md``, ``design.md`` and ``tasks.md``; ``--template NAME``
copies ``conftest_templates/NAME.py`` as ``conftest.py`` into the project
root (or the spec folder with ``--into-spec``); ``--list`` shows the
templates.  Existing files are never overwritten, and every step is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import seqharness
from seqharness.errors import EXIT_USAGE

STARTER = {
    "requirements.md": "# Requirements Document\n\n## Introduction\n\nWhat this feature is for.\n\n"
                       "## Requirements\n\n### Requirement 1\n\n"
                       "**User Story:** As a user, I want ..., so that ...\n\n"
                       "#### Acceptance Criteria\n\n1. WHEN ... THEN the system SHALL ...\n",
    "design.md": "# Design Document\n\n## Overview\n\n## Components\n\n## Testing Strategy\n",
    "tasks.md": "# Implementation Plan\n\n"
                "- [ ] 1. Write a failing test for the first acceptance criterion\n"
                "  - _Requirements: 1.1_\n"
                "- [ ] 2. Make the test pass\n"
                "  - _Requirements: 1.1_\n",
}


def templates_dir() -> Path:
    """The shipped templates: ``seqharness/templates`` when installed from a
    wheel, ``conftest_templates/`` in a checkout (editable install)."""
    package = Path(seqharness.__file__).resolve().parent
    installed = package / "templates"
    return installed if installed.is_dir() else package.parent / "conftest_templates"


def template_names() -> list[str]:
    return sorted(p.stem for p in templates_dir().glob("*.py") if not p.name.startswith("_"))


def _first_line(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    doc = text.split('"""', 2)[1] if text.startswith('"""') else ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    return first.removeprefix("conftest.py template: ")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="seqharness init",
        description="Create a spec folder, or copy a conftest template (never overwrites).")
    parser.add_argument("spec", nargs="?", help="spec name or folder (.kiro/specs/NAME is created)")
    parser.add_argument("--template", action="append", default=[], metavar="NAME",
                        help="copy conftest_templates/NAME.py as conftest.py (see --list)")
    parser.add_argument("--into-spec", action="store_true",
                        help="put the conftest.py into the spec folder instead of the project root")
    parser.add_argument("--list", action="store_true", help="list the templates")
    args = parser.parse_args(argv)
    if args.list:
        for name in template_names():
            print(f"{name:16} {_first_line(templates_dir() / (name + '.py'))}")
        return 0
    if not args.spec and not args.template:
        parser.print_usage()
        print("seqharness init: error: give a spec name, --template NAME, or --list")
        return EXIT_USAGE
    unknown = [t for t in args.template if t.removesuffix(".py") not in template_names()]
    if unknown:
        print(f"seqharness init: error: no template {unknown[0]!r} (known: {', '.join(template_names())})")
        return EXIT_USAGE
    if len(args.template) > 1:
        print("seqharness init: error: one template per conftest.py; copy one, then merge the others by hand")
        return EXIT_USAGE
    spec_dir = _spec_dir(args.spec) if args.spec else None
    if args.into_spec and spec_dir is None:
        print("seqharness init: error: --into-spec needs a spec")
        return EXIT_USAGE
    if spec_dir is not None:
        spec_dir.mkdir(parents=True, exist_ok=True)
        for name, text in STARTER.items():
            _write(spec_dir / name, text)
    for template in args.template:
        source = templates_dir() / (template.removesuffix(".py") + ".py")
        target = (spec_dir if args.into_spec and spec_dir is not None else Path.cwd()) / "conftest.py"
        if target.exists():
            print(f"seqharness init: error: {target} exists; not overwritten (merge {source} into it by hand)")
            return 1
        _write(target, source.read_text(encoding="utf-8"), note=f"from template {source.stem}: "
               f"{_first_line(source)} Edit the lines marked EDIT.")
    if spec_dir is not None:
        print(f"next: edit {spec_dir / 'tasks.md'}, then run: seqharness {spec_dir} --backend ...")
    return 0


def _spec_dir(spec: str) -> Path:
    path = Path(spec)
    if len(path.parts) == 1 and not path.exists():
        return Path(".kiro") / "specs" / spec
    return path


def _write(path: Path, text: str, *, note: str = "") -> None:
    if path.exists():
        print(f"kept     {path} (exists; not overwritten)")
        return
    path.write_text(text, encoding="utf-8")
    print(f"created  {path}" + (f"  ({note})" if note else ""))
