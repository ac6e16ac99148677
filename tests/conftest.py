"""Shared pytest fixtures: each owner keeps theirs in tests/fixtures_<area>.py, loaded here."""
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

_AREAS = ["ingest", "delivery", "telegram", "web", "service", "render", "bounces"]
pytest_plugins = [f"fixtures_{a}" for a in _AREAS if importlib.util.find_spec(f"fixtures_{a}") is not None]
