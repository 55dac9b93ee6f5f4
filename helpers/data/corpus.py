"""An offline English text corpus that ships with Python itself, and a labelled task made from it.

    topics = load_python_docs()                   # {'assert': 'The "assert" statement ...', ...}
    text = corpus_text(topics)                     # every topic, whitespace collapsed, one string
    task = topic_task()                            # passages labelled with the topic they come from

Where the text comes from: ``pydoc_data.topics`` is a module of the standard library (it is what
``help("with")`` prints in the interpreter). It holds the reference documentation's topics
(statements, the data model, the built-in types, string formatting, the ``pdb`` debugger, ...)
as plain text, about 0.43 million characters in Python 3.11. Licence: the Python Software
Foundation License (the documentation of CPython, https://docs.python.org/3/license.html).
The text changes a little from one Python version to the next, so the exact counts printed by
a notebook depend on the interpreter; ``corpus_version()`` says which one was read.

The labelled task (``topic_task``): which of a few documentation topics a passage of about 150
characters comes from. The labels are made offline and mean something (the topic is where the
sentence was written), and the passages are cut from the text with no overlap. Validation
passages come from whole blocks of consecutive passages, drawn with a fixed seed, so a
validation passage never shares a sentence with a training one; ``pretraining_text`` leaves the
validation blocks out, and every other occurrence of a validation passage (some topics repeat others'
text), so pretraining never reads a validation passage either.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

#: The topics of the labelled task: four long topics about different things.
TASK_TOPICS = ("debugger", "formatstrings", "typesseq", "typesmapping")


def load_python_docs() -> dict[str, str]:
    """``pydoc_data.topics.topics`` with every run of whitespace collapsed to one space.

    Returns {topic name: text}, in sorted order of the names."""
    try:
        from pydoc_data.topics import topics
    except ImportError as e:  # a stripped interpreter (some distributions split the docs off)
        raise RuntimeError(
            "pydoc_data.topics is missing from this Python installation: it is part of the standard library "
            "(python3 -c 'import pydoc_data.topics'); install your distribution's full Python package"
        ) from e
    return {name: " ".join(topics[name].split()) for name in sorted(topics)}


def corpus_version() -> str:
    """The Python version whose documentation the corpus is (e.g. '3.11.7')."""
    return ".".join(str(v) for v in sys.version_info[:3])


def corpus_text(topics: dict[str, str] | None = None) -> str:
    """Every topic's text, in sorted order of the names, joined by one space."""
    topics = load_python_docs() if topics is None else topics
    return " ".join(topics[name] for name in sorted(topics))


def passages(text: str, chars: int = 150) -> list[str]:
    """Cut ``text`` into consecutive passages of whole words, each as long as possible within ``chars``
    characters (a single longer word is a passage of its own). The passages joined by spaces are
    the text (its whitespace collapsed)."""
    out, current = [], ""
    for word in text.split():
        if current and len(current) + 1 + len(word) > chars:
            out.append(current)
            current = word
        else:
            current = f"{current} {word}" if current else word
    if current:
        out.append(current)
    return out


@dataclass
class TopicTask:
    """Passages labelled by the documentation topic they come from.

    - classes: the topic names; a label is an index into it
    - train_texts, train_labels: the training passages (shuffled) and their labels (int64)
    - val_texts, val_labels: the validation passages and their labels (int64)
    - pretraining_text: the whole corpus without the validation blocks and without any other occurrence
      of a validation passage (for self-supervised pretraining: it contains the training passages,
      unlabelled, but no validation passage)
    """
    classes: tuple[str, ...]
    train_texts: list[str]
    train_labels: np.ndarray
    val_texts: list[str]
    val_labels: np.ndarray
    pretraining_text: str


def topic_task(classes: tuple[str, ...] = TASK_TOPICS, chars: int = 150, block: int = 4,
               val_fraction: float = 0.3, seed: int = 0) -> TopicTask:
    """Which topic a passage of at most ``chars`` characters comes from.

    Each topic's text is cut into passages (``passages``), the passages into blocks of ``block``
    consecutive ones, and a ``val_fraction`` of each topic's blocks (drawn with ``seed``) are the
    validation set; the others are the training pool, shuffled with ``seed``."""
    topics = load_python_docs()
    missing = [c for c in classes if c not in topics]
    if missing:
        raise ValueError(f"topics {missing} are not in pydoc_data.topics of Python {corpus_version()}")
    rng = np.random.default_rng(seed)
    train, val, held_out = [], [], {}
    for label, name in enumerate(classes):
        ps = passages(topics[name], chars)
        blocks = [ps[i:i + block] for i in range(0, len(ps), block)]
        n_val = max(1, round(val_fraction * len(blocks)))
        is_val = np.zeros(len(blocks), dtype=bool)
        is_val[rng.choice(len(blocks), size=n_val, replace=False)] = True
        kept = []
        for b, v in zip(blocks, is_val):
            (val if v else train).extend((p, label) for p in b)
            if not v:
                kept.extend(b)
        held_out[name] = " ".join(kept)
    order = rng.permutation(len(train))
    train = [train[i] for i in order]
    pre = corpus_text({**topics, **held_out})
    # Some topics repeat others' text (typesseq-mutable is a part of typesseq; tables repeat rows): remove every
    # occurrence of a validation passage, wherever it is, until none is left.
    while any(p in pre for p, _ in val):
        for p, _ in val:
            pre = pre.replace(p, " ")
        pre = " ".join(pre.split())
    return TopicTask(classes=tuple(classes),
                     train_texts=[p for p, _ in train], train_labels=np.array([l for _, l in train], dtype=np.int64),
                     val_texts=[p for p, _ in val], val_labels=np.array([l for _, l in val], dtype=np.int64),
                     pretraining_text=pre)
