"""Demo data: visitors, sessions and events shaped as the web SDK sends them.

``generate`` is pure (a seed in, the same events out); ``edge`` sends them as HTTP hits,
``direct`` writes them straight into the store. ``band demo`` is the command.
"""

from __future__ import annotations

from .generate import CONVERSION, generate

__all__ = ["CONVERSION", "generate"]
