"""attnlib.runtime: the chapters' prologue, seeds and the device."""

from __future__ import annotations

import random
import sys

import numpy as np
import pytest
import torch

import attnlib
from attnlib import runtime


@pytest.fixture
def keep_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def draws() -> tuple[float, float, float]:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def test_setup_chapter_seeds_every_generator(keep_threads):
    attnlib.setup_chapter(seed=3)
    first = draws()
    attnlib.setup_chapter(seed=3)
    assert draws() == first
    attnlib.setup_chapter(seed=4)
    assert draws() != first


def test_setup_chapter_returns_the_course_device(keep_threads):
    assert attnlib.setup_chapter(seed=0) == attnlib.device()


def test_setup_chapter_sets_threads_only_when_asked(keep_threads):
    torch.set_num_threads(2)
    attnlib.setup_chapter(seed=0)
    assert torch.get_num_threads() == 2
    attnlib.setup_chapter(seed=0, threads=1)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "1"])
def test_setup_chapter_rejects_bad_threads(bad, keep_threads):
    with pytest.raises(ValueError, match=r"setup_chapter: threads must be a positive int"):
        attnlib.setup_chapter(seed=0, threads=bad)


@pytest.mark.parametrize("bad", [-1, 0.5, True])
def test_setup_chapter_rejects_bad_seeds(bad, keep_threads):
    with pytest.raises(ValueError, match=r"seed: n must be a non-negative int"):
        attnlib.setup_chapter(seed=bad)


def test_inline_figures_outside_a_kernel_does_nothing(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    runtime._inline_figures()  # no IPython loaded: nothing to select, and no error


def test_inline_figures_in_a_kernel_selects_the_inline_backend(monkeypatch):
    calls = []

    class Shell:
        kernel = object()

        def run_line_magic(self, name, line):
            calls.append((name, line))

    class FakeIPython:
        @staticmethod
        def get_ipython():
            return Shell()

    monkeypatch.setitem(sys.modules, "IPython", FakeIPython)
    runtime._inline_figures()
    assert calls == [("matplotlib", "inline")]
