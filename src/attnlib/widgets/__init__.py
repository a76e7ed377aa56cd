"""Interactive widgets that stay interactive in the static book (the browser does the arithmetic).

:class:`AttentionExplorer` shows an attention matrix with a temperature slider, a causal-mask
toggle and per-query bars; see chapter 2. :class:`HeadView` shows every layer and head of a
pretrained model (chapter 8). :class:`MaskExplorer` shows which keys each mask allows and the
weights that result (chapter 6). :class:`SamplingExplorer` reshapes a language model's next-token
distribution with temperature and top-k (chapter 9).
"""

from .explorer import AttentionExplorer
from .heads import HeadView
from .masks import MaskExplorer
from .sampling import SamplingExplorer

__all__ = ["AttentionExplorer", "HeadView", "MaskExplorer", "SamplingExplorer"]
