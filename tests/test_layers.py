"""The packages' layers (docs/ARCHITECTURE.md): a lower layer never imports a higher one.

Checked in a fresh interpreter, so that what the test session imported does not hide an import.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

# module → what it must not pull in, directly or through anything it imports
LOWER_LAYERS = {
    "evidencekit.crypto.keys": ("evidencekit.sources", "evidencekit.cli"),
    "evidencekit.crypto.age": ("evidencekit.sources", "evidencekit.fs", "evidencekit.cli"),
    "evidencekit.config": ("evidencekit.sources", "evidencekit.cli"),
    "evidencekit.fs": ("evidencekit.sources", "evidencekit.crypto", "evidencekit.cli"),
    "evidencekit.incident": ("evidencekit.cli",),
    "evidencekit.custody.events": ("evidencekit.cli",),  # the package itself imports nothing
    "evidencekit.custody.resealing": ("evidencekit.cli",),
    "evidencekit.report": ("evidencekit.cli",),
}


@pytest.mark.parametrize("module", sorted(LOWER_LAYERS))
def test_a_lower_layer_does_not_import_a_higher_one(module: str) -> None:
    code = (f"import sys, {module}\n"
            "print('\\n'.join(sorted(sys.modules)))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.split()
    above = [name for name in loaded
             if any(name == banned or name.startswith(banned + ".")
                    for banned in LOWER_LAYERS[module])]
    assert above == [], f"{module} imports {above}"
