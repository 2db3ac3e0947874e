"""`get_store`: every store, the default local library included, comes from the scheme registry."""

from __future__ import annotations

import pytest

from gptstore.errors import UsageError
from gptstore.hookspecs import hookimpl
from gptstore.stores import get_store
from gptstore.stores.local import LocalStore


def test_default_store_is_hf_and_the_library_is_the_file_store_of_the_home(gptstore_home):
    from gptstore.stores.base import library_store
    from gptstore.stores.hub import HubStore

    assert isinstance(get_store(None), HubStore) and get_store(None).url == "hf://"  # nothing set
    assert not gptstore_home.exists()
    store = library_store()
    assert isinstance(store, LocalStore) and store.library.root == gptstore_home
    assert store.url == f"file://{gptstore_home}" and store.search() == []
    assert not gptstore_home.exists()  # reading made nothing


def test_gptstore_store_wins_over_the_home(gptstore_home, tmp_path, monkeypatch):
    other = tmp_path / "other-library"
    other.mkdir()
    monkeypatch.setenv("GPTSTORE_STORE", str(other))
    assert get_store(None).library.root == other


def test_another_missing_directory_is_still_refused(tmp_path):
    with pytest.raises(UsageError, match=r"store .*missing is not a library directory"):
        get_store(str(tmp_path / "missing"))
    with pytest.raises(UsageError, match="is not a library directory"):
        get_store(f"file://{tmp_path / 'missing'}")


def test_a_plugin_that_registers_file_serves_the_library_store_too(register_plugin, gptstore_home, tmp_path):
    """The local store is a built-in registered ``trylast``: a plugin's ``file`` comes first."""
    made: list[str] = []

    class Plugin:
        @hookimpl
        def register_stores(self, register):
            def factory(url, **_options):
                made.append(url)
                return LocalStore(tmp_path / "elsewhere")

            register("file", factory)

    register_plugin(Plugin(), name="file-store")
    from gptstore.stores.base import library_store

    store = library_store()
    assert made == [f"file://{gptstore_home}"] and store.library.root == tmp_path / "elsewhere"

