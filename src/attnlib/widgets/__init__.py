"""Interactive widgets that stay interactive in the static book (the browser does the arithmetic).

:class:`AttentionExplorer` shows an attention matrix with a temperature slider, a causal-mask
toggle and per-query bars; see chapter 2. :class:`HeadView` shows every layer and head of a
pretrained model (chapter 8). :class:`MaskExplorer` shows which keys each mask allows and the
weights that result (chapter 6).
"""

from .explorer import AttentionExplorer
from .heads import HeadView
from .masks import MaskExplorer

__all__ = ["AttentionExplorer", "HeadView", "MaskExplorer"]
