"""Tokenizers for the transformer language model, built with the ``tokenizers`` library.

Both kinds are byte-level (GPT-2's byte-to-unicode alphabet), so any UTF-8 text
round-trips: ``decode(encode(text)) == text``.

- ``char``: the 256 byte tokens and no merges; for ASCII text a token is a character.
- ``bpe``: a byte-level BPE trained on the training text up to ``vocab_size`` tokens.

Id 0 is ``EOS_TOKEN`` in both; scoring puts it before held-out text as its only context.
What is saved is the library's own ``tokenizer.json``, which the runtime, ``transformers``
and onnxruntime-genai all read.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from genedge.errors import BadInputError, CorruptArtifactError

from .options import MIN_BPE_VOCAB, TOKENIZERS, check_vocab_size

EOS_TOKEN = "<|endoftext|>"
EOS_ID = 0
TRAIN_CHUNK_CHARS = 100_000  # the BPE trainer reads the corpus in pieces of this size


def _byte_level(tokenizer: Tokenizer) -> Tokenizer:
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def char_tokenizer() -> Tokenizer:
    """EOS, then one token per byte (ids 1..256), no merges."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()  # the 256 printable stand-ins for bytes
    order = sorted(alphabet, key=_byte_of)
    vocab = {EOS_TOKEN: EOS_ID, **{ch: i + 1 for i, ch in enumerate(order)}}
    tokenizer = _byte_level(Tokenizer(models.BPE(vocab=vocab, merges=[])))
    tokenizer.add_special_tokens([EOS_TOKEN])
    return tokenizer


def _byte_of(stand_in: str) -> int:
    """The byte GPT-2's byte-level alphabet writes as ``stand_in`` (so ids follow byte order)."""
    code = ord(stand_in)
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    if code in printable:
        return code
    others = [b for b in range(256) if b not in printable]
    return others[code - 256]


def bpe_tokenizer(text: str, vocab_size: int) -> Tokenizer:
    """A byte-level BPE trained on ``text``: EOS, the 256 bytes, then merges up to ``vocab_size``."""
    check_vocab_size(vocab_size)
    tokenizer = _byte_level(Tokenizer(models.BPE()))
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_chunks(text), trainer=trainer, length=len(text))
    return tokenizer


def _chunks(text: str) -> Iterator[str]:
    for i in range(0, len(text), TRAIN_CHUNK_CHARS):
        yield text[i : i + TRAIN_CHUNK_CHARS]


def build_tokenizer(kind: str, text: str, vocab_size: int | None) -> Tokenizer:
    """The ``--tokenizer`` named ``kind``, trained on ``text`` where it learns anything."""
    if kind == "char":
        return char_tokenizer()
    if kind == "bpe":
        return bpe_tokenizer(text, vocab_size or MIN_BPE_VOCAB)
    raise BadInputError(f"--tokenizer: received {kind!r}; expected one of {', '.join(TOKENIZERS)}.")


def tokenizer_from_json(text: str) -> Tokenizer:
    """A tokenizer from the JSON ``Tokenizer.to_str()`` wrote (a checkpoint's metadata)."""
    try:
        return Tokenizer.from_str(text)
    except Exception as e:  # tokenizers raises plain Exception subclasses for bad JSON
        raise CorruptArtifactError(
            f"The checkpoint's tokenizer does not load ({type(e).__name__}: {str(e)[:120]}).",
            hint="The file is corrupt or was edited; use an intact checkpoint or retrain.",
        ) from None


def encode(tokenizer: Tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False).ids


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Text of ``ids``; EOS and other special tokens are left out."""
    return tokenizer.decode(ids, skip_special_tokens=True)
