"""attnlib.scoring: every score against its formula, shapes, masking, modules, errors."""

from __future__ import annotations

import pytest
import torch

from attnlib.masks import padding_mask
from attnlib.scoring import (
    SCORES,
    AdditiveScore,
    ConcatScore,
    DotScore,
    GeneralScore,
    additive_scores,
    attend,
    concat_scores,
    dot_scores,
    general_scores,
    make_score,
    masked_softmax,
)


def _randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# Each formula written out pair by pair, with loops: the tests compare the vectorised code with it.
def _loop(query, key, s):
    N, L, S = query.size(0), query.size(1), key.size(1)
    out = torch.empty(N, L, S, dtype=query.dtype)
    for n in range(N):
        for i in range(L):
            for j in range(S):
                out[n, i, j] = s(query[n, i], key[n, j])
    return out


N, L, S, Eq, Ek, h = 2, 3, 5, 4, 6, 7


@pytest.fixture
def qk():
    return _randn(N, L, Eq, seed=1), _randn(N, S, Ek, seed=2)


def test_additive_matches_its_formula(qk):
    q, k = qk
    W_q, W_k, v = _randn(h, Eq, seed=3), _randn(h, Ek, seed=4), _randn(h, seed=5)
    got = additive_scores(q, k, W_q, W_k, v)
    assert got.shape == (N, L, S)
    expected = _loop(q, k, lambda qi, kj: v @ torch.tanh(W_q @ qi + W_k @ kj))
    torch.testing.assert_close(got, expected)


def test_dot_matches_its_formula():
    q, k = _randn(N, L, Eq, seed=1), _randn(N, S, Eq, seed=2)
    got = dot_scores(q, k)
    assert got.shape == (N, L, S)
    torch.testing.assert_close(got, _loop(q, k, lambda qi, kj: qi @ kj))


def test_general_matches_its_formula(qk):
    q, k = qk
    W = _randn(Eq, Ek, seed=3)
    got = general_scores(q, k, W)
    assert got.shape == (N, L, S)
    torch.testing.assert_close(got, _loop(q, k, lambda qi, kj: qi @ W @ kj))


def test_concat_matches_its_formula_and_equals_additive_with_w_split(qk):
    q, k = qk
    W, v = _randn(h, Eq + Ek, seed=3), _randn(h, seed=4)
    got = concat_scores(q, k, W, v)
    assert got.shape == (N, L, S)
    expected = _loop(q, k, lambda qi, kj: v @ torch.tanh(W @ torch.cat([qi, kj])))
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got, additive_scores(q, k, W[:, :Eq], W[:, Eq:], v))


def test_general_with_identity_is_dot():
    q, k = _randn(N, L, Eq, seed=1), _randn(N, S, Eq, seed=2)
    torch.testing.assert_close(general_scores(q, k, torch.eye(Eq, dtype=q.dtype)), dot_scores(q, k))


@pytest.mark.parametrize("batch", [(), (3,), (2, 3)])
def test_shapes_broadcast_over_leading_dimensions(batch):
    q, k = _randn(*batch, L, Eq, seed=1), _randn(*batch, S, Ek, seed=2)
    W_q, W_k, v = _randn(h, Eq), _randn(h, Ek), _randn(h)
    assert additive_scores(q, k, W_q, W_k, v).shape == (*batch, L, S)
    assert general_scores(q, k, _randn(Eq, Ek)).shape == (*batch, L, S)
    assert concat_scores(q, k, _randn(h, Eq + Ek), v).shape == (*batch, L, S)
    assert dot_scores(q, _randn(*batch, S, Eq)).shape == (*batch, L, S)
    # one set of keys shared by a batch of queries
    assert additive_scores(_randn(4, L, Eq), _randn(S, Ek), W_q, W_k, v).shape == (4, L, S)


@pytest.mark.parametrize("kind", SCORES)
def test_modules_match_the_functions(kind, qk):
    torch.manual_seed(0)
    q, k = qk
    if kind == "dot":
        k = _randn(N, S, Eq, seed=2)
    module = make_score(kind, Eq, k.size(-1), h).double()
    got = module(q, k)
    assert got.shape == (N, L, S)
    if kind == "additive":
        assert isinstance(module, AdditiveScore)
        assert (module.W_q.shape, module.W_k.shape, module.v.shape) == ((h, Eq), (h, Ek), (h,))
        expected = additive_scores(q, k, module.W_q, module.W_k, module.v)
    elif kind == "dot":
        assert isinstance(module, DotScore)
        assert not list(module.parameters())
        expected = dot_scores(q, k)
    elif kind == "general":
        assert isinstance(module, GeneralScore)
        expected = general_scores(q, k, module.W)
    else:
        assert isinstance(module, ConcatScore)
        assert module.W.shape == (h, Eq + Ek)
        expected = concat_scores(q, k, module.W, module.v)
    torch.testing.assert_close(got, expected)
    # prepare once, score many: the same numbers
    torch.testing.assert_close(module.score(q, module.prepare(k)), expected)


def test_parameter_counts_of_the_modules():
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(make_score("additive", Eq, Ek, h)) == h * Eq + h * Ek + h
    assert count(make_score("concat", Eq, Ek, h)) == h * (Eq + Ek) + h
    assert count(make_score("general", Eq, Ek)) == Eq * Ek
    assert count(make_score("dot", Eq, Eq)) == 0
    assert count(make_score("additive", Eq, Ek)) == Ek * Eq + Ek * Ek + Ek  # h defaults to Ek


def test_modules_are_deterministic_for_a_seed():
    torch.manual_seed(3)
    a = make_score("additive", Eq, Ek, h)
    torch.manual_seed(3)
    b = make_score("additive", Eq, Ek, h)
    for p, r in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, r)


def test_padding_positions_get_exactly_zero_weight():
    q, k, v = _randn(N, L, Eq, seed=1), _randn(N, S, Ek, seed=2), _randn(N, S, 3, seed=3)
    lengths = torch.tensor([2, 5])
    mask = padding_mask(lengths, S)[:, 0]  # (N, 1, S)
    for kind in SCORES:
        torch.manual_seed(0)
        key = _randn(N, S, Eq, seed=2) if kind == "dot" else k
        scores = make_score(kind, Eq, key.size(-1), h).double()(q, key)
        context, w = attend(scores, v, mask)
        assert w.shape == (N, L, S) and context.shape == (N, L, 3)
        assert torch.all(w[0, :, 2:] == 0), kind  # the padding of the short sequence
        torch.testing.assert_close(w.sum(-1), torch.ones(N, L, dtype=w.dtype))
        torch.testing.assert_close(context, w @ v)
        # the padding's values do not matter at all
        v2 = v.clone()
        v2[0, 2:] = 1e6
        torch.testing.assert_close(attend(scores, v2, mask)[0], context)
        # same as a softmax over the real keys only
        torch.testing.assert_close(w[0, :, :2], torch.softmax(scores[0, :, :2], dim=-1))


def test_masked_softmax_conventions():
    scores = _randn(2, 3, 4, dtype=torch.float32)
    torch.testing.assert_close(masked_softmax(scores), torch.softmax(scores, dim=-1))
    mask = torch.tensor([[True, False, True, False]])  # (1, 4): broadcasts
    w = masked_softmax(scores, mask)
    assert torch.all(w[..., [1, 3]] == 0)
    # a row with no allowed key: zeros, not NaN
    none = torch.zeros(2, 3, 4, dtype=torch.bool)
    none[0] = True
    w = masked_softmax(scores, none)
    assert not torch.isnan(w).any()
    assert torch.all(w[1] == 0) and torch.allclose(w[0].sum(-1), torch.ones(3))
    # float masks are added
    add = torch.tensor([0.0, float("-inf"), 0.0, 1.0])
    torch.testing.assert_close(masked_softmax(scores, add), torch.softmax(scores + add, dim=-1))
    # half precision in, half precision out, computed in float32
    assert masked_softmax(scores.half(), mask).dtype == torch.float16


def test_masked_softmax_gradient_is_finite_with_dead_rows():
    scores = _randn(1, 2, 3, dtype=torch.float32).requires_grad_()
    mask = torch.tensor([[[True, True, False], [False, False, False]]])
    masked_softmax(scores, mask).sum().backward()
    assert torch.isfinite(scores.grad).all()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda q, k: dot_scores(q, k), ValueError,
         r"dot_scores: query and key must have the same size E"),
        (lambda q, k: general_scores(q, k, _randn(Ek, Eq)), ValueError,
         r"general_scores: W must have shape \(4, 6\) \(query size Eq, key size Ek\), "
         r"got \(6, 4\)"),
        (lambda q, k: additive_scores(q, k, _randn(h, Eq), _randn(h, Eq), _randn(h)), ValueError,
         r"additive_scores: W_k must have shape \(7, 6\)"),
        (lambda q, k: additive_scores(q, k, _randn(h, Eq), _randn(h, Ek), _randn(h, 1)),
         ValueError, r"additive_scores: v must have shape \(h,\)"),
        (lambda q, k: concat_scores(q, k, _randn(h, Eq), _randn(h)), ValueError,
         r"concat_scores: W must have shape \(7, 10\)"),
        (lambda q, k: dot_scores(q[0, 0], k), ValueError,
         r"dot_scores: query must have at least 2 dimensions"),
        (lambda q, k: dot_scores(q.long(), k), TypeError, r"query must be a floating-point"),
        (lambda q, k: dot_scores([1.0], k), TypeError, r"query must be a torch.Tensor, got list"),
        (lambda q, k: general_scores(_randn(3, L, Eq), _randn(2, S, Ek), _randn(Eq, Ek)),
         ValueError, r"leading \(batch\) dimensions of query \(3, 3, 4\) and key \(2, 5, 6\)"),
    ],
)  # fmt: skip
def test_bad_arguments_are_rejected_with_clear_messages(qk, call, error, message):
    q, k = qk
    with pytest.raises(error, match=message):
        call(q, k)


def test_bad_masks_and_factory_arguments():
    scores = torch.zeros(2, 3, 5)
    with pytest.raises(ValueError, match=r"take mask\[:, 0\] for scores \(N, L, S\)"):
        masked_softmax(scores, padding_mask([5, 2]))
    with pytest.raises(ValueError, match=r"mask of shape \(4,\) does not broadcast"):
        masked_softmax(scores, torch.ones(4, dtype=torch.bool))
    with pytest.raises(TypeError, match=r"masked_softmax: mask must be a boolean mask \(True = may "
                                        r"attend\) or a float mask"):
        masked_softmax(scores, torch.ones(5, dtype=torch.long))
    with pytest.raises(TypeError, match="scores must be a floating-point tensor"):
        masked_softmax(torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"value must be \(\.\.\., S, Ev\) with S = 5"):
        attend(scores, torch.zeros(2, 4, 3))
    with pytest.raises(ValueError, match="make_score: kind must be one of"):
        make_score("cosine", 4, 4)
    with pytest.raises(ValueError, match="'dot' needs query_size == key_size, got 4 and 6"):
        make_score("dot", 4, 6)
    with pytest.raises(ValueError, match="make_score: hidden_size must be a positive int"):
        make_score("additive", 4, 6, 0)
    with pytest.raises(ValueError, match="make_score: query_size must be a positive int"):
        make_score("general", -1, 6)
