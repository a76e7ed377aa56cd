"""Dates written out in many languages, and their ISO form: a small translation task.

A pair is ``("22 novembre 2026", "2026-11-22")``: the source is a date as a locale writes it out in
words, the target is the ISO 8601 date. The texts come from the Unicode CLDR data that ships with
:mod:`babel` (nothing is downloaded). Only each locale's *long* format is used, which spells the
month out (or, for a few locales, labels it), because numeric formats are ambiguous: "5/6/2026" is
the 6th of May in one country and the 5th of June in another.

The task looks like translation (different word orders, month names, scripts and punctuation; one
right answer), and a small recurrent model learns it in seconds, so the chapter on attention in RNN
encoder–decoders uses it to show what attention adds to an encoder-decoder, and the T5 chapter
reuses it.

Three splits (:func:`splits`): ``"train"``; ``"unseen_dates"`` (the training locales, on dates that
never occur in training); and ``"unseen_locales"`` (locales held out of training, on those unseen
dates too). The held-out locales are regional variants and a close neighbour of training
languages: they reorder words the model has seen or spell them a little differently ("Jänner" in
Austria, "setiembre" in Peru, "marts" in Danish). A language with month words of its own would
be a much harder test; no small model can guess a word it has never met.

Characters become ids with :class:`CharVocab` (padding 0, then start, end and unknown).
"""

from __future__ import annotations

import datetime
import functools
import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import torch

__all__ = [
    "TRAIN_LOCALES",
    "HELD_OUT_LOCALES",
    "render",
    "check_locale",
    "generate",
    "splits",
    "parse",
    "spans",
    "CharVocab",
]

#: Locales the models train on: 18 languages in Latin, Cyrillic and Greek script, with the day
#: first, the month first ("November 22, 2026") or the year first ("2026. november 22.").
TRAIN_LOCALES: tuple[str, ...] = (
    "en_US", "fr", "de", "es", "it", "pt", "nl", "sv", "nb",
    "pl", "cs", "fi", "tr", "ro", "hu", "id", "ru", "el",
)  # fmt: skip

#: Locales never seen in training, each writing dates differently from every training locale:
#: regional variants that reorder or respell words the model knows (British English and Hindi in
#: Latin script put the day first; Austria says "Jänner"; Peru "setiembre"; Honduras pads the day,
#: "03 de enero") and Danish, a close neighbour of Norwegian and Swedish ("marts", "maj").
HELD_OUT_LOCALES: tuple[str, ...] = ("en_GB", "hi_Latn", "de_AT", "es_PE", "es_HN", "da")

#: The default date range: a century.
START = datetime.date(1950, 1, 1)
END = datetime.date(2049, 12, 31)

# Some locales separate words with no-break spaces (U+00A0, U+202F): write them as plain spaces.
_SPACES = str.maketrans({"\u00a0": " ", "\u202f": " ", "\u2009": " "})
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}")


@functools.cache
def _babel_locale(locale: str):
    from babel import Locale, UnknownLocaleError

    if not isinstance(locale, str) or not locale:
        raise ValueError(
            f"locale must be a babel locale tag such as 'fr' or 'en_GB', got {locale!r}"
        )
    try:
        return Locale.parse(locale)
    except (UnknownLocaleError, ValueError) as err:
        raise ValueError(
            f"unknown locale {locale!r}: babel has no data for it ({err}); use a tag such as "
            f"'fr', 'de_AT' or 'en_GB' (babel.localedata.locale_identifiers() lists them all)"
        ) from None


def _render_unchecked(d: datetime.date, locale: str) -> str:
    from babel.dates import format_date

    return format_date(d, "long", locale=_babel_locale(locale)).translate(_SPACES)


@functools.cache
def check_locale(locale: str) -> str:
    """Check that ``locale``'s long date format names the month and is unambiguous.

    For every day of a leap year (1952) the rendering must contain the locale's name of that month,
    the four-digit year and the day's number; the twelve month names must differ; and the 366
    texts must all differ. A locale that fails cannot be used: its text would not determine the
    date.

    Args:
        locale: a babel locale tag, e.g. ``"fr"`` or ``"de_AT"``.

    Returns:
        The locale tag, unchanged, when it passes.

    Raises:
        ValueError: naming the locale and what is wrong (unknown to babel, no month name, ...).
    """
    from babel.dates import get_month_names

    loc = _babel_locale(locale)
    months = get_month_names("wide", context="format", locale=loc)
    names = [months[m].translate(_SPACES) for m in range(1, 13)]
    if len(set(names)) != 12:
        raise ValueError(f"locale {locale!r}: its twelve month names are not all different")
    texts = set()
    day = datetime.date(1952, 1, 1)
    while day.year == 1952:
        text = _render_unchecked(day, locale)
        if names[day.month - 1] not in text:
            raise ValueError(
                f"locale {locale!r}: its long format does not spell out the month "
                f"(got {text!r} for {day.isoformat()})"
            )
        if "1952" not in text or str(day.day) not in text:
            raise ValueError(
                f"locale {locale!r}: its long format does not show the year and day in western "
                f"digits (got {text!r} for {day.isoformat()})"
            )
        texts.add(text)
        day += datetime.timedelta(days=1)
    if len(texts) != 366:
        raise ValueError(f"locale {locale!r}: two dates of 1952 are written the same way")
    return locale


def render(d: datetime.date, locale: str) -> str:
    """Write the date ``d`` out the way ``locale`` does, month in words.

    >>> render(datetime.date(2026, 11, 22), "fr")
    '22 novembre 2026'

    Args:
        d: the date.
        locale: a babel locale tag that passes :func:`check_locale`.

    Returns:
        The text, with no-break spaces replaced by plain spaces.
    """
    if not isinstance(d, datetime.date) or isinstance(d, datetime.datetime):
        raise TypeError(f"render: d must be a datetime.date, got {type(d).__name__}")
    return _render_unchecked(d, check_locale(locale))


def parse(iso: str) -> datetime.date:
    """The date of an ISO text ``"YYYY-MM-DD"`` (a target, or a model's output).

    Raises:
        ValueError: with the text, if it is not a valid ISO date (e.g. ``"2026-13-01"``).
    """
    if not isinstance(iso, str) or not _ISO.fullmatch(iso):
        raise ValueError(f"parse: expected an ISO date 'YYYY-MM-DD', got {iso!r}")
    try:
        return datetime.date.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"parse: {iso!r} is not a valid date") from None


@functools.cache
def _month_names(month: int) -> tuple[str, ...]:
    """Every way a known locale writes ``month``, longest first."""
    from babel.dates import get_month_names

    names = {
        get_month_names("wide", context="format", locale=_babel_locale(loc))[month].translate(
            _SPACES
        )
        for loc in TRAIN_LOCALES + HELD_OUT_LOCALES
    }
    return tuple(sorted(names, key=lambda n: (-len(n), n)))


def spans(source: str, target: str) -> dict[str, tuple[int, int]]:
    """Where the year, the month and the day are written in ``source``.

    Used to check an alignment: the output characters of the year should attend to the year's
    digits, those of the month to the month's name.

    >>> spans("22 novembre 2026", "2026-11-22")
    {'year': (12, 16), 'month': (3, 11), 'day': (0, 2)}

    Args:
        source: a text written by one of :data:`TRAIN_LOCALES` or :data:`HELD_OUT_LOCALES`.
        target: its ISO date.

    Returns:
        ``{"year": (start, end), "month": (start, end), "day": (start, end)}``, character
        positions in ``source`` (end excluded).

    Raises:
        ValueError: if one of the three cannot be found.
    """
    d = parse(target)
    found: dict[str, tuple[int, int]] = {}
    year = re.search(rf"(?<!\d){d.year:04d}(?!\d)", source)
    day = re.search(rf"(?<!\d)0?{d.day}(?!\d)", source)
    month = next((m for m in map(source.find, _month_names(d.month)) if m >= 0), -1)
    if year is None or day is None or month < 0:
        raise ValueError(f"spans: cannot find the year, month and day of {target} in {source!r}")
    name = next(n for n in _month_names(d.month) if source.find(n) == month)
    found["year"] = year.span()
    found["month"] = (month, month + len(name))
    found["day"] = day.span()
    return found


def _as_date(x, name: str) -> datetime.date:
    if isinstance(x, datetime.datetime):
        return x.date()
    if isinstance(x, datetime.date):
        return x
    if isinstance(x, str):
        try:
            return parse(x)
        except ValueError:
            raise ValueError(f"{name} must be a datetime.date or ISO text, got {x!r}") from None
    raise TypeError(f"{name} must be a datetime.date or ISO text, got {type(x).__name__}")


def _check_n(n, name: str) -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"{name} must be a positive int, got {n!r}")
    return n


def _check_locales(locales, name: str = "locales") -> tuple[str, ...]:
    if isinstance(locales, str) or not isinstance(locales, Iterable):
        raise TypeError(f"{name} must be a sequence of locale tags, got {locales!r}")
    locales = tuple(locales)
    if not locales:
        raise ValueError(f"{name} is empty: give at least one locale tag")
    if len(set(locales)) != len(locales):
        raise ValueError(f"{name} lists a locale twice: {locales}")
    for loc in locales:
        try:
            check_locale(loc)
        except ValueError as err:
            raise ValueError(f"{name}: {err}") from None
    return locales


def _days(start: datetime.date, end: datetime.date, exclude: set[datetime.date]):
    n_days = (end - start).days + 1
    return [
        day
        for day in (start + datetime.timedelta(days=i) for i in range(n_days))
        if day not in exclude
    ]


def generate(
    n: int,
    *,
    locales: Sequence[str] = TRAIN_LOCALES,
    start: datetime.date = START,
    end: datetime.date = END,
    seed: int = 0,
    exclude: Iterable[datetime.date | str] = (),
) -> list[tuple[str, str]]:
    """Draw ``n`` different (date, locale) pairs and write each out: ``(source, ISO target)``.

    Dates are uniform over ``[start, end]`` and locales uniform over ``locales``; no (date,
    locale) pair repeats. The same arguments give the same list on every machine.

    Args:
        n: how many pairs (at least 1, at most the number of (date, locale) combinations).
        locales: babel locale tags; each must pass :func:`check_locale`.
        start: the first date that may be drawn (inclusive).
        end: the last date that may be drawn (inclusive).
        seed: seeds a private random generator (the global ones are left alone).
        exclude: dates (``datetime.date`` or ISO text) never to draw, e.g. a test split's.

    Returns:
        A list of ``n`` pairs ``(source text, "YYYY-MM-DD")``.

    Raises:
        ValueError: naming the argument: ``n`` not positive or too large, an unknown or unusable
            locale in ``locales``, an empty range (``start`` after ``end``, or every date
            excluded).
    """
    n = _check_n(n, "generate: n")
    locales = _check_locales(locales, "generate: locales")
    start, end = _as_date(start, "generate: start"), _as_date(end, "generate: end")
    if start > end:
        raise ValueError(f"generate: empty date range: start {start} is after end {end}")
    excluded = {_as_date(x, "generate: exclude item") for x in exclude}
    days = _days(start, end, excluded)
    if not days:
        raise ValueError(
            f"generate: empty date range: every date from start {start} to end {end} is excluded"
        )
    total = len(days) * len(locales)
    if n > total:
        raise ValueError(
            f"generate: n={n} is more than the {total} different (date, locale) pairs available "
            f"({len(days)} dates x {len(locales)} locales)"
        )
    rng = random.Random(seed)
    pairs = []
    for i in rng.sample(range(total), n):
        day, loc = days[i // len(locales)], locales[i % len(locales)]
        pairs.append((_render_unchecked(day, loc), day.isoformat()))
    return pairs


def splits(
    n_train: int = 20_000,
    n_test: int = 1_000,
    seed: int = 0,
    *,
    train_locales: Sequence[str] = TRAIN_LOCALES,
    held_out_locales: Sequence[str] = HELD_OUT_LOCALES,
) -> dict[str, list[tuple[str, str]]]:
    """A training set and two test sets whose dates never occur in training.

    ``2 * n_test`` dates of the default century are set aside first: half for
    ``"unseen_dates"``, half for ``"unseen_locales"`` (so no text is in both). The training pairs
    are drawn from the other dates.

    Args:
        n_train: number of training pairs.
        n_test: number of pairs in each test set.
        seed: makes the three lists reproducible.
        train_locales: locales of ``"train"`` and ``"unseen_dates"``.
        held_out_locales: locales of ``"unseen_locales"``; must not overlap ``train_locales``.

    Returns:
        ``{"train": [...], "unseen_dates": [...], "unseen_locales": [...]}``, lists of
        ``(source text, ISO target)``.
    """
    n_train = _check_n(n_train, "splits: n_train")
    n_test = _check_n(n_test, "splits: n_test")
    train_locales = _check_locales(train_locales, "splits: train_locales")
    held_out_locales = _check_locales(held_out_locales, "splits: held_out_locales")
    shared = sorted(set(train_locales) & set(held_out_locales))
    if shared:
        raise ValueError(f"splits: held_out_locales and train_locales share {shared}")
    all_days = _days(START, END, set())
    if 2 * n_test >= len(all_days):
        raise ValueError(
            f"splits: n_test={n_test} is too large: 2 * n_test must be below the "
            f"{len(all_days)} days of {START}..{END}"
        )
    rng = random.Random(seed)
    test_days = rng.sample(all_days, 2 * n_test)
    return {
        "train": generate(n_train, locales=train_locales, seed=seed + 1, exclude=test_days),
        "unseen_dates": _pairs(test_days[:n_test], train_locales, random.Random(seed + 2)),
        "unseen_locales": _pairs(test_days[n_test:], held_out_locales, random.Random(seed + 3)),
    }


def _pairs(days: list[datetime.date], locales: tuple[str, ...], rng: random.Random):
    """Each of ``days`` once, each in a locale drawn from ``locales``."""
    return [(_render_unchecked(d, rng.choice(locales)), d.isoformat()) for d in days]


@dataclass(frozen=True)
class CharVocab:
    """Characters to ids and back: ``pad`` is 0, then ``<bos>``, ``<eos>``, ``<unk>``, then the
    characters in sorted order.

    Build one from training texts with :meth:`build`; a character not seen there encodes to
    ``unk_id`` (a model meets such characters on held-out locales).
    """

    itos: tuple[str, ...]
    stoi: dict[str, int] = field(init=False, repr=False, compare=False)

    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    pad_id = 0
    bos_id = 1
    eos_id = 2
    unk_id = 3

    def __post_init__(self) -> None:
        if tuple(self.itos[:4]) != self.SPECIALS:
            raise ValueError(f"CharVocab: itos must start with {self.SPECIALS}")
        object.__setattr__(self, "stoi", {s: i for i, s in enumerate(self.itos)})

    @classmethod
    def build(cls, texts: Iterable[str]) -> CharVocab:
        """The vocabulary of every character in ``texts``."""
        if isinstance(texts, str):
            raise TypeError("CharVocab.build: texts must be a sequence of strings, not one string")
        chars: set[str] = set()
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(
                    f"CharVocab.build: every text must be a str, got {type(t).__name__}"
                )
            chars.update(t)
        return cls(cls.SPECIALS + tuple(sorted(chars)))

    def __len__(self) -> int:
        return len(self.itos)

    def encode(
        self, texts: Sequence[str], *, bos: bool = False, eos: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of texts as padded ids.

        Args:
            texts: N strings.
            bos: put ``bos_id`` first.
            eos: put ``eos_id`` last.

        Returns:
            ``(ids, lengths)``: ids ``(N, L)`` long, padded on the right with ``pad_id`` to the
            longest; lengths ``(N,)`` long, counting ``bos``/``eos``.
        """
        if isinstance(texts, str):
            raise TypeError("CharVocab.encode: texts must be a list of strings; wrap one in [...]")
        rows = []
        for t in texts:
            if not isinstance(t, str):
                raise TypeError(
                    f"CharVocab.encode: every text must be a str, got {type(t).__name__}"
                )
            row = [self.stoi.get(c, self.unk_id) for c in t]
            rows.append(([self.bos_id] if bos else []) + row + ([self.eos_id] if eos else []))
        if not rows:
            raise ValueError("CharVocab.encode: texts is empty")
        lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)  # (N,)
        ids = torch.full((len(rows), int(lengths.max())), self.pad_id, dtype=torch.long)  # (N, L)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        return ids, lengths

    def decode(self, ids) -> list[str]:
        """Turn ids back into texts: stop at ``eos_id``, drop ``pad_id`` and ``bos_id``.

        Args:
            ids: ``(N, L)`` ids (a tensor or nested lists); a single ``(L,)`` row gives a list of
                one text.

        Returns:
            N strings (an unknown id or ``unk_id`` reads as U+FFFD).
        """
        t = torch.as_tensor(ids)
        if t.dim() == 1:
            t = t[None]
        if t.dim() != 2:
            raise ValueError(
                f"CharVocab.decode: ids must be (N, L) or (L,), got shape {tuple(t.shape)}"
            )
        out = []
        for row in t.tolist():
            chars = []
            for i in row:
                if i == self.eos_id:
                    break
                if i in (self.pad_id, self.bos_id):
                    continue
                chars.append(self.itos[i] if 4 <= i < len(self.itos) else "\ufffd")
            out.append("".join(chars))
        return out
