"""Preprocessing that ships with a student (its bytes count in the bundle): specs an app can
reimplement exactly, and their pure-Python reference implementations."""
from edge_kd.preprocess.text import TextPreprocessSpec, fnv1a_32, hash_texts, ids_from_hashes
from edge_kd.preprocess.wordpiece import WordpiecePreprocessSpec, rank_wordpieces

__all__ = ["TextPreprocessSpec", "WordpiecePreprocessSpec", "fnv1a_32", "hash_texts", "ids_from_hashes",
           "rank_wordpieces"]
