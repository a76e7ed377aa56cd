"""attnlib.plotting: labelled heatmaps, one-call SVG + PNG export, clear errors."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from attnlib.plotting import heatmap, save  # noqa: E402


def test_heatmap_labels_both_axes_and_annotates_small_matrices():
    w = torch.softmax(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), -1)
    fig = heatmap(w, ["a", "b", "c"], ["w", "x", "y", "z"], title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["w", "x", "y", "z"]
    assert len(ax.texts) == 12 and ax.get_title() == "t"
    assert ax.get_xlabel() == "key" and ax.get_ylabel() == "query"
    plt.close(fig)


def test_heatmap_defaults_key_labels_to_query_labels_for_square_matrices():
    fig = heatmap(torch.eye(2), ["p", "q"])
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["p", "q"]
    plt.close(fig)


def test_heatmap_draws_into_given_axes():
    fig, (a, b) = plt.subplots(1, 2)
    assert heatmap(torch.eye(3), ax=b, colorbar=False) is fig
    assert len(b.images) == 1 and len(a.images) == 0
    plt.close(fig)


def test_save_writes_svg_and_png(tmp_path):
    fig = heatmap(torch.eye(2), ["a", "b"])
    paths = save(fig, tmp_path / "figs" / "eye")
    assert [p.name for p in paths] == ["eye.svg", "eye.png"]
    assert paths[0].read_text().lstrip().startswith("<?xml")
    assert paths[1].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_heatmap_errors():
    with pytest.raises(ValueError, match=r"weights must be a 2-D matrix \(L, S\); got shape "
                                         r"\(2, 3, 4\)"):
        heatmap(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"query_tokens has 2 labels but weights of shape "
                                         r"\(3, 3\) need 3"):
        heatmap(torch.eye(3), ["a", "b"])
