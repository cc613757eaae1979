"""Session fixtures shared by the whole suite: one real Azurite per test session.

Integration tests start the emulators themselves, so the suite never skips them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.azurite import Azurite


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """A real in-memory Azurite on free ports, for the whole session."""
    log = Path(tmp_path_factory.mktemp("azurite")) / "azurite.log"
    instance = Azurite(log_path=log).start()
    yield instance
    instance.stop()


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string
