"""Reusable test helpers (fake servers), importable as tests.helpers.<name>."""
