"""The store's Lua scripts, one ``.lua`` file each, registered once per client."""

from __future__ import annotations

from importlib import resources


def lua(name: str) -> str:
    """The source of ``<name>`` beside this module."""
    return resources.files(__name__).joinpath(name).read_text()
