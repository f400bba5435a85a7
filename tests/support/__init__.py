"""Helpers shared by test modules (imported as a library, unlike conftest files)."""
