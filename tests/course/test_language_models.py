"""helpers.data.corpus (notebook 17): the offline corpus and the topic task keep what the notebook says.

- the corpus is pydoc_data.topics of the running Python, whitespace collapsed;
- passages are whole words of at most `chars` characters (unless one word is longer), and joined
  they give back the topic's text;
- the task is deterministic, its labels are the topic each passage was cut from, and no validation
  passage occurs in the pretraining text (so pretraining never reads one).
"""
import numpy as np
import pytest

from helpers.data import corpus


@pytest.fixture(scope="module")
def task():
    return corpus.topic_task()


def test_the_corpus_is_pythons_own_documentation():
    from pydoc_data.topics import topics as raw
    docs = corpus.load_python_docs()
    assert list(docs) == sorted(raw)
    assert docs["debugger"] == " ".join(raw["debugger"].split())
    assert all("  " not in t and "\n" not in t for t in docs.values())


def test_passages_are_whole_words_within_the_limit_and_cover_the_text():
    text = corpus.load_python_docs()["formatstrings"]
    ps = corpus.passages(text, 150)
    assert " ".join(ps) == text
    assert all(len(p) <= 150 or " " not in p for p in ps)


def test_the_task_is_deterministic_and_labelled_by_topic(task):
    again = corpus.topic_task()
    assert again.train_texts == task.train_texts and again.val_texts == task.val_texts
    assert np.array_equal(again.train_labels, task.train_labels)
    docs = corpus.load_python_docs()
    for texts, labels in ((task.train_texts, task.train_labels), (task.val_texts, task.val_labels)):
        for p, y in zip(texts, labels):
            assert p in docs[task.classes[y]]
    assert set(task.train_labels.tolist()) == set(task.val_labels.tolist()) == set(range(len(task.classes)))


def test_no_validation_passage_is_in_the_pretraining_text_or_the_training_set(task):
    train = set(task.train_texts)
    for p in task.val_texts:
        assert p not in train
        assert p not in task.pretraining_text, p
