"""5,163 real first names for character-level models, and the helpers to encode them.

    names = load_names()                     # ['aaron', 'abbey', ...]
    vocab = CharVocab.from_words(names)      # 27 symbols: '.' (start/end) then 'a'..'z'
    X, y = make_context_pairs(names, vocab, context=3)    # (N, 3) -> (N,) "next character"
    inputs, targets, lengths = make_padded_batch(names[:4], vocab)  # for RNNs

The special symbol '.' (index 0) marks both the start and the end of a name, as in
Karpathy's makemore: "emma" is read as ". e m m a ." .
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from helpers.data.shipped import shipped_path

IGNORE_INDEX = -100  # targets with this value are skipped by torch.nn.functional.cross_entropy


def load_names() -> list[str]:
    """The shipped names: a sorted list of 5,163 lower-case strings of the letters a-z."""
    text = shipped_path("names.txt").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if line]


class CharVocab:
    """A character <-> integer mapping with one special start/end symbol at index 0.

    Attributes:
    - special: the start/end symbol (default ".")
    - itos: list of symbols, index -> symbol (``itos[0] == special``)
    - stoi: dict symbol -> index
    """

    def __init__(self, chars: Iterable[str], special: str = "."):
        chars = sorted(set(chars))
        if len(special) != 1:
            raise ValueError(f"special must be one character, got {special!r}")
        if special in chars:
            raise ValueError(f"the special symbol {special!r} also occurs in the text; choose another")
        self.special = special
        self.itos: list[str] = [special, *chars]
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @classmethod
    def from_words(cls, words: Iterable[str], special: str = ".") -> CharVocab:
        """Vocabulary of every character that occurs in ``words`` (sorted), plus ``special``."""
        return cls("".join(words), special=special)

    @property
    def size(self) -> int:
        """Number of symbols, special one included (27 for the names)."""
        return len(self.itos)

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size}, symbols={''.join(self.itos)!r})"

    def encode(self, text: str) -> list[int]:
        """'emma' -> [5, 13, 13, 1] (no start/end symbols are added)."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as e:
            raise ValueError(
                f"character {e.args[0]!r} in {text!r} is not in the vocabulary "
                f"({''.join(self.itos)!r})"
            ) from None

    def decode(self, indices: Iterable[int]) -> str:
        """[5, 13, 13, 1] -> 'emma'. Accepts a list, a numpy array or a 1-D tensor of ints."""
        return "".join(self.itos[int(i)] for i in indices)


def make_context_pairs(
    words: Sequence[str], vocab: CharVocab, context: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Every (previous ``context`` characters -> next character) pair of every word.

    Each word is padded with ``context`` start symbols and ends with the end symbol, so
    "emma" with context=3 gives 5 pairs: "..." -> e, "..e" -> m, ".em" -> m, "emm" -> a,
    "mma" -> ".".

    Returns:
    - X: (N, context) int64, symbol indices of the context
    - y: (N,) int64, index of the next symbol; N = sum(len(w) + 1 for w in words)
    """
    if context < 1:
        raise ValueError(f"context must be at least 1, got {context}")
    start = vocab.stoi[vocab.special]
    X, y = [], []
    for word in words:
        window = [start] * context
        for ix in vocab.encode(word) + [start]:
            X.append(window)
            y.append(ix)
            window = window[1:] + [ix]
    return np.array(X, dtype=np.int64).reshape(-1, context), np.array(y, dtype=np.int64)


def make_padded_batch(
    words: Sequence[str], vocab: CharVocab, ignore_index: int = IGNORE_INDEX
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Words as a padded batch for a recurrent model: predict each next character.

    For "emma": inputs ". e m m a", targets "e m m a .". With T = the longest word + 1, the
    shorter rows are padded: inputs with the special symbol, targets with ``ignore_index``
    (-100, which ``F.cross_entropy`` skips by default), so the padding adds nothing to the loss.

    Returns:
    - inputs: (B, T) int64
    - targets: (B, T) int64
    - lengths: (B,) int64, number of real (unpadded) positions per row, len(word) + 1
    """
    start = vocab.stoi[vocab.special]
    lengths = np.array([len(w) + 1 for w in words], dtype=np.int64)
    T = int(lengths.max()) if len(words) else 0
    inputs = np.full((len(words), T), start, dtype=np.int64)
    targets = np.full((len(words), T), ignore_index, dtype=np.int64)
    for row, word in enumerate(words):
        ix = vocab.encode(word)
        inputs[row, 1 : len(ix) + 1] = ix
        targets[row, : len(ix)] = ix
        targets[row, len(ix)] = start
    return inputs, targets, lengths
