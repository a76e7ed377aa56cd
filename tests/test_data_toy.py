"""The small generated tasks of attnlib.data: reversal (toy), name tagging (tagging) and the
labelled template sentences (reviews)."""

from __future__ import annotations

import random

import pytest
import torch

from attnlib.data import reviews, tagging, toy


def test_reversal_pairs_are_reversed_and_repeatable():
    pairs = toy.reversal_pairs(200, [1, 4, 9], alphabet="abc", seed=3)
    assert pairs == toy.reversal_pairs(200, [1, 4, 9], alphabet="abc", seed=3)
    assert all(target == source[::-1] for source, target in pairs)
    assert {len(s) for s, _ in pairs} == {1, 4, 9}
    assert set("".join(s for s, _ in pairs)) <= set("abc")
    with pytest.raises(ValueError, match="reversal_pairs: n must be a positive int"):
        toy.reversal_pairs(0, [3])
    with pytest.raises(ValueError, match="alphabet is empty"):
        toy.reversal_pairs(3, [3], alphabet="")


def _name_and_tag(words, tags):
    """The ambiguous name of a sentence and its tag."""
    (k,) = [i for i, w in enumerate(words) if w in tagging.AMBIGUOUS]
    return words[k], tags[k], k


def test_the_deciding_verb_is_on_the_promised_side():
    for words, tags in tagging.right_decided_sentences():
        _, tag, k = _name_and_tag(words, tags)
        verb = words[k + 1]  # the word to the right decides
        assert tag == ("PER" if verb in tagging.PERSON_VERBS else "LOC")
        assert len(words) == len(tags)
    for words, tags in tagging.left_decided_sentences():
        _, tag, k = _name_and_tag(words, tags)
        assert tag == ("PER" if words[k - 1] == "met" else "LOC")  # the word to the left decides
    # every ambiguous name occurs in both roles after the same words
    right = tagging.right_decided_sentences()
    assert len(right) == 192 and len(tagging.left_decided_sentences()) == 48
    roles = {(w[0] if len(w) == 3 else "", *_name_and_tag(w, t)[:2]) for w, t in right}
    assert len(roles) == len(tagging.OPENERS) * len(tagging.AMBIGUOUS) * 2


def test_samples_are_repeatable_and_cover_the_three_frames():
    a = [tagging.sample(random.Random(0)) for _ in range(3)]
    assert a == [tagging.sample(random.Random(0)) for _ in range(3)]
    rng = random.Random(1)
    drawn = [tagging.sample(rng) for _ in range(500)]
    left = sum(words[1] in ("met", "visited") for words, _ in drawn)
    assert 150 < left < 250  # 40 % decided on the left
    assert all(w in tagging.STOI for words, _ in drawn for w in words)


def test_to_batch_pads_ids_with_0_and_tags_with_minus_100():
    ids, tags = tagging.to_batch([(["alice", "met", "paris"], ["PER", "O", "PER"]),
                                  (["paris", "froze"], ["LOC", "O"])])
    assert ids.shape == tags.shape == (2, 3) and ids.dtype == tags.dtype == torch.long
    assert ids[1, 2] == 0 and tags[1, 2] == -100
    assert tags[0].tolist() == [1, 0, 1] and tagging.VOCAB[int(ids[1, 1])] == "froze"
    with pytest.raises(ValueError, match="examples is empty"):
        tagging.to_batch([])


def test_reviews_label_by_the_adjective_and_the_noun():
    train, test = reviews.splits()
    assert len(train) == len(test) == 288
    for text, sentiment, is_food, adj in train + test:
        words = text.split()
        assert adj in words and sentiment == (adj in reviews.POSITIVE)
        assert is_food == any(w in reviews.FOOD for w in words)
    words_of = [{w for text, *_ in rows for w in text.split()} for rows in (train, test)]
    shared = words_of[0] & words_of[1]
    assert not shared & {*reviews.POSITIVE, *reviews.NEGATIVE, *reviews.FOOD, *reviews.OTHER}
