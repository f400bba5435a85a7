"""The old home of tests/support/craft.py, kept while other branches move: this name is that
module (the same object), not a copy."""

import sys

import tests.support.craft

sys.modules[__name__] = tests.support.craft
