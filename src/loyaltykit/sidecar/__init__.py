"""The HTTP sidecar (``loyaltykit serve``): the kit as a service for platforms that cannot import
Python. Needs the ``sidecar`` extra (``pip install loyaltykit[sidecar]``); the core never imports it.
"""

from __future__ import annotations

from .app import create_app
from .settings import SidecarSettings, hash_key, new_key

__all__ = ["SidecarSettings", "create_app", "hash_key", "new_key"]
