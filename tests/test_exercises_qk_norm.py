"""The self-attention chapter's QK-norm exercise: the check accepts the reference and the
library's own norm, and names the classic mistakes."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from attnlib.exercises import ExerciseError
from attnlib.exercises import self_attention as ex


def test_the_reference_passes_and_matches_multi_head_attention(capsys):
    ex.check_qk_norm_scores(ex.solution_qk_norm_scores)
    assert capsys.readouterr().out.count("Correct:") == 1
    norm_q, norm_k = nn.RMSNorm(6, eps=1e-6), nn.RMSNorm(6, eps=1e-6)
    with torch.no_grad():
        norm_q.weight.uniform_(0.5, 1.5)
        norm_k.weight.uniform_(0.5, 1.5)
    g = torch.Generator().manual_seed(0)
    q, k = torch.randn(2, 4, 6, generator=g), torch.randn(2, 5, 6, generator=g)
    expected = norm_q(q) @ norm_k(k).transpose(-2, -1) / math.sqrt(6)
    got = ex.solution_qk_norm_scores(q, k, norm_q.weight, norm_k.weight)
    torch.testing.assert_close(got, expected)


def test_pytorchs_rmsnorm_passes_as_an_answer(capsys):
    def answer(query, key, g_q, g_k):
        q = nn.functional.rms_norm(query, (query.size(-1),), g_q, eps=1e-6)
        k = nn.functional.rms_norm(key, (key.size(-1),), g_k, eps=1e-6)
        return q @ k.transpose(-2, -1) / math.sqrt(query.size(-1))

    ex.check_qk_norm_scores(answer)
    assert "Correct:" in capsys.readouterr().out


def _rms(x, dim=-1):
    return x * torch.rsqrt(x.pow(2).mean(dim, keepdim=True) + 1e-6)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda q, k, gq, gk: (gq * _rms(q)) @ (gk * _rms(k)).transpose(-2, -1), "1/sqrt"),
        (lambda q, k, gq, gk: _rms(q) @ _rms(k).transpose(-2, -1) / math.sqrt(q.size(-1)),
         "gains are missing"),
        (lambda q, k, gq, gk: ex.solution_qk_norm_scores(
            q - q.mean(-1, keepdim=True), k - k.mean(-1, keepdim=True), gq, gk), "LayerNorm"),
        (lambda q, k, gq, gk: (gq * q / q.norm(dim=-1, keepdim=True))
         @ (gk * k / k.norm(dim=-1, keepdim=True)).transpose(-2, -1) / math.sqrt(q.size(-1)),
         "length"),
        (lambda q, k, gq, gk: (gq * _rms(q, -2)) @ (gk * _rms(k, -2)).transpose(-2, -1)
         / math.sqrt(q.size(-1)), "over the positions"),
        (lambda q, k, gq, gk: q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), "values differ"),
        (lambda q, k, gq, gk: ex.solution_qk_norm_scores(k, q, gk, gq), "expected shape"),
    ],
)
def test_mistakes_are_named(answer, message):
    with pytest.raises(ExerciseError, match=message):
        ex.check_qk_norm_scores(answer)


def test_an_unfilled_template_runs_the_reference(capsys):
    def template(query, key, g_q, g_k):
        ...

    ex.check_qk_norm_scores(template)
    out = capsys.readouterr().out
    assert "still the template" in out and "`solution_qk_norm_scores`" in out
