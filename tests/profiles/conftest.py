"""The CLI fixtures (isolated user, keys, evidence tree) for the profile tests too."""

from tests.cli.conftest import bundle, keys, tree, user

__all__ = ["bundle", "keys", "tree", "user"]
