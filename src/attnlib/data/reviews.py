"""Template sentences with two labels each: their sentiment and whether they are about food.

"the soup was awful ." is negative and about food; "our film felt superb today ." is positive and
not. Every sentence has one adjective (which alone decides the sentiment) and one noun (which alone
decides the topic), so it is known which word *should* matter for each label. The chapter
"Attention is not explanation" trains one probe per label on a sentence encoder and asks whether
attention, gradients or occlusion find that word.

Train and test sets use disjoint words (:func:`splits`), so a probe must generalise.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["POSITIVE", "NEGATIVE", "FOOD", "OTHER", "TEMPLATES", "make_sentences", "splits"]

POSITIVE = ("great", "wonderful", "excellent", "lovely", "superb", "fantastic",
            "brilliant", "delightful", "pleasant", "perfect", "charming", "enjoyable")
NEGATIVE = ("awful", "terrible", "dreadful", "horrible", "boring", "poor",
            "disappointing", "bad", "dull", "miserable", "nasty", "weak")
FOOD = ("meal", "soup", "pizza", "cake", "salad", "breakfast", "dinner", "pasta")
OTHER = ("film", "concert", "book", "trip", "show", "game", "hotel", "lecture")
TEMPLATES = ("the {noun} was {adj} .", "that {noun} is {adj} .", "our {noun} felt {adj} today .")

Row = tuple[str, int, int, str]  # (text, sentiment 1/0, about food 1/0, the adjective)


def make_sentences(
    positive: Sequence[str], negative: Sequence[str], food: Sequence[str], other: Sequence[str]
) -> list[Row]:
    """Every combination of a template, an adjective and a noun.

    Returns:
        Rows ``(text, sentiment, is_food, adjective)``: sentiment 1 for an adjective of
        ``positive``, 0 for one of ``negative``; is_food 1 for a noun of ``food``, 0 for ``other``.
    """
    rows = []
    for template in TEMPLATES:
        for adj, sentiment in [(a, 1) for a in positive] + [(a, 0) for a in negative]:
            for noun, is_food in [(n, 1) for n in food] + [(n, 0) for n in other]:
                rows.append((template.format(noun=noun, adj=adj), sentiment, is_food, adj))
    return rows


def splits() -> tuple[list[Row], list[Row]]:
    """``(train, test)``: the first half of each word list for training, the rest for testing.

    No adjective or noun occurs in both (288 training and 288 test sentences).
    """
    train = make_sentences(POSITIVE[:6], NEGATIVE[:6], FOOD[:4], OTHER[:4])
    test = make_sentences(POSITIVE[6:], NEGATIVE[6:], FOOD[4:], OTHER[4:])
    return train, test
