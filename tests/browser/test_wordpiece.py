"""BERT's tokeniser in the page (_wordpiece.js) against Hugging Face ``tokenizers`` on
all-MiniLM-L6-v2's own tokenizer.json: the same ids, tokens and offsets on a hard corpus, on
every Unicode code point, and on over-long input; bad input gets a clear error; a long input
does not hang the page; the tokeniser is pure (it never touches the page, so hostile text stays
data).

The tests run the library in a harness page of their own: _base.js, _nn.js and _wordpiece.js
joined as the live_bert view joins them, with an empty view.
"""

from __future__ import annotations

import re
import time
import unicodedata

import pytest

from attnlib.weights import minilm
from attnlib.weights._package import package_file
from attnlib.widgets._vocab import minilm_vocab_text

from .harness import HOSTILE, assert_clean, harness_page

WIDGETS = minilm.__file__.rsplit("/weights/", 1)[0] + "/widgets"

# A hard corpus: what a reader may type, and what breaks naive tokenisers.
CORPUS = [
    # plain English, casing, contractions
    "The animal didn't cross the street because it was too tired.",
    "HELLO World, hello WORLD!",
    "Don't stop-believing; it's 'quoted' and \"double-quoted\".",
    "unaffable tokenisation of antidisestablishmentarianism",
    # accents, precomposed and combining
    "Café, naïve, résumé, déjà vu, façade, coöperate",
    "cafe\u0301 and cafe\u0301\u0301 and e\u0300\u0323",
    "El niño comió piñata en España; ¿qué? ¡Olé!",
    "Ångström, Øresund, Åland, Ærø, straße, Œuvre",
    "Tiếng Việt có dấu: Nguyễn, Hà Nội, phở, đường",
    "İstanbul ve ılık ISPARTA; Σίσυφος ΣΟΦΟΣ ς",
    "Zoë Brontë, Dvořák, Łódź, Kraków, Škoda, Čapek",
    # CJK ideographs, kana, Korean
    "我爱自然语言处理。注意力机制很重要！",
    "日本語の文章：東京は大きい都市です。",
    "カタカナとひらがなだけのぶんしょう",
    "ｶﾀｶﾅ ﾊﾝｶｸ and ＦＵＬＬＷＩＤＴＨ １２３",
    "한국어 문장입니다. 주의 메커니즘!",
    "\U00020000\U0002a6df\U0002b740\U0002b820\U0002b920 \uf900\ufaff \U0002f800",
    "Mixed: BERT是一个模型, GPT-4も, 한국 too.",
    # emoji: single, ZWJ sequences, skin tones, flags, keycaps
    "I love it 😀😂🥺🫠!",
    "family 👨‍👩‍👧‍👦 and 🧑🏽‍💻 coding",
    "thumbs 👍🏻👍🏼👍🏽👍🏾👍🏿 wave 👋",
    "flags 🇫🇷🇯🇵 keycap 1️⃣ #️⃣ heart ❤️",
    # right-to-left and other scripts
    "مرحبا بالعالم، كيف حالك؟",
    "שָׁלוֹם עוֹלָם",
    "Привет, мир! Ёжик в тумане.",
    "Γειά σου Κόσμε· ΑΘΗΝΑ",
    "नमस्ते दुनिया। हिन्दी",
    "สวัสดีชาวโลก",
    "Ⅻ ½ ² ℃ ™ ﬁ ﬂ ǅ ẞ",
    # numbers with separators, units, money
    "3.14159 1,000,000 1 000 000 1'000'000 10^9 1e-5",
    "$100.50 €20 £3 ¥500 ₹99 50% 3/4 -273.15°C",
    "2026-12-02T16:30:00Z 12:30pm +44 (0)20 7946 0958",
    "v2.3.1-beta+build.42 0x1F 0b1010 #123 @user",
    # punctuation runs and brackets
    "Wait... what?!?! ---- ==== ~~~~ ____ ****",
    "«guillemets» „Anführungszeichen“ ‘single’ “double” – — ‐ ‑",
    "(((nested))) [[brackets]] {{braces}} <<angles>>",
    "a/b\\c|d_e-f+g=h*i&j^k%l$m#n@o!p?q",
    "§1 ¶2 †3 ‡4 •5 ‰6 ‽7 ⁂8 ※9",
    # unknown and long words
    "xyzzyplugh qwxqzvkj zzzzzzzzzz",
    "supercalifragilisticexpialidocious pneumonoultramicroscopicsilicovolcanoconiosis",
    "a" * 100,
    "b" * 101,
    "é" * 120,
    "word" + "x" * 150 + " after",
    "abc" * 40 + "!" + "d" * 99,
    # control characters, whitespace of every kind, zero-width characters
    "tab\there\nnewline\r\ncrlf\x0bvt\x0cff",
    "null\x00byte\x07bell\x1bescape\x7fdel\x85nel",
    "zero\u200bwidth\u200cnon\u200djoiner\u2060wj\ufeffbom",
    "nbsp\u00a0here\u2003em\u3000ideographic\u2028ls\u2029ps\u202fnnbsp",
    "replace\ufffdment and \ue000private\U000f0000use",
    "soft\u00adhyphen and \u200eLTR\u200fRTL\u202aembed\u202c",
    "   leading and trailing   ",
    "unassigned \u0378\u0379 \U000e0001 tag",
    # combining marks alone and stacked
    "\u0301\u0302 start with marks",
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349a\u0300lgo",
    "ক্ষ দ্বিতীয় \u0915\u093c \u0bcd",
    # the special tokens typed as text
    "[CLS] the [MASK] sat on the [SEP] mat [UNK] [PAD]",
    "a[MASK]b [mask] [ MASK ] [[MASK]] [MASK",
    # markup, code and URLs
    "https://example.com/path?q=1&r=2#frag",
    "def f(x): return x**2  # a comment",
    "<b>bold</b> &amp; &lt;tag&gt;",
    # the hostile strings every widget test uses, empty input, whitespace only
    *HOSTILE,
    "",
    " ",
    "\t\n\r \u00a0\u3000",
]

HARNESS_MODULE = "wordpiece.js"
# The empty view a library test needs: the joined file is then a module like a widget's.
EMPTY_VIEW = "export default { render() {} };\n"


def _read(name: str) -> str:
    with open(f"{WIDGETS}/{name}", encoding="utf-8") as f:
        return f.read().rstrip("\n") + "\n"


@pytest.fixture(scope="module")
def hf():
    """Hugging Face's tokenizer for all-MiniLM-L6-v2 from the package, padding and truncation
    off (the file pads to 128)."""
    from tokenizers import Tokenizer

    path = package_file(minilm.MODULE, "model/tokenizer.json", pip_name=minilm.PIP_NAME)
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@pytest.fixture
def page(harness_dir, harness_server, open_page):
    """A harness page with the tokeniser loaded (window.wordpiece) and the vocabulary read
    from the package (window.vocab); returns (page, watch)."""
    module = "\n".join(_read(f) for f in ("_base.js", "_nn.js", "_wordpiece.js")) + EMPTY_VIEW
    (harness_dir / HARNESS_MODULE).write_text(module, encoding="utf-8")
    (harness_dir / "wordpiece.css").write_text("", encoding="utf-8")
    (harness_dir / "vocab.txt").write_text(minilm_vocab_text(), encoding="utf-8")
    html = harness_page(HARNESS_MODULE, "wordpiece.css", "WordPiece harness", "wordpiece")
    (harness_dir / "wordpiece.html").write_text(html, encoding="utf-8")
    page, watch = open_page(harness_server.url("wordpiece.html"), (harness_server.base,))
    page.wait_for_function("window.harnessReady === true")
    page.evaluate(
        """async () => {
          const text = await (await fetch("vocab.txt")).text();
          window.vocab = window.wordpiece.wordpieceVocab(text);
        }"""
    )
    return page, watch


def tokenize_in_page(page, texts: list[str], **options) -> list[dict]:
    return page.evaluate(
        "([texts, options]) => texts.map((t) => window.wordpiece.bertTokenize(t, window.vocab,"
        " options))",
        [texts, options],
    )


def ids_in_page(page, texts: list[str], **options) -> list[str]:
    """Only the ids, each text's as one comma-separated string (quicker to bring back)."""
    return page.evaluate(
        "([texts, options]) => texts.map((t) => window.wordpiece.bertTokenize(t, window.vocab,"
        " options).ids.join())",
        [texts, options],
    )


def utf16_offsets(text: str, offsets: list[tuple[int, int]]) -> list[list[int]]:
    """HF's offsets (Python characters, i.e. code points) as UTF-16 offsets (JavaScript's)."""
    at = [0]
    for ch in text:
        at.append(at[-1] + (2 if ord(ch) > 0xFFFF else 1))
    return [[at[s], at[e]] for s, e in offsets]


def mismatches(texts, ours, hf_encodings) -> list[str]:
    bad = []
    for text, got, want in zip(texts, ours, hf_encodings, strict=True):
        if got["ids"] != want.ids or got["tokens"] != want.tokens:
            bad.append(f"{text[:60]!r}: page {got['tokens'][:12]} != HF {want.tokens[:12]}")
        elif got["offsets"][1:-1] != utf16_offsets(text, want.offsets)[1:-1]:
            bad.append(f"{text[:60]!r}: offsets {got['offsets']} != HF {want.offsets}")
    return bad


# --- the same tokens as Hugging Face ------------------------------------------------------------


def test_corpus_is_hard_enough():
    assert len(CORPUS) >= 60
    assert any(len(t) > 100 and " " not in t for t in CORPUS), "a word over 100 characters"
    assert any(unicodedata.category(c) == "Cc" for t in CORPUS for c in t), "control characters"
    assert any("\u200d" in t for t in CORPUS), "a ZWJ sequence"
    assert "" in CORPUS and " " in CORPUS


def test_corpus_gives_hugging_faces_ids_tokens_and_offsets(page, hf):
    page, watch = page
    ours = tokenize_in_page(page, CORPUS)
    bad = mismatches(CORPUS, ours, hf.encode_batch(CORPUS))
    assert not bad, f"{len(bad)} of {len(CORPUS)} strings differ:\n" + "\n".join(bad)
    assert not any(r["truncated"] for r in ours)
    assert ours[CORPUS.index("")]["tokens"] == ["[CLS]", "[SEP]"]
    assert_clean(watch)


def test_every_code_point_normalises_and_splits_as_hugging_face(page, hf):
    """Each code point c (no surrogates) between two letters, "a" + c + "a", one per word: what
    the normaliser does with it (dropped, a space, an accent stripped, lower-cased, an
    ideograph spaced out) and whether it is punctuation all show in the tokens. Planes 0-3 and
    14 hold every assigned character and are checked whole; of the unassigned planes 4-13 and
    the private-use planes 15-16, every 97th code point."""
    page, watch = page
    bad = []
    for plane_start in range(0, 0x110000, 0x10000):
        step = 1 if plane_start <= 0x30000 or plane_start == 0xE0000 else 97
        points = [c for c in range(plane_start, plane_start + 0x10000, step)
                  if not 0xD800 <= c <= 0xDFFF]
        blocks = [points[k : k + 4096] for k in range(0, len(points), 4096)]
        chunks = ["".join(f"a{chr(c)}a " for c in block) for block in blocks]
        ours = ids_in_page(page, chunks, maxLength=10**6)
        for block, got, want in zip(blocks, ours, hf.encode_batch(chunks), strict=True):
            if got != ",".join(map(str, want.ids)):
                bad.append(f"U+{block[0]:04X}..U+{block[-1]:04X}")
    assert not bad, f"{len(bad)} blocks of 4096 code points differ:\n" + "\n".join(bad[:40])
    assert_clean(watch)


def test_over_long_input_is_cut_to_max_length_keeping_sep(page, hf):
    page, _ = page
    texts = [" ".join(["attention"] * 600), "é" * 30 + " !" * 700, CORPUS[0] * 60]
    hf.enable_truncation(max_length=512)
    try:
        want = hf.encode_batch(texts)
    finally:
        hf.no_truncation()
    ours = tokenize_in_page(page, texts)
    assert not mismatches(texts, ours, want)
    for got in ours:
        assert got["truncated"] and len(got["ids"]) == 512
        assert got["tokens"][0] == "[CLS]" and got["tokens"][-1] == "[SEP]"
    short = tokenize_in_page(page, [CORPUS[0]], maxLength=8)[0]
    assert short["truncated"] and short["tokens"] == [
        "[CLS]", "the", "animal", "didn", "'", "t", "cross", "[SEP]"
    ]
    exact = tokenize_in_page(page, ["a b c"], maxLength=5)[0]
    assert not exact["truncated"] and exact["tokens"] == ["[CLS]", "a", "b", "c", "[SEP]"]


def test_bad_input_gets_a_clear_error(page):
    page, _ = page
    errors = page.evaluate(
        """() => {
          const { bertTokenize, wordpieceVocab } = window.wordpiece;
          const attempts = [
            () => bertTokenize(42, window.vocab),
            () => bertTokenize("hi", null),
            () => bertTokenize("hi", window.vocab, { maxLength: 1 }),
            () => bertTokenize("hi", window.vocab, { maxLength: 2.5 }),
            () => wordpieceVocab(null),
            () => wordpieceVocab("a\\nb\\n"),
          ];
          return attempts.map((f) => { try { f(); return "no error"; }
                                       catch (e) { return `${e.name}: ${e.message}`; } });
        }"""
    )
    assert errors[0].startswith("TypeError") and "text must be a string" in errors[0]
    assert errors[1].startswith("TypeError") and "wordpieceVocab" in errors[1]
    assert all(e.startswith("RangeError") and "maxLength" in e for e in errors[2:4])
    assert errors[4].startswith("TypeError") and "vocabText" in errors[4]
    assert "no [UNK] token" in errors[5]


def test_vocab_lines_are_ids(page):
    page, _ = page
    got = page.evaluate(
        """() => {
          const text = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hi", ""].join("\\r\\n");
          const v = window.wordpiece.wordpieceVocab(text);
          return [v.tokens, v.ids.get("hi"), v.unk, v.cls, v.sep, v.specials];
        }"""
    )
    assert got == [["[PAD]", "[UNK]", "[CLS]", "[SEP]", "hi"], 4, 1, 2, 3,
                   ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]]
    assert page.evaluate("window.vocab.tokens.length") == 30522


# --- pure: no markup, no hang -------------------------------------------------------------------


def test_tokeniser_never_touches_the_page():
    """The tokeniser is pure string work: no DOM, no globals, no network, no timers, so what
    it returns for hostile text is data that the view then shows as text."""
    code = _read("_wordpiece.js")
    code = re.sub(r"//[^\n]*|/\*.*?\*/", "", code, flags=re.S)  # the comments
    for word in ("document", "window", "globalThis", "innerHTML", "textContent", "fetch",
                 "XMLHttpRequest", "eval", "Function(", "setTimeout", "el(", "svgEl(",
                 "import", "localStorage"):
        assert word not in code, f"_wordpiece.js uses {word}"


def test_hostile_text_stays_data(page, hf):
    page, watch = page
    before = page.evaluate("document.body.innerHTML")
    ours = tokenize_in_page(page, HOSTILE)
    assert page.evaluate("document.body.innerHTML") == before, "the page did not change"
    assert page.evaluate("document.querySelectorAll('img, svg, script:not([type])').length") == 0
    assert ours[0]["tokens"][1:4] == ["<", "im", "##g"]
    assert [r["ids"] for r in ours] == [e.ids for e in hf.encode_batch(HOSTILE)]
    assert_clean(watch)  # no dialog opened, no error


def test_long_input_tokenises_without_hanging(page, hf):
    """20,000 characters of mixed text (words, a 150-letter word, CJK, emoji, punctuation
    runs): measured, and asserted only to finish well inside 5 s."""
    page, watch = page
    unit = ("The animal didn't cross the street; it was too tired. " + "x" * 150
            + " 注意力 😀👨‍👩‍👧 ...!!! Café naïve ")
    text = (unit * (20000 // len(unit) + 1))[:20000]
    started = time.perf_counter()
    elapsed_ms, got = page.evaluate(
        """(text) => {
          const t0 = performance.now();
          const r = window.wordpiece.bertTokenize(text, window.vocab, { maxLength: 100000 });
          return [performance.now() - t0, r];
        }""",
        text,
    )
    wall = time.perf_counter() - started
    print(f"20,000 characters: {len(got['ids'])} tokens in {elapsed_ms:.0f} ms in the page")
    assert got["ids"] == hf.encode(text).ids
    assert wall < 5, f"tokenising 20,000 characters took {wall:.1f} s"
    assert_clean(watch)
