"""A sealed bundle to export from (made once per module): odd names, a hard link, an empty
file, a link, a note, a case with a legal basis; keys generated here."""

from __future__ import annotations

import pytest

from tests.support.sealed import Sealed, seal


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Sealed:
    return seal(tmp_path_factory.mktemp("sealed"))
