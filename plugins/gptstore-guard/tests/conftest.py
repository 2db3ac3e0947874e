"""Fixtures for gptstore-guard's tests; gptstore's own (isolated home, tiny_gpt, run_cli,
register_plugin) come from the gptstore.testing pytest plugin."""

import pytest

import gptstore_guard
from gptstore import plugins
from gptstore.library import Library
from gptstore.packaging import package


@pytest.fixture(autouse=True)
def _load_installed_plugins(entry_point_plugins):
    """gptstore's test kit keeps entry-point plugins out of a test unless it asks: these tests are
    about the guard as installed, so every one of them asks."""
    return entry_point_plugins


@pytest.fixture
def guard(entry_point_plugins):
    """The guard, loaded from its entry point as in a real install."""
    if plugins.pm.get_plugin("guard") is not gptstore_guard:
        pytest.fail("the guard plugin is not loaded: pip install -e plugins/gptstore-guard")
    return gptstore_guard


@pytest.fixture
def published(tiny_gpt, guard):
    """The tiny model, packaged and published to the test's library as acme/tiny."""
    package(tiny_gpt, name="acme/tiny", version="1.0.0")
    Library().publish(tiny_gpt)
    return "acme/tiny"
