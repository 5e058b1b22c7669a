"""Hugging Face hub access that fails fast and clearly when offline."""

from __future__ import annotations

import socket
from typing import Callable, TypeVar
from urllib.parse import urlparse

T = TypeVar("T")


def hub_reachable(timeout: float = 3.0) -> bool:
    """False when HF_HUB_OFFLINE is set or the hub's host cannot be reached
    (so that loaders don't retry for minutes on a machine without a network)."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_cached_first(load: Callable[..., T], source: str, **kwargs) -> T:
    """``load(source, local_files_only=True, ...)``; only when that fails and the hub
    is reachable, ``load(source, ...)`` again so that it downloads. Raises the
    local attempt's ``OSError`` when offline."""
    try:
        return load(source, local_files_only=True, **kwargs)
    except OSError:
        if not hub_reachable():
            raise
    return load(source, **kwargs)
