"""seqharness: execute a Kiro spec one task at a time, reported like pytest tests."""

__version__ = "0.1.0"
