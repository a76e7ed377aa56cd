"""What the widgets' Python halves share: the checks of what a learner passes in, and the compact
forms the data travels in to the browser.

Every check names the widget (``where``, e.g. ``"MaskExplorer"``) and the argument at fault, as
:mod:`attnlib._checks` does for the library's functions.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from collections.abc import Sequence

import anywidget
import numpy as np
import traitlets

from .._checks import prefix, shape
from ._frontend import build_css, build_esm

__all__ = [
    "Widget",
    "PICTURE_SIZE",
    "PICTURE_DPI",
    "softmax_rows",
    "picture_heatmap",
    "SCALE",
    "rounded",
    "numeric",
    "ndim",
    "finite",
    "non_negative",
    "labels",
    "count",
    "index",
    "positive_number",
    "pack_thousandths",
    "unpack_thousandths",
]

class Widget(anywidget.AnyWidget):
    """The base of attnlib's widgets: its front end is built from the shared base and its view.

    A widget names its view when it subclasses, ``class OnlineSoftmaxTiles(Widget,
    view="tiles")``, and gets ``_esm = build_esm("tiles")``, ``_css = build_css("tiles")`` and
    the synced ``title`` every widget shows above itself.
    """

    title = traitlets.Unicode("").tag(sync=True)

    def __init_subclass__(cls, *, view: str | None = None, **kwargs) -> None:
        if view is not None:  # a subclass of a widget keeps its parent's front end
            cls._esm = build_esm(view)
            cls._css = build_css(view)
        super().__init_subclass__(**kwargs)

    def __init__(self, *, title: str = "", **traits) -> None:
        super().__init__(title=str(title), **traits)

    # -- the stored static picture -----------------------------------------------------------------
    def _static_figure(self, fig) -> str | None:
        """Draw the widget's current state into ``fig`` (a matplotlib ``Figure``, not pyplot's)
        and return its alt text; ``None`` (the default) means the widget has no picture."""
        return None

    def static_picture(self) -> tuple[bytes, str] | None:
        """``(png, alt)``: the widget's current state as a small PNG and the text that
        describes it, or ``None`` for a widget without a picture.

        The same state gives the same bytes: a fixed size, font and style, and no software
        version or date in the file. The alt text is also stored in the PNG as its
        ``Description``, where the EPUB build reads it.
        """
        from matplotlib import rc_context
        from matplotlib.figure import Figure

        # A glyph DejaVu Sans lacks (a token's emoji) must not print a warning into the
        # notebook: the stored outputs are compared on every run.
        with rc_context(_PICTURE_STYLE), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = Figure(figsize=PICTURE_SIZE, dpi=PICTURE_DPI, layout="constrained")
            alt = self._static_figure(fig)
            if alt is None:
                return None
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=PICTURE_DPI,
                        metadata={"Software": None, "Description": alt})
        return buffer.getvalue(), alt

    def _repr_mimebundle_(self, **kwargs):
        """anywidget's bundle (the live view and a text line) plus the static picture as
        ``image/png``: the HTML book shows the live view (it ranks first), an EPUB the picture."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data, metadata = bundle if isinstance(bundle, tuple) else (bundle, {})
        picture = self.static_picture()
        if picture is None:
            return data, metadata
        png, alt = picture
        data = {**data, "image/png": base64.b64encode(png).decode("ascii")}
        return data, {**metadata, "image/png": {"alt": alt}}


PICTURE_SIZE = (5.0, 3.5)  # inches: 400 x 280 pixels at PICTURE_DPI
PICTURE_DPI = 80
_PICTURE_STYLE = {
    "font.family": "DejaVu Sans",  # matplotlib's own font: the same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


DECIMALS = 4  # data travels rounded: small, stable notebook metadata
SCALE = 1000  # weights travel as integers in thousandths (3 decimals), in one string


def rounded(x, decimals: int = DECIMALS) -> list:
    """Nested lists of floats rounded to ``decimals`` (-0.0 becomes 0.0, -inf becomes None)."""
    if hasattr(x, "detach"):  # a torch.Tensor, wherever it lives
        x = x.detach().to("cpu").double().numpy()
    arr = np.round(np.asarray(x, dtype=np.float64), decimals) + 0.0

    def clean(v):
        if isinstance(v, list):
            return [clean(u) for u in v]
        return None if v == -math.inf else v

    return clean(arr.tolist())


def numeric(x, name: str, where: str, expected: str = "") -> np.ndarray:
    """A float64 NumPy copy of a tensor (on any device), an array or nested lists.

    Raises a ``ValueError`` naming ``name`` (and the ``expected`` shape) if ``x`` is not numeric.
    """
    if hasattr(x, "detach"):  # a torch.Tensor, wherever it lives
        x = x.detach().to("cpu").double().numpy()
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        what = f"numeric {expected}" if expected else "numeric"
        raise ValueError(f"{prefix(where)}{name} must be {what}, got {type(x).__name__}") from err


def ndim(arr: np.ndarray, dims: int | tuple[int, ...], name: str, where: str, expected: str):
    """``arr`` if it has ``dims`` dimensions (or one of them), else a ``ValueError`` that shows
    the ``expected`` shape, e.g. ``"2-D (L, S)"``, and the shape it got."""
    if arr.ndim not in ((dims,) if isinstance(dims, int) else dims):
        raise ValueError(f"{prefix(where)}{name} must be {expected}, got shape {shape(arr)}")
    return arr


def finite(arr: np.ndarray, name: str, where: str, note: str = "") -> np.ndarray:
    """``arr`` if every entry is finite, else a ``ValueError`` (``note`` says what to do)."""
    if not np.isfinite(arr).all():
        what = f"must be finite; {note}" if note else "contains NaN or infinite values"
        raise ValueError(f"{prefix(where)}{name} {what}")
    return arr


def non_negative(arr: np.ndarray, name: str, where: str, why: str) -> np.ndarray:
    """``arr`` if no entry is negative, else a ``ValueError`` with ``why`` and the smallest."""
    if arr.size and (arr < 0).any():
        raise ValueError(
            f"{prefix(where)}{name} must be non-negative {why}; the smallest is {arr.min():.4g}"
        )
    return arr


def labels(items: Sequence[str] | None, name: str, where: str, default=None) -> list[str]:
    """``items`` as a list of strings (``default`` when None); one string is refused (it would
    be split into letters)."""
    if items is None and default is not None:
        return default
    if isinstance(items, str):
        raise ValueError(f"{prefix(where)}{name} must be a list of strings, not one string")
    return [str(item) for item in items]


def count(items: Sequence, n: int, name: str, where: str, what: str, unit: str = "entries"):
    """``items`` if it has ``n`` entries, else ``"<name> has 2 entries but <what>"``."""
    if len(items) != n:
        raise ValueError(f"{prefix(where)}{name} has {len(items)} {unit} but {what}")
    return items


def index(value: int, n: int, name: str, where: str, what: str = "") -> int:
    """``value`` if it is in ``[0, n)`` (0 is always allowed), else a ``ValueError``.

    ``what`` describes the index, e.g. ``"a query row "``.
    """
    if not 0 <= value < max(n, 1):
        raise ValueError(f"{prefix(where)}{name} must be {what}in [0, {n}), got {value}")
    return value


def positive_number(value, name: str, where: str) -> float:
    """``value`` as a float if it is a finite number > 0 (not a bool), else a ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{prefix(where)}{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{prefix(where)}{name} must be a positive number, got {value!r}")
    return float(value)


def pack_thousandths(arr: np.ndarray) -> str:
    """Weights in [0, 1] as one comma-separated string of integer thousandths, row-major.

    A notebook stores nested JSON lists one number per indented line, which would make the
    stored widget state several times larger.
    """
    return ",".join(map(str, np.rint(arr * SCALE).astype(np.int64).ravel().tolist()))


def unpack_thousandths(text: str, dims: Sequence[int]) -> np.ndarray:
    """The weights :func:`pack_thousandths` packed, as float64 of shape ``dims``."""
    return np.array([int(v) for v in text.split(",")], dtype=np.float64).reshape(dims) / SCALE


def softmax_rows(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(L, S)`` scores where ``-inf`` marks a masked key; a row with no
    finite score gets zeros, never NaN (as :func:`attnlib.scaled_dot_product_attention`)."""
    scores = np.asarray(scores, dtype=np.float64)
    top = np.where(np.isfinite(scores), scores, -np.inf).max(axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.where(np.isfinite(scores), np.exp(scores - top), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    return np.divide(e, total, out=np.zeros_like(e), where=total > 0)


def picture_heatmap(fig, weights, rows: Sequence[str], cols: Sequence[str], title: str,
                    colorbar: bool = True):
    """A static picture's heatmap: one :func:`attnlib.plotting.heatmap` filling ``fig``,
    unannotated (the picture is small); returns the axes."""
    from ..plotting import heatmap

    ax = fig.add_subplot()
    heatmap(np.asarray(weights, dtype=np.float64), list(rows), list(cols), ax=ax, title=title,
            annotate=False, colorbar=colorbar)
    return ax
