"""Shared pytest fixtures: each owner keeps theirs in tests/fixtures_<area>.py, loaded here."""
import importlib.util
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

_AREAS = ["ingest", "delivery", "telegram", "web", "service", "render", "bounces"]
pytest_plugins = [f"fixtures_{a}" for a in _AREAS if importlib.util.find_spec(f"fixtures_{a}") is not None]


@pytest.fixture(autouse=True)
def _every_key_has_a_translation():
    """A key that code or a template asks for and no catalog has fails the test that rendered it."""
    from bot import i18n

    i18n.missing_keys.clear()
    yield
    missing = sorted(i18n.missing_keys)
    i18n.missing_keys.clear()
    assert not missing, f"no translation in any catalog for {missing}: run `make messages`, then translate them"
