"""Interactive widgets that stay interactive in the static book (the browser does the arithmetic).

- :class:`AttentionExplorer`: an attention matrix with a temperature slider, a causal-mask toggle
  and per-query bars (from the soft-lookup chapter on).
- :class:`DecodingStepper`: an RNN translator's output, one character at a time, with where its
  attention looks (the chapter on attention in RNN encoder-decoders).
- :class:`MaskExplorer`: which keys each mask allows, and the weights that result (the masking
  chapter).
- :class:`HeadView`: every layer and head of a pretrained model (the BERT chapter).
- :class:`SamplingExplorer`: a language model's next-token distribution reshaped by temperature
  and top-k (the GPT chapter).
- :class:`OnlineSoftmaxTiles`: tiled attention stepped through, with the running maximum, sum
  and output of the online softmax (the chapter on the cost of attention).
- :class:`BottleneckStepper`: an encoder-decoder's one fixed vector overwritten step by step,
  beside attention's weights over every encoder state (the big-picture chapter).
- :class:`PositionExplorer`: sinusoidal dot products and rotary scores against the offset, as
  the size, the base and the position change (the chapter on positions and the block).

Each widget is a :class:`attnlib.widgets._base.Widget`: its front end is the shared base
(``_base.js``, ``_base.css``) followed by its own view (``<view>.js``, ``<view>.css``), joined by
:mod:`attnlib.widgets._frontend`.
"""

from .bottleneck import BottleneckStepper
from .decoding import DecodingStepper
from .explorer import AttentionExplorer
from .heads import HeadView
from .masks import MaskExplorer
from .positions import PositionExplorer
from .sampling import SamplingExplorer
from .tiles import OnlineSoftmaxTiles

__all__ = [
    "AttentionExplorer",
    "DecodingStepper",
    "MaskExplorer",
    "HeadView",
    "SamplingExplorer",
    "OnlineSoftmaxTiles",
    "BottleneckStepper",
    "PositionExplorer",
]
