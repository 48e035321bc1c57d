"""Allow ``python -m seqharness``."""

from seqharness.cli import main

raise SystemExit(main())
