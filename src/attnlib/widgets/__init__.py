"""Interactive widgets that stay interactive in the static book (the browser does the arithmetic).

- :class:`AttentionExplorer`: an attention matrix with a temperature slider, a causal-mask toggle
  and per-query bars (chapter 2 onwards).
- :class:`DecodingStepper`: an RNN translator's output, one character at a time, with where its
  attention looks (chapter 3).
- :class:`MaskExplorer`: which keys each mask allows, and the weights that result (chapter 6).
- :class:`HeadView`: every layer and head of a pretrained model (chapter 8).
- :class:`SamplingExplorer`: a language model's next-token distribution reshaped by temperature
  and top-k (chapter 9).
- :class:`OnlineSoftmaxTiles`: tiled attention stepped through, with the running maximum, sum
  and output of the online softmax (chapter 12).
"""

from .decoding import DecodingStepper
from .explorer import AttentionExplorer
from .heads import HeadView
from .masks import MaskExplorer
from .sampling import SamplingExplorer
from .tiles import OnlineSoftmaxTiles

__all__ = [
    "AttentionExplorer",
    "DecodingStepper",
    "MaskExplorer",
    "HeadView",
    "SamplingExplorer",
    "OnlineSoftmaxTiles",
]
