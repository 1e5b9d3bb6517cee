"""Teacher-initialized rows of the hashed n-gram student (edge_kd.distill.teacher_init), with a tiny
wordpiece vocabulary and embedding matrix: the rows carry the teacher's pieces, not noise."""
import numpy as np
import pytest
import torch

from edge_kd.distill.teacher_init import INIT_STD, HashedInit, pca_basis, word_vectors
from edge_kd.errors import InputError
from edge_kd.models.students.text import hashed_text_student
from edge_kd.preprocess.text import TextPreprocessSpec

VOCAB = ["[PAD]", "[UNK]", "refund", "##s", "##ed", "card", "weather", "sunny", "my", "order", "cancel", "##ing",
         "track", "parcel", "money", "rain", "##y", "blue", "green", "red"]


class TinyWordPiece:
    """Greedy longest-match WordPiece over VOCAB (what BertTokenizer does, minus normalisation)."""

    def get_vocab(self):
        return {p: i for i, p in enumerate(VOCAB)}

    def _pieces(self, word):
        vocab, out, start = self.get_vocab(), [], 0
        while start < len(word):
            for end in range(len(word), start, -1):
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in vocab:
                    out.append(vocab[piece])
                    start = end
                    break
            else:
                return [vocab["[UNK]"]]
        return out

    def __call__(self, words, add_special_tokens=False):
        return {"input_ids": [self._pieces(w) for w in words]}


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(len(VOCAB), 12)).astype(np.float32)
    emb[VOCAB.index("refund")] *= 3.0  # the shared piece carries the meaning; the suffixes little
    spec = TextPreprocessSpec(buckets=1, max_ids=32)
    texts = ["cancel my order", "refunds for my card", "it was refunded", "sunny weather"]
    return emb, spec, HashedInit.from_embeddings(spec, emb, TinyWordPiece(), texts)


def _row(student, word, buckets):
    h = TextPreprocessSpec(buckets=buckets).hashes(word)[0]
    return student.embed.weight[1 + h % buckets].detach()


def test_word_vectors_mean_the_pieces():
    emb = np.arange(len(VOCAB) * 2, dtype=np.float32).reshape(-1, 2)
    v = word_vectors(["refunds", "card"], emb, TinyWordPiece())
    assert np.allclose(v[0], (emb[2] + emb[3]) / 2) and np.allclose(v[1], emb[5])


def test_pca_basis_orders_by_variance():
    x = np.random.default_rng(1).normal(size=(500, 3)).astype(np.float32) * np.array([5.0, 1.0, 0.1], np.float32)
    mean, comps = pca_basis(x, 2)
    assert comps.shape == (3, 2)
    assert abs(comps[0, 0]) > 0.99 and abs(comps[1, 1]) > 0.99  # the widest axis first


def test_rows_are_the_projected_pieces_and_shared_pieces_correlate(setup):
    emb, spec, init = setup
    buckets, dim = 4096, 12
    student = hashed_text_student(buckets=buckets, dim=dim, num_classes=3, max_ids=32)
    random_rows = student.embed.weight.detach().clone()
    stats = init.apply(student)
    assert stats["init"] == "teacher" and stats["buckets_filled"] > 20 and stats["columns_from_teacher"] == dim
    # "card" alone in its bucket (checked): its row is the projection of the piece's embedding
    z = init.projected_words(dim)
    card = _row(student, "card", buckets)
    assert torch.allclose(card, torch.from_numpy(z[init.words.index("card")]), atol=1e-5)
    assert np.isclose(z.std(), INIT_STD, rtol=1e-3)
    # refunds / refunded share the piece "refund": their rows correlate more than unrelated words' rows
    cos = torch.nn.functional.cosine_similarity
    a, b = _row(student, "refunds", buckets), _row(student, "refunded", buckets)
    assert cos(a, b, dim=0) > 0.5
    assert cos(a, b, dim=0) > abs(cos(a, _row(student, "weather", buckets), dim=0)) + 0.2
    # the rows differ from the random init; the padding row stays zero
    assert not torch.allclose(student.embed.weight, random_rows)
    assert torch.count_nonzero(student.embed.weight[0]) == 0


def test_collisions_are_averaged_and_unknown_buckets_stay_random(setup):
    emb, spec, init = setup
    rows, filled = init.rows(1, 4)  # one bucket: every feature collides
    z = init.projected_words(4)
    feats = np.zeros((len(init.feature_hashes), 4), np.float32)
    np.add.at(feats, init.link_feature, z[init.link_word] * init.link_weight[:, None])
    assert filled.tolist() == [False, True] and np.allclose(rows[1], feats.mean(axis=0), atol=1e-5)
    student = hashed_text_student(buckets=1 << 16, dim=4, num_classes=3, max_ids=32)
    before = student.embed.weight.detach().clone()
    stats = init.apply(student)
    kept = (student.embed.weight == before).all(dim=1)
    assert int(kept.sum()) == (1 << 16) + 1 - stats["buckets_filled"]  # padding + buckets no feature hashes into


def test_wider_student_keeps_random_extra_columns(setup):
    emb, spec, init = setup
    student = hashed_text_student(buckets=512, dim=20, num_classes=3, max_ids=32)
    before = student.embed.weight.detach().clone()
    stats = init.apply(student)
    assert stats["columns_from_teacher"] == 12
    assert torch.equal(student.embed.weight[1:, 12:], before[1:, 12:])


def test_apply_refuses_a_student_without_a_hashed_table(setup):
    with pytest.raises(InputError, match="hashed n-gram student"):
        setup[2].apply(torch.nn.Linear(2, 2))


# ---- the wordpiece student: the teacher's own row of each piece -----------------------------------
def test_wordpiece_rows_are_the_teacher_rows_of_their_pieces(setup):
    from edge_kd.distill.teacher_init import WordpieceInit
    from edge_kd.models.students.text import wordpiece_text_student

    emb = setup[0]
    pieces = ["[UNK]", "refund", "##s", "not-a-teacher-piece", "card", "weather", "sunny"]
    init = WordpieceInit.from_embeddings(pieces, emb, TinyWordPiece().get_vocab())
    dim = 6
    student = wordpiece_text_student(vocab=len(pieces), dim=dim, num_classes=3, max_ids=8)
    before = student.embed.weight.detach().clone()
    stats = init.apply(student)
    assert stats == {"init": "teacher", "pieces": 7, "pieces_from_teacher": 6, "columns_from_teacher": dim, "dim": dim}
    table = student.embed.weight.detach().numpy()
    # row 1 + i is piece i's teacher row, projected by the PCA of the whole teacher table (one scale)
    mean, comps = pca_basis(emb, emb.shape[1])
    z = (emb - mean) @ comps[:, :dim]
    scale = INIT_STD / np.sqrt(np.mean(z.std(axis=0) ** 2))
    for i, piece in enumerate(pieces):
        if piece in VOCAB:
            np.testing.assert_allclose(table[1 + i], z[VOCAB.index(piece)] * scale, atol=1e-5)
    # a piece the teacher lacks keeps its random row; padding stays zero
    assert torch.equal(student.embed.weight[4], before[4])
    assert torch.count_nonzero(student.embed.weight[0]) == 0
    # a student keeping a shorter prefix gets the same rows for the pieces it keeps
    short = wordpiece_text_student(vocab=3, dim=dim, num_classes=3, max_ids=8)
    init.apply(short)
    assert torch.equal(short.embed.weight[1:4], student.embed.weight[1:4])
    with pytest.raises(InputError, match="wordpiece student"):
        init.apply(hashed_text_student(buckets=16, dim=4, num_classes=3))


def test_two_hashes_fill_both_rows_of_a_feature(setup):
    emb = setup[0]
    spec2 = TextPreprocessSpec(buckets=1, max_ids=64, hashes_per_feature=2)
    texts = ["cancel my order", "refunds for my card", "it was refunded", "sunny weather"]
    init = HashedInit.from_embeddings(spec2, emb, TinyWordPiece(), texts)
    assert init.feature_hashes.shape == (len(setup[2].feature_hashes), 2)
    assert np.array_equal(init.feature_hashes[:, 0], setup[2].feature_hashes[:, 0])  # hash 0 is version 1's
    buckets, dim = 4096, 12
    student = hashed_text_student(buckets=buckets, dim=dim, num_classes=3, max_ids=64, hashes_per_feature=2)
    stats = init.apply(student)
    # "card" alone in both of its buckets (checked): both rows are the projection of the piece's embedding
    first, second = (1 + h % buckets for h in spec2.feature_hashes("w1:card"))
    z = torch.from_numpy(init.projected_words(dim)[init.words.index("card")])
    assert first != second
    assert torch.allclose(student.embed.weight[first], z, atol=1e-5)
    assert torch.allclose(student.embed.weight[second], z, atol=1e-5)
    assert stats["buckets_filled"] > setup[2].apply(hashed_text_student(buckets=buckets, dim=dim, num_classes=3))[
        "buckets_filled"]
