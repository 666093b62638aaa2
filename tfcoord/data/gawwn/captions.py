"""Captions as character tokens, the input of the char-CNN-RNN text encoders (Reed et al., CVPR 2016).

A caption is lower-cased and each character becomes its index in the 70-symbol
alphabet of the official code (1-based; characters outside it become 0, which the
encoder's one-hot turns into an all-zero column). Captions are cut or zero-padded
to ``DOC_LENGTH = 201`` characters, the official document length.
"""

from __future__ import annotations

import numpy as np

# The official alphabet, character for character ('-' appears twice; like the official
# dictionary, the later position wins, so index 39 is never produced).
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789-,;.!?:'\"/\\|_@#$%^&*~`+-=<>()[]{} "
ALPHABET_SIZE = len(ALPHABET)  # 70
DOC_LENGTH = 201
_INDEX = {char: i + 1 for i, char in enumerate(ALPHABET)}


def tokenize(text: str, length: int = DOC_LENGTH) -> np.ndarray:
    """int32 ``(length,)`` character tokens of one caption."""
    ids = [_INDEX.get(char, 0) for char in text.lower()[:length]]
    return np.asarray(ids + [0] * (length - len(ids)), np.int32)


def tokenize_all(texts, length: int = DOC_LENGTH) -> np.ndarray:
    """int32 ``(len(texts), length)`` tokens."""
    return np.stack([tokenize(t, length) for t in texts]) if len(texts) else np.zeros((0, length), np.int32)


def decode(tokens) -> str:
    """The caption text of ``tokens`` (unknown characters and padding dropped)."""
    return "".join(ALPHABET[int(t) - 1] for t in np.asarray(tokens).reshape(-1) if int(t) > 0)


def known_characters(text: str) -> int:
    """How many characters of ``text`` the alphabet knows (0 means the encoder sees nothing)."""
    return sum(char in _INDEX for char in text.lower())
