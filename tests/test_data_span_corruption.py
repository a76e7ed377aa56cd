"""attnlib.data.span_corruption: T5's span corruption, its format, counts and bad arguments."""

from __future__ import annotations

import pytest
import torch

from attnlib.data.span_corruption import sentinel, span_corrupt, span_restore

WORDS = (
    "the quick brown fox jumps over the lazy dog while a cat watches from the wall and "
    "the farmer sleeps under an old tree near the river"
).split()


def corrupt(tokens=WORDS, seed=0, **kwargs):
    return span_corrupt(tokens, generator=torch.Generator().manual_seed(seed), **kwargs)


def is_sentinel(token):
    return token.startswith("<extra_id_")


def spans_of(targets):
    # The dropped spans, in order, read from the target.
    spans = []
    for t in targets:
        if is_sentinel(t):
            spans.append([])
        else:
            spans[-1].append(t)
    return spans[:-1]  # the final sentinel opens no span


def test_paper_format():
    # Raffel et al.'s Figure 2: each span becomes one sentinel; the target ends with one more.
    tokens = "Thank you for inviting me to your party last week .".split()
    for seed in range(20):
        inputs, targets = corrupt(tokens, seed)
        spans = spans_of(targets)
        assert targets[0] == sentinel(0) and targets[-1] == sentinel(len(spans))
        assert [t for t in inputs if is_sentinel(t)] == [sentinel(k) for k in range(len(spans))]


@pytest.mark.parametrize("seed", range(30))
@pytest.mark.parametrize("n", [2, 3, 7, 11, 32, 100])
def test_round_trip(seed, n):
    tokens = [f"w{i}" for i in range(n)]
    inputs, targets = corrupt(tokens, seed)
    assert span_restore(inputs, targets) == tokens
    kept = [t for t in inputs if not is_sentinel(t)]
    assert kept == [t for t in tokens if t in set(kept)]  # kept tokens stay in order


def test_counts_follow_t5():
    tokens = [f"w{i}" for i in range(200)]
    inputs, targets = corrupt(tokens)
    spans = spans_of(targets)
    assert sum(map(len, spans)) == round(0.15 * 200) == 30
    assert len(spans) == round(30 / 3.0) == 10
    assert len(inputs) == 200 - 30 + 10 and len(targets) == 30 + 10 + 1


@pytest.mark.parametrize("density", [0.05, 0.15, 0.5, 0.9])
def test_density(density):
    tokens = [f"w{i}" for i in range(300)]
    _, targets = corrupt(tokens, noise_density=density)
    dropped = sum(map(len, spans_of(targets)))
    assert dropped == round(density * 300)


def test_at_least_one_dropped_and_one_kept():
    inputs, targets = corrupt(["a", "b"], noise_density=0.01)
    assert sum(map(len, spans_of(targets))) == 1
    inputs, targets = corrupt(["a", "b", "c"], noise_density=0.99)
    assert [t for t in inputs if not is_sentinel(t)] != []


@pytest.mark.parametrize("mean", [1.0, 2.5, 3.0, 10.0, 1000.0])
def test_spans_nonempty_and_apart(mean):
    for seed in range(20):
        inputs, targets = corrupt(seed=seed, mean_span_length=mean, noise_density=0.3)
        assert all(len(s) >= 1 for s in spans_of(targets))
        # two sentinels never touch in the input: the spans are separated by kept tokens
        assert not any(
            is_sentinel(a) and is_sentinel(b) for a, b in zip(inputs[:-1], inputs[1:], strict=True)
        )


def test_mean_span_length_one_drops_single_tokens():
    _, targets = corrupt(mean_span_length=1.0)
    assert all(len(s) == 1 for s in spans_of(targets))


def test_deterministic_and_random():
    assert corrupt(seed=1) == corrupt(seed=1)
    assert len({tuple(corrupt(seed=s)[0]) for s in range(10)}) > 1


def test_target_much_shorter_than_input():
    tokens = [f"w{i}" for i in range(500)]
    inputs, targets = corrupt(tokens)
    assert len(targets) < len(inputs) / 3


def test_sentinel():
    assert sentinel(0) == "<extra_id_0>" and sentinel(12) == "<extra_id_12>"
    for bad in (-1, 1.0, True, "0"):
        with pytest.raises(ValueError, match="k must be"):
            sentinel(bad)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"tokens": "a plain string"}, TypeError, "tokens must be a list of token strings"),
        ({"tokens": ["a", 1, "b"]}, TypeError, "tokens must hold strings only"),
        ({"tokens": ["a"]}, ValueError, "tokens must hold at least 2"),
        ({"tokens": ["a", "<extra_id_0>"]}, ValueError, "tokens must not contain sentinel"),
        ({"noise_density": 0.0}, ValueError, "noise_density must be in"),
        ({"noise_density": 1.0}, ValueError, "noise_density must be in"),
        ({"noise_density": "0.15"}, ValueError, "noise_density must be in"),
        ({"mean_span_length": 0.5}, ValueError, "mean_span_length must be"),
        ({"mean_span_length": float("inf")}, ValueError, "mean_span_length must be"),
        ({"generator": 0}, TypeError, "generator must be a torch.Generator"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"tokens": WORDS, **kwargs}
    with pytest.raises(error, match=f"span_corrupt: {match}"):
        span_corrupt(**args)


def test_restore_rejects_mismatch():
    inputs, targets = corrupt()
    with pytest.raises(ValueError, match="targets must start with a sentinel"):
        span_restore(inputs, targets[1:])
    with pytest.raises(ValueError, match="do not match"):
        span_restore(inputs + [sentinel(99)], targets)
