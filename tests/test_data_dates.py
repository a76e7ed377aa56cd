"""attnlib.data.dates: renderings, determinism, splits, bad arguments, the character vocabulary."""

from __future__ import annotations

import datetime
import random

import pytest
import torch

from attnlib.data import dates


@pytest.fixture(scope="module")
def small_splits():
    return dates.splits(n_train=3000, n_test=300, seed=0)


def test_known_renderings():
    d = datetime.date(2026, 11, 22)
    assert dates.render(d, "fr") == "22 novembre 2026"
    assert dates.render(d, "en_US") == "November 22, 2026"
    assert dates.render(d, "en_GB") == "22 November 2026"
    assert dates.render(datetime.date(1999, 1, 13), "de_AT") == "13. Jänner 1999"
    assert dates.render(d, "ru") == "22 ноября 2026 г."  # U+202F became a plain space


@pytest.mark.parametrize("locale", dates.TRAIN_LOCALES + dates.HELD_OUT_LOCALES)
def test_every_chosen_locale_names_the_month_and_is_unambiguous(locale):
    assert dates.check_locale(locale) == locale


def test_locale_lists_are_disjoint_and_held_out_renderings_are_new():
    assert not set(dates.TRAIN_LOCALES) & set(dates.HELD_OUT_LOCALES)
    days = [datetime.date(2000, m, 10 + m) for m in range(1, 13)] + [datetime.date(1951, 3, 4)]
    trained = {tuple(dates.render(d, loc) for d in days) for loc in dates.TRAIN_LOCALES}
    for loc in dates.HELD_OUT_LOCALES:
        assert tuple(dates.render(d, loc) for d in days) not in trained, loc


def test_locales_without_a_month_name_or_unknown_are_rejected():
    # Chinese writes "1952年1月1日": a number where CLDR's month name is "一月".
    with pytest.raises(ValueError, match="locale 'zh': its long format does not spell out"):
        dates.check_locale("zh")
    with pytest.raises(ValueError, match="generate: locales: locale 'zh'"):
        dates.generate(3, locales=("fr", "zh"))
    with pytest.raises(ValueError, match="unknown locale 'xx_QQ'"):
        dates.check_locale("xx_QQ")


@pytest.mark.parametrize("locale", dates.TRAIN_LOCALES + dates.HELD_OUT_LOCALES)
def test_targets_parse_back_to_the_same_date(locale):
    pairs = dates.generate(200, locales=(locale,), seed=3)
    for source, target in pairs:
        d = dates.parse(target)
        assert d.isoformat() == target
        assert dates.render(d, locale) == source


def test_generate_is_deterministic_and_seed_dependent():
    a = dates.generate(500, seed=7)
    assert a == dates.generate(500, seed=7)
    assert a != dates.generate(500, seed=8)
    assert len(set(a)) == 500  # no repeated pair


def test_generate_leaves_global_random_state_alone():
    random.seed(123)
    expected = random.random()
    random.seed(123)
    dates.generate(50, seed=1)
    assert random.random() == expected


def test_generate_respects_range_and_exclude():
    start, end = datetime.date(2000, 1, 1), datetime.date(2000, 1, 10)
    excluded = [datetime.date(2000, 1, 3), "2000-01-04"]
    pairs = dates.generate(48, locales=("fr", "de", "en_US", "es", "it", "nl"), start=start,
                           end=end, exclude=excluded)  # fmt: skip
    assert len(set(pairs)) == 48  # all 8 dates x 6 locales
    got = {dates.parse(t) for _, t in pairs}
    assert got == {start + datetime.timedelta(days=i) for i in range(10)} - {
        datetime.date(2000, 1, 3),
        datetime.date(2000, 1, 4),
    }
    # 8 dates x 6 locales = 48 pairs: 60 is too many.
    with pytest.raises(ValueError, match=r"n=60 is more than the 48"):
        dates.generate(60, locales=("fr", "de", "en_US", "es", "it", "nl"), start=start,
                       end=datetime.date(2000, 1, 8))  # fmt: skip


def test_splits_are_disjoint(small_splits):
    s = small_splits
    assert set(s) == {"train", "unseen_dates", "unseen_locales"}
    assert [len(s[k]) for k in s] == [3000, 300, 300]
    train_dates = {t for _, t in s["train"]}
    for name in ("unseen_dates", "unseen_locales"):
        assert not train_dates & {t for _, t in s[name]}, name
    sources = [{x for x, _ in s[k]} for k in s]
    assert not sources[0] & sources[1]
    assert not sources[0] & sources[2]
    assert not sources[1] & sources[2]


def test_splits_use_the_right_locales(small_splits):
    def written_by_one_of(pairs, locales):
        return all(
            any(dates.render(dates.parse(target), loc) == source for loc in locales)
            for source, target in pairs
        )

    assert written_by_one_of(small_splits["unseen_locales"], dates.HELD_OUT_LOCALES)
    assert written_by_one_of(small_splits["unseen_dates"], dates.TRAIN_LOCALES)
    assert written_by_one_of(small_splits["train"][:300], dates.TRAIN_LOCALES)
    # every held-out locale occurs
    held = {
        loc
        for source, target in small_splits["unseen_locales"]
        for loc in dates.HELD_OUT_LOCALES
        if dates.render(dates.parse(target), loc) == source
    }
    assert held == set(dates.HELD_OUT_LOCALES)


def test_splits_are_deterministic(small_splits):
    assert dates.splits(n_train=3000, n_test=300, seed=0) == small_splits
    assert dates.splits(n_train=3000, n_test=300, seed=1) != small_splits


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n": 0}, "generate: n must be a positive int, got 0"),
        ({"n": -3}, "generate: n must be a positive int"),
        ({"n": 2.5}, "generate: n must be a positive int"),
        ({"n": 5, "locales": ("fr", "zz_ZZ")}, "generate: locales: unknown locale 'zz_ZZ'"),
        ({"n": 5, "locales": ()}, "generate: locales is empty"),
        ({"n": 5, "locales": ("fr", "fr")}, "generate: locales lists a locale twice"),
        (
            {"n": 5, "start": datetime.date(2001, 1, 1), "end": datetime.date(2000, 1, 1)},
            "generate: empty date range: start 2001-01-01 is after end 2000-01-01",
        ),
        (
            {
                "n": 5,
                "start": datetime.date(2000, 1, 1),
                "end": datetime.date(2000, 1, 1),
                "exclude": ["2000-01-01"],
            },
            "generate: empty date range: every date",
        ),
        ({"n": 5, "start": "2000-02-30"}, "generate: start must be a datetime.date or ISO"),
    ],
)
def test_generate_rejects_bad_arguments(kwargs, message):
    n = kwargs.pop("n")
    with pytest.raises(ValueError, match=message):
        dates.generate(n, **kwargs)


def test_bad_arguments_elsewhere():
    with pytest.raises(TypeError, match="generate: locales must be a sequence"):
        dates.generate(5, locales="fr")
    with pytest.raises(ValueError, match="splits: n_train must be a positive int"):
        dates.splits(n_train=0)
    with pytest.raises(ValueError, match="splits: n_test must be a positive int"):
        dates.splits(n_test=-1)
    with pytest.raises(
        ValueError, match=r"splits: held_out_locales and train_locales share \['fr'\]"
    ):
        dates.splits(n_train=10, n_test=10, held_out_locales=("fr", "da"))
    with pytest.raises(ValueError, match="unknown locale 'klingon'"):
        dates.render(datetime.date(2000, 1, 1), "klingon")
    with pytest.raises(TypeError, match="render: d must be a datetime.date"):
        dates.render("2000-01-01", "fr")


@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "22 novembre 2026", "2026-1-1", 20])
def test_parse_rejects_malformed_text_and_names_it(bad):
    with pytest.raises(ValueError, match="parse: "):
        dates.parse(bad)
    try:
        dates.parse(bad)
    except ValueError as err:
        assert repr(bad) in str(err)


def test_vocab_round_trip(small_splits):
    sources = [x for x, _ in small_splits["train"]]
    vocab = dates.CharVocab.build(sources)
    assert (vocab.pad_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2)
    assert len(vocab) == len(set("".join(sources))) + 4
    assert vocab == dates.CharVocab.build(reversed(sources))  # order does not matter
    ids, lengths = vocab.encode(sources[:50], bos=True, eos=True)
    assert ids.dtype == lengths.dtype == torch.long
    assert ids.shape == (50, int(lengths.max()))
    assert lengths.tolist() == [len(s) + 2 for s in sources[:50]]
    assert (ids[:, 0] == vocab.bos_id).all()
    for row, n in zip(ids, lengths, strict=True):
        assert row[n - 1] == vocab.eos_id
        assert (row[n:] == vocab.pad_id).all()
        assert (row[:n] != vocab.pad_id).all()
    assert vocab.decode(ids) == sources[:50]
    plain, plain_lengths = vocab.encode(sources[:5])
    assert vocab.decode(plain) == sources[:5]
    assert plain_lengths.tolist() == [len(s) for s in sources[:5]]


def test_vocab_targets_and_unknown_characters():
    vocab = dates.CharVocab.build(["2026-11-22", "1950-03-04"])
    assert vocab.itos[4:] == ("-", "0", "1", "2", "3", "4", "5", "6", "9")
    ids, _ = vocab.encode(["2026-11-22", "20x6"])
    assert ids[1, 2].item() == vocab.unk_id
    assert vocab.decode(ids) == ["2026-11-22", "20\ufffd6"]
    assert vocab.decode(ids[0]) == ["2026-11-22"]  # one row
    # decode stops at the first eos, ignores bos and padding
    row = [vocab.bos_id, *ids[0, :4].tolist(), vocab.eos_id, *ids[0, 4:].tolist()]
    assert vocab.decode([row]) == ["2026"]


def test_vocab_bad_arguments():
    vocab = dates.CharVocab.build(["abc"])
    with pytest.raises(TypeError, match="wrap one in"):
        vocab.encode("abc")
    with pytest.raises(ValueError, match="texts is empty"):
        vocab.encode([])
    with pytest.raises(TypeError, match="not one string"):
        dates.CharVocab.build("abc")
    with pytest.raises(ValueError, match=r"ids must be \(N, L\)"):
        vocab.decode(torch.zeros(2, 2, 2, dtype=torch.long))
