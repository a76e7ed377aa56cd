"""Interactive widgets that stay interactive in the static book (the browser does the arithmetic).

:class:`AttentionExplorer` shows an attention matrix with a temperature slider, a causal-mask
toggle and per-query bars; see chapter 2.
"""

from .explorer import AttentionExplorer

__all__ = ["AttentionExplorer"]
