"""The transfer set (edge_kd.distill.transfer): meaning-keeping copies with their labels, seeded,
deduplicated against training and held-out text; unlabeled text read and checked; neighbours from an
embedding space."""
import numpy as np
import pytest

from edge_kd.distill.transfer import (NO_LABEL, augment_histories, augment_texts, build_transfer_set,
                                      embedding_neighbours, history_transfer_rows, read_unlabeled)
from edge_kd.errors import InputError
from edge_kd.recipe import TransferConfig

TEXTS = ["how can I cancel my order please", "I want a refund for my purchase", "where is my parcel right now",
         "change the shipping address of my order", "track the delivery of my package today"]
LABELS = [0, 1, 2, 3, 2]


def test_copies_keep_their_labels_and_are_seeded():
    a_t, a_y = augment_texts(TEXTS, LABELS, 3, seed=7, word_dropout=0.2, substitute=0.0, ngram_sample=0.3)
    b_t, b_y = augment_texts(TEXTS, LABELS, 3, seed=7, word_dropout=0.2, substitute=0.0, ngram_sample=0.3)
    c_t, _ = augment_texts(TEXTS, LABELS, 3, seed=8, word_dropout=0.2, substitute=0.0, ngram_sample=0.3)
    assert (a_t, a_y) == (b_t, b_y) and a_t != c_t
    assert a_y == LABELS * 3
    for copy, src in zip(a_t, TEXTS * 3):  # words come from the source sentence, in order
        words, pos = src.split(), 0
        for w in copy.split():
            pos = words.index(w, pos) + 1
    assert all(copy for copy in a_t)


def test_neighbour_substitution_uses_the_given_neighbours():
    t, y = augment_texts(["cancel my order"] * 50, [4] * 50, 1, seed=0, word_dropout=0.0, substitute=0.5,
                         ngram_sample=0.0, neighbours=lambda w: {"order": ["purchase"], "cancel": ["stop"]}.get(w, ()))
    assert y == [4] * 50
    joined = " ".join(t)
    assert "purchase" in joined and "stop" in joined and all(len(s.split()) == 3 for s in t)


def test_embedding_neighbours_are_nearest_whole_words():
    vocab = {"card": 0, "cards": 1, "pizza": 2, "##s": 3, "[PAD]": 4}
    emb = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 0, 1], [0.95, 0, 0], [1, 0, 0]], np.float32)
    nb = embedding_neighbours(["card", "unknownword"], emb, vocab, k=2)
    assert nb == {"card": ["cards"]}  # pizza is under min_similarity; pieces and specials are not words


def test_transfer_set_dedups_against_train_and_held_out_and_caps():
    cfg = TransferConfig(augment_copies=4, word_dropout=0.3, substitute=0.0, ngram_sample=0.5, max_rows=None)
    held_out = ["cancel my order"]
    unl = ["Where is my parcel right now", "do you ship to canada", "do  you ship to Canada", "cancel my order"]
    ts = build_transfer_set(TEXTS, LABELS, cfg, seed=0, unlabeled=unl, exclude=held_out)
    norm = [" ".join(t.lower().split()) for t in ts.texts]
    assert len(set(norm)) == len(norm)
    assert not set(norm) & {" ".join(t.lower().split()) for t in TEXTS + held_out}
    assert ts.origin.count("unlabeled") == 1 and ts.texts[0] == "do you ship to canada"
    assert ts.labels[0] == NO_LABEL and (ts.labels[1:] >= 0).all()
    teacher = np.zeros((len(ts), 9), np.float32)
    teacher[:, 7] = 1.0  # the teacher answers 7 everywhere: only the unlabeled row takes it
    assert ts.labels_with_teacher(teacher).tolist() == [7] + ts.labels[1:].tolist()
    assert ts.stats["dropped_held_out"] >= 1 and ts.stats["dropped_duplicates"] >= 2
    assert ts.stats["rows"] == len(ts) == ts.stats["augmented"] + ts.stats["unlabeled"]
    capped = build_transfer_set(TEXTS, LABELS, TransferConfig(augment_copies=4, max_rows=3), seed=0, unlabeled=unl)
    assert len(capped) == 3 and capped.origin[0] == "unlabeled" and capped.stats["dropped_over_max_rows"] > 0
    again = build_transfer_set(TEXTS, LABELS, TransferConfig(augment_copies=4, max_rows=3), seed=0, unlabeled=unl)
    assert again.texts == capped.texts


def test_an_empty_transfer_set_is_an_input_error():
    with pytest.raises(InputError, match="transfer set is empty"):
        build_transfer_set(["a b"], [0], TransferConfig(augment_copies=0), unlabeled=["a b"])
    assert len(build_transfer_set(["a b"], [0], TransferConfig(augment_copies=0))) == 0  # none asked for


def test_unlabeled_spec_is_read_and_checked(tmp_path):
    f = tmp_path / "queries.csv"
    f.write_text("query,clicks\nwhere is my order,3\n,1\nrefund status,2\n")
    assert read_unlabeled(f"csv:{f}?text=query") == ["where is my order", "refund status"]
    with pytest.raises(InputError, match="'message' does not exist; columns are: query, clicks"):
        read_unlabeled(f"csv:{f}?text=message")
    with pytest.raises(InputError, match="name the text column"):
        read_unlabeled(f"csv:{f}")
    with pytest.raises(InputError, match="must be a csv spec"):
        read_unlabeled(f"tabular:{f}?label=clicks")
    empty = tmp_path / "empty.csv"
    empty.write_text("query\n\n \n")
    with pytest.raises(InputError, match="has no text"):
        read_unlabeled(f"csv:{empty}?text=query")
    with pytest.raises(InputError, match="does not exist"):
        read_unlabeled(f"csv:{tmp_path / 'nope.csv'}?text=query")


def test_transfer_config_checks_its_values():
    for bad in ({"augment_copies": -1}, {"max_rows": 0}, {"word_dropout": 1.0}, {"word_dropout": 0.6, "substitute": 0.5},
                {"neighbours": 0}, {"item_dropout": 1.0}, {"recent_crop": -0.1}):
        with pytest.raises(ValueError):
            TransferConfig(**bad)


def test_history_copies_are_subsequences_with_their_rows_next_items():
    history = np.array([[0, 0, 5, 9, 3, 7], [0, 0, 0, 0, 0, 4], [2, 8, 6, 5, 1, 3]], dtype=np.int64)
    labels = np.array([[10, 11], [12, -1], [13, -1]], dtype=np.int64)
    h, y = augment_histories(history, labels, 20, seed=0, item_dropout=0.3, recent_crop=0.5)
    assert h.dtype == history.dtype and h.shape[1] == 6 and len(h) == len(y) > 0
    sources = {tuple(r) for r in labels}
    for row, target in zip(h, y):
        items = row[row > 0]
        assert len(items) >= 1 and np.all(row[:6 - len(items)] == 0)      # left-padded, never empty
        src = next(i for i in range(3) if tuple(labels[i]) == tuple(target))
        assert tuple(target) in sources
        full = list(history[src][history[src] > 0])
        it = iter(full)
        assert all(any(x == v for v in it) for x in items)                  # order kept: a subsequence
        assert len(items) < len(full)                                       # identical copies dropped
        assert items[-1] in full
    # The one-product history cannot change, so it has no copies; the rest are seeded.
    assert not any(tuple(t) == (12, -1) for t in y)
    h2, y2 = augment_histories(history, labels, 20, seed=0, item_dropout=0.3, recent_crop=0.5)
    assert np.array_equal(h, h2) and np.array_equal(y, y2)
    assert not np.array_equal(h, augment_histories(history, labels, 20, seed=1, item_dropout=0.3, recent_crop=0.5)[0])


def test_history_transfer_rows_follow_the_config_and_its_cap():
    history = np.array([[0, 3, 5, 9, 2, 7], [4, 8, 6, 5, 1, 3]], dtype=np.int64)
    labels = np.array([[10, -1], [11, -1]], dtype=np.int64)
    cfg = TransferConfig(augment_copies=10, item_dropout=0.3, recent_crop=0.5)
    h, y = history_transfer_rows(history, labels, cfg, seed=0)
    full = augment_histories(history, labels, 10, seed=0, item_dropout=0.3, recent_crop=0.5)
    assert np.array_equal(h, full[0]) and np.array_equal(y, full[1]) and len(h) > 5
    capped, capped_y = history_transfer_rows(history, labels, TransferConfig(augment_copies=10, item_dropout=0.3,
                                                                             recent_crop=0.5, max_rows=5), seed=0)
    assert len(capped) == 5 and all(any(np.array_equal(r, f) for f in h) for r in capped) and len(capped_y) == 5
