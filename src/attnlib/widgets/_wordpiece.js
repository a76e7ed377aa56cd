// BERT's tokeniser in the page: what Hugging Face `tokenizers` does for all-MiniLM-L6-v2
// (its tokenizer.json: BertNormalizer, BertPreTokenizer, WordPiece, [CLS] ... [SEP]), step by
// step, so that the page turns a reader's sentence into the same ids as the Python side.
// Joined after _base.js and _nn.js for the live_bert view (attnlib.widgets._frontend.LIBRARIES).
// Pure functions over strings: nothing here touches the page.
//
// The steps, in the library's order:
// 1. special tokens: "[CLS]", "[SEP]", "[MASK]", "[UNK]" and "[PAD]" typed as such (exactly,
//    case and all) are found in the raw text first and kept whole, as tokenizers' added tokens;
// 2. the normaliser, one character at a time: drop NUL, U+FFFD and control/format characters;
//    turn every whitespace character into a space; put spaces around CJK ideographs; decompose
//    (NFD) and drop the non-spacing marks (accents); lower-case;
// 3. the pre-tokeniser: split on spaces, and make every punctuation character a word of its own;
// 4. WordPiece, word by word: the longest vocabulary entry that starts the word, then the
//    longest "##" entry that continues it, and so on; a word that cannot be covered, or that is
//    longer than 100 characters, becomes one [UNK];
// 5. [CLS] before and [SEP] after, cut to maxLength tokens (the [SEP] kept).

const WORDPIECE_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
const WORDPIECE_MAX_WORD = 100; // max_input_chars_per_word: a longer word is [UNK] at once
const WORDPIECE_PREFIX = "##"; // what marks a piece that continues a word

// Character classes, as tokenizers defines them: Unicode general categories. Its Rust tables
// are older than the browser's Unicode, so a character added to Unicode since (a new Arabic
// mark, a new punctuation sign) is unassigned there, and tokenizers treats it as a letter. The
// tables below list the characters the browser's \p{...} puts in a class and tokenizers does
// not (measured against tokenizers 0.23 and Chromium 150 over every code point, by
// tests/browser/test_wordpiece.py), plus the four whose category Unicode changed since.
const DROPPED_CHAR = /[\p{Cc}\p{Cf}\p{Co}\uFFFD]/u; // control, format, private use; U+FFFD
const WHITESPACE_CHAR = /\p{White_Space}/u;
const MARK_NONSPACING = /\p{Mn}/u; // what strip_accents removes after NFD
// BERT's punctuation: every ASCII character that is not a letter, digit or space (codes 33-47,
// 58-64, 91-96, 123-126, so $ + < = > ^ | ~ and the backquote too), and every Unicode
// punctuation character (categories P*).
const PUNCTUATION_CHAR = /[\x21-\x2f\x3a-\x40\x5b-\x60\x7b-\x7e\p{P}]/u;
const OLDER_MN = [0x1734, 0x1171e]; // non-spacing marks to tokenizers, spacing marks (Mc) now
const OLDER_PUNCTUATION = [0x166d, 0x111c9]; // punctuation to tokenizers, So and Mn now
// Format characters (Cf) tokenizers does not know, so keeps:
const NEWER_FORMAT = [
  [0x890, 0x891], [0x8e2, 0x8e2], [0x110cd, 0x110cd], [0x13430, 0x1343f],
];

// Non-spacing marks (Mn) tokenizers does not know, so keeps:
const NEWER_MN = [
  [0x7fd, 0x7fd], [0x897, 0x89f], [0x8ca, 0x8e1], [0x9fe, 0x9fe], [0xafa, 0xaff], [0xb55, 0xb55],
  [0xc04, 0xc04], [0xc3c, 0xc3c], [0xd00, 0xd00], [0xd3b, 0xd3c], [0xd81, 0xd81], [0xeba, 0xeba],
  [0xece, 0xece], [0x180f, 0x180f], [0x1885, 0x1886], [0x1abf, 0x1add], [0x1ae0, 0x1aeb],
  [0x1df6, 0x1dfb], [0xa82c, 0xa82c], [0xa8c5, 0xa8c5], [0xa8ff, 0xa8ff], [0xa9bd, 0xa9bd],
  [0x10d24, 0x10d27], [0x10d69, 0x10d6d], [0x10eab, 0x10eac], [0x10efa, 0x10eff],
  [0x10f46, 0x10f50], [0x10f82, 0x10f85], [0x11070, 0x11070], [0x11073, 0x11074],
  [0x110c2, 0x110c2], [0x111c9, 0x111c9], [0x111cf, 0x111cf], [0x1123e, 0x1123e],
  [0x11241, 0x11241], [0x1133b, 0x1133b], [0x113bb, 0x113c0], [0x113ce, 0x113ce],
  [0x113d0, 0x113d0], [0x113d2, 0x113d2], [0x113e1, 0x113e2], [0x11438, 0x1143f],
  [0x11442, 0x11444], [0x11446, 0x11446], [0x1145e, 0x1145e], [0x1182f, 0x11837],
  [0x11839, 0x1183a], [0x1193b, 0x1193c], [0x1193e, 0x1193e], [0x11943, 0x11943],
  [0x119d4, 0x119d7], [0x119da, 0x119db], [0x119e0, 0x119e0], [0x11a01, 0x11a0a],
  [0x11a33, 0x11a38], [0x11a3b, 0x11a3e], [0x11a47, 0x11a47], [0x11a51, 0x11a56],
  [0x11a59, 0x11a5b], [0x11a8a, 0x11a96], [0x11a98, 0x11a99], [0x11b60, 0x11b60],
  [0x11b62, 0x11b64], [0x11b66, 0x11b66], [0x11c30, 0x11c36], [0x11c38, 0x11c3d],
  [0x11c3f, 0x11c3f], [0x11c92, 0x11ca7], [0x11caa, 0x11cb0], [0x11cb2, 0x11cb3],
  [0x11cb5, 0x11cb6], [0x11d31, 0x11d36], [0x11d3a, 0x11d3a], [0x11d3c, 0x11d3d],
  [0x11d3f, 0x11d45], [0x11d47, 0x11d47], [0x11d90, 0x11d91], [0x11d95, 0x11d95],
  [0x11d97, 0x11d97], [0x11ef3, 0x11ef4], [0x11f00, 0x11f01], [0x11f36, 0x11f3a],
  [0x11f40, 0x11f40], [0x11f42, 0x11f42], [0x11f5a, 0x11f5a], [0x13440, 0x13440],
  [0x13447, 0x13455], [0x1611e, 0x16120], [0x16129, 0x16129], [0x1612d, 0x1612f],
  [0x16f4f, 0x16f4f], [0x16fe4, 0x16fe4], [0x1cf00, 0x1cf2d], [0x1cf30, 0x1cf46],
  [0x1e000, 0x1e006], [0x1e008, 0x1e018], [0x1e01b, 0x1e021], [0x1e023, 0x1e024],
  [0x1e026, 0x1e02a], [0x1e08f, 0x1e08f], [0x1e130, 0x1e136], [0x1e2ae, 0x1e2ae],
  [0x1e2ec, 0x1e2ef], [0x1e4ec, 0x1e4ef], [0x1e5ee, 0x1e5ef], [0x1e6e3, 0x1e6e3],
  [0x1e6e6, 0x1e6e6], [0x1e6ee, 0x1e6ef], [0x1e6f5, 0x1e6f5], [0x1e944, 0x1e94a],
];

// Punctuation (P*) tokenizers does not know, so leaves inside words:
const NEWER_PUNCTUATION = [
  [0x61d, 0x61d], [0x9fd, 0x9fd], [0xa76, 0xa76], [0xc77, 0xc77], [0xc84, 0xc84], [0x1b4e, 0x1b4f],
  [0x1b7d, 0x1b7f], [0x2e43, 0x2e4f], [0x2e52, 0x2e5d], [0x10d6e, 0x10d6e], [0x10ead, 0x10ead],
  [0x10ed0, 0x10ed0], [0x10f55, 0x10f59], [0x10f86, 0x10f89], [0x113d4, 0x113d5],
  [0x113d7, 0x113d8], [0x1144b, 0x1144f], [0x1145a, 0x1145b], [0x1145d, 0x1145d],
  [0x11660, 0x1166c], [0x116b9, 0x116b9], [0x1183b, 0x1183b], [0x11944, 0x11946],
  [0x119e2, 0x119e2], [0x11a3f, 0x11a46], [0x11a9a, 0x11a9c], [0x11a9e, 0x11aa2],
  [0x11b00, 0x11b09], [0x11be1, 0x11be1], [0x11c41, 0x11c45], [0x11c70, 0x11c71],
  [0x11ef7, 0x11ef8], [0x11f43, 0x11f4f], [0x11fff, 0x11fff], [0x12ff1, 0x12ff2],
  [0x16d6d, 0x16d6f], [0x16e97, 0x16e9a], [0x16fe2, 0x16fe2], [0x1e5ff, 0x1e5ff],
  [0x1e95e, 0x1e95f],
];

/** Whether code point c lies in one of the [first, last] ranges. */
function inCodePointRanges(c, ranges) {
  return ranges.some(([first, last]) => c >= first && c <= last);
}

/** clean_text drops it: a control, format or private-use character, NUL or U+FFFD. */
function bertDropsChar(ch) {
  const c = ch.codePointAt(0);
  return c === 0 || (DROPPED_CHAR.test(ch) && !inCodePointRanges(c, NEWER_FORMAT));
}

/** strip_accents drops it (after NFD): a non-spacing mark. */
function bertStripsMark(ch) {
  const c = ch.codePointAt(0);
  return (MARK_NONSPACING.test(ch) && !inCodePointRanges(c, NEWER_MN)) || OLDER_MN.includes(c);
}

/** BertPreTokenizer makes it a word of its own. */
function bertIsPunctuation(ch) {
  const c = ch.codePointAt(0);
  if (OLDER_PUNCTUATION.includes(c)) return true;
  return PUNCTUATION_CHAR.test(ch) && !inCodePointRanges(c, NEWER_PUNCTUATION);
}

/** Whether code point c is a CJK ideograph: the blocks BERT's handle_chinese_chars lists. */
function isCjkIdeograph(c) {
  return (
    (c >= 0x4e00 && c <= 0x9fff) ||
    (c >= 0x3400 && c <= 0x4dbf) ||
    (c >= 0x20000 && c <= 0x2a6df) ||
    (c >= 0x2a700 && c <= 0x2b73f) ||
    (c >= 0x2b740 && c <= 0x2b81f) ||
    (c >= 0x2b920 && c <= 0x2ceaf) || // sic: tokenizers starts this block at 2B920, not 2B820
    (c >= 0xf900 && c <= 0xfaff) ||
    (c >= 0x2f800 && c <= 0x2fa1f)
  );
}

/**
 * The vocabulary of a WordPiece model from the text of its vocab.txt: one token per line, a
 * token's id its line number (from 0). Returns {tokens (id -> token), ids (token -> id), unk,
 * cls, sep (the special tokens' ids), specials (the special tokens it has)}.
 */
export function wordpieceVocab(vocabText) {
  if (typeof vocabText !== "string") {
    const got = typeof vocabText;
    throw new TypeError(`wordpieceVocab: vocabText must be the text of vocab.txt, got ${got}`);
  }
  const tokens = vocabText.split("\n").map((line) => line.replace(/\r$/, ""));
  if (tokens.length && tokens[tokens.length - 1] === "") tokens.pop(); // the file's last newline
  const ids = new Map();
  tokens.forEach((token, id) => {
    if (!ids.has(token)) ids.set(token, id);
  });
  for (const name of ["[UNK]", "[CLS]", "[SEP]"]) {
    if (!ids.has(name)) throw new Error(`wordpieceVocab: the vocabulary has no ${name} token`);
  }
  return {
    tokens,
    ids,
    unk: ids.get("[UNK]"),
    cls: ids.get("[CLS]"),
    sep: ids.get("[SEP]"),
    specials: WORDPIECE_SPECIALS.filter((name) => ids.has(name)),
  };
}

/**
 * BertNormalizer on text[from, to): an array of {char, start, end}, one per normalised
 * character, start and end the UTF-16 offsets of the original characters it came from.
 */
function bertNormalize(text, from, to) {
  const out = [];
  let i = from;
  while (i < to) {
    // A cluster: one character and the combining marks after it, decomposed together (NFD
    // reorders marks within a cluster, never across two).
    const clusterStart = i;
    const chars = [];
    do {
      const c = text.codePointAt(i);
      const ch = String.fromCodePoint(c);
      chars.push({ ch, start: i, end: i + ch.length });
      i += ch.length;
    } while (i < to && /\p{M}/u.test(String.fromCodePoint(text.codePointAt(i))));
    const kept = [];
    for (const { ch, start, end } of chars) {
      const c = ch.codePointAt(0);
      if (ch === "\t" || ch === "\n" || ch === "\r") kept.push({ ch: " ", start, end }); // a space
      else if (bertDropsChar(ch)) continue; // clean_text: drop
      else if (WHITESPACE_CHAR.test(ch)) kept.push({ ch: " ", start, end }); // clean_text: a space
      else if (isCjkIdeograph(c)) {
        kept.push({ ch: " ", start, end }, { ch, start, end }, { ch: " ", start, end });
      } else kept.push({ ch, start, end });
    }
    // strip_accents: NFD, then drop the non-spacing marks. Each character keeps its own offsets,
    // unless NFD reordered marks across characters: then the base keeps the first character's
    // and the marks take the whole cluster's.
    const parts = kept.map(({ ch }) => ch.normalize("NFD"));
    const whole = kept.map(({ ch }) => ch).join("").normalize("NFD");
    let decomposed = kept.map((k, n) => ({ text: parts[n], start: k.start, end: k.end }));
    if (whole !== parts.join("")) {
      decomposed = Array.from(whole, (ch) => /\p{M}/u.test(ch)
        ? { text: ch, start: clusterStart, end: i }
        : { text: ch, start: kept[0].start, end: kept[0].end });
    }
    for (const { text: piece, start, end } of decomposed) {
      for (const ch of piece) {
        if (bertStripsMark(ch)) continue;
        for (const lower of ch.toLowerCase()) out.push({ char: lower, start, end }); // lowercase
      }
    }
  }
  return out;
}

/** BertPreTokenizer: the words of normalised characters, split at spaces and punctuation. */
function bertWords(chars) {
  const words = [];
  let word = [];
  for (const c of chars) {
    const space = c.char === " ";
    if (space || bertIsPunctuation(c.char)) {
      if (word.length) words.push(word);
      word = [];
      if (!space) words.push([c]);
    } else word.push(c);
  }
  if (word.length) words.push(word);
  return words;
}

/** WordPiece on one word (its normalised characters): [{id, token, start, end}]. */
function wordPieces(word, vocab) {
  const first = word[0].start;
  const last = word[word.length - 1].end;
  const unknown = [{ id: vocab.unk, token: "[UNK]", start: first, end: last }];
  if (word.length > WORDPIECE_MAX_WORD) return unknown;
  const text = word.map((c) => c.char).join("");
  const at = [0]; // at[k]: where the word's character k starts in text (UTF-16)
  for (const c of word) at.push(at[at.length - 1] + c.char.length);
  const pieces = [];
  for (let begin = 0; begin < word.length; ) {
    let end = word.length;
    let piece = null;
    for (; end > begin; end--) {
      const candidate = (begin > 0 ? WORDPIECE_PREFIX : "") + text.slice(at[begin], at[end]);
      if (vocab.ids.has(candidate)) {
        piece = candidate;
        break;
      }
    }
    // No entry continues the word here: the whole word is one unknown token.
    if (piece === null) return unknown;
    const start = word[begin].start;
    pieces.push({ id: vocab.ids.get(piece), token: piece, start, end: word[end - 1].end });
    begin = end;
  }
  return pieces;
}

/** Where the special tokens stand in text, left to right: [{name, start, end}]. */
function specialSpans(text, vocab) {
  const spans = [];
  for (let i = 0; i < text.length; ) {
    const name = text[i] === "[" ? vocab.specials.find((s) => text.startsWith(s, i)) : undefined;
    if (name) {
      spans.push({ name, start: i, end: i + name.length });
      i += name.length;
    } else i += 1;
  }
  return spans;
}

/**
 * BERT's tokeniser, as Hugging Face `tokenizers` runs it for all-MiniLM-L6-v2 (with no padding):
 * text -> {ids, tokens, truncated, offsets}, [CLS] first and [SEP] last. When the text has more
 * than maxLength - 2 pieces, the pieces are cut there (the [SEP] still ends the sequence) and
 * truncated is true. offsets[i] = [start, end]: the UTF-16 offsets into text of what token i came
 * from, so text.slice(start, end) is its original spelling; [0, 0] for [CLS] and [SEP].
 */
export function bertTokenize(text, vocab, { maxLength = 512 } = {}) {
  if (typeof text !== "string") {
    throw new TypeError(`bertTokenize: text must be a string, got ${typeof text}`);
  }
  if (!vocab || !(vocab.ids instanceof Map)) {
    throw new TypeError("bertTokenize: vocab must come from wordpieceVocab(vocabText)");
  }
  if (!Number.isInteger(maxLength) || maxLength < 2) {
    const why = "an integer >= 2 (room for [CLS] and [SEP])";
    throw new RangeError(`bertTokenize: maxLength must be ${why}, got ${maxLength}`);
  }
  const pieces = [];
  let from = 0;
  // The special tokens typed as such, then the end of the text; the text between is normalised.
  const spans = specialSpans(text, vocab);
  spans.push({ name: null, start: text.length, end: text.length });
  for (const { name, start, end } of spans) {
    for (const word of bertWords(bertNormalize(text, from, start))) {
      pieces.push(...wordPieces(word, vocab));
    }
    if (name) pieces.push({ id: vocab.ids.get(name), token: name, start, end });
    from = end;
  }
  const truncated = pieces.length > maxLength - 2;
  const kept = truncated ? pieces.slice(0, maxLength - 2) : pieces;
  const all = [
    { id: vocab.cls, token: "[CLS]", start: 0, end: 0 },
    ...kept,
    { id: vocab.sep, token: "[SEP]", start: 0, end: 0 },
  ];
  return {
    ids: all.map((p) => p.id),
    tokens: all.map((p) => p.token),
    truncated,
    offsets: all.map((p) => [p.start, p.end]),
  };
}
