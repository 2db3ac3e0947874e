"""Stores: where models are published and found, chosen by URL scheme (``register_stores``)."""

from __future__ import annotations

from .base import SearchHit, Store, get_store, stores

__all__ = ["SearchHit", "Store", "get_store", "stores"]
