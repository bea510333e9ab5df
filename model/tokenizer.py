"""WordPiece tokenizer (the `tokenizers` library), saved with every checkpoint as tokenizer.json."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer


@dataclass(frozen=True)
class Encoded:
    ids: list[int]  # [CLS] ... [SEP], at most max_len ids: one window, as training reads a text
    n_tokens: int  # word pieces in the whole text before truncation (no specials)


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_len: int):
        tokenizer.no_padding()
        tokenizer.no_truncation()  # we truncate ourselves so the full length is known
        self._tok = tokenizer
        self.max_len = max_len
        vocab = tokenizer.get_vocab()
        self.cls_id, self.sep_id, self.pad_id = vocab["[CLS]"], vocab["[SEP]"], vocab["[PAD]"]
        self.unk_id = vocab.get("[UNK]", self.pad_id)

    @classmethod
    def from_file(cls, path: str | Path, max_len: int) -> TextTokenizer:
        return cls(Tokenizer.from_file(str(path)), max_len)

    def save(self, path: str | Path) -> None:
        self._tok.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size()

    def encode(self, texts: Sequence[str]) -> list[Encoded]:
        out = []
        for enc in self._tok.encode_batch(list(texts), add_special_tokens=False):
            body = enc.ids[: self.max_len - 2]
            out.append(Encoded([self.cls_id, *body, self.sep_id], len(enc.ids)))
        return out

    def bodies(self, texts: Sequence[str]) -> list[list[int]]:
        """Every word piece of each text, untruncated and without [CLS]/[SEP]: inference
        reads a long text in windows (model/windows.py)."""
        return [enc.ids for enc in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def tokens(self, ids: Sequence[int]) -> list[str]:
        return [self._tok.id_to_token(i) or "[UNK]" for i in ids]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids))
