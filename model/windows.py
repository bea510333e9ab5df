"""A text longer than one window is read whole, as consecutive windows.

The network reads at most `max_len` ids ([CLS], up to max_len - 2 word pieces, [SEP]). A
longer text is cut into windows of that many pieces; each view of the text starts its grid
at its own seeded place (views.TextViews.starts), so the first and last windows of a view
are partial and no word always sits at an edge. Every piece is in exactly one window of
every view. A view's answer is the piece-weighted mean of its windows' outputs (features,
logits, in-domain logits): for the linear heads that is the same as pooling the network's
final states over every piece of the text. The n-gram head reads no positions and needs
no windows: it reads each text whole. docs/adr/0003-long-texts.md says why.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from .config import NetworkConfig, ViewConfig
from .views import TextViews, draw_views, positions


def window_pieces(ncfg: NetworkConfig) -> int:
    """Word pieces per window: max_len less [CLS] and [SEP]."""
    return ncfg.max_len - 2


def cuts(n: int, start: int, width: int) -> list[tuple[int, int]]:
    """[a, b) spans of a body of n pieces: one span when it fits in a window, else a grid of
    `width` starting at `start` (in [0, width)), so the first and last spans may be short."""
    if n <= width:
        return [(0, n)]
    edges = [0, *range(start if start > 0 else width, n, width), n]
    return list(pairwise(edges))


def count(n: int, ncfg: NetworkConfig) -> int:
    """The most windows a body of n pieces takes in any view (the batcher's cost unit)."""
    width = window_pieces(ncfg)
    return 1 if n <= width else -(-n // width) + 1


class TooLong(ValueError):
    """A text of more word pieces than the model reads (ViewConfig.max_windows windows)."""


def checked(n: int, vcfg: ViewConfig, ncfg: NetworkConfig) -> int:
    """count(n), or TooLong past the most windows a text may take."""
    windows = count(n, ncfg)
    if windows > vcfg.max_windows:
        raise TooLong(f"the text is {n} word pieces; the model reads at most "
                      f"{vcfg.max_windows} windows of {window_pieces(ncfg)}")
    return windows


@dataclass
class Plan:
    """Every window of every view of a batch of texts, as the encoder runs them."""

    seqs: list[list[int]]  # [CLS] window [SEP] ids
    pos: list[np.ndarray]  # their position ids
    owner: np.ndarray  # (S,) text * K + view each sequence belongs to
    weight: np.ndarray  # (S,) word pieces of the window (1 for an empty text)
    views: list[TextViews]  # per text


def plan(bodies: list[list[int]], seeds: list[int], vcfg: ViewConfig, ncfg: NetworkConfig,
         drops: Sequence[tuple[int, int] | None] | None = None) -> Plan:
    """drops[i] = (a, b): the pieces [a, b) of text i are left out after its windows are
    cut, so that the other windows stay as they were (occlusion evidence)."""
    width = window_pieces(ncfg)
    K = vcfg.n_views
    seqs, pos, owner, weight, views = [], [], [], [], []
    for i, (body, seed) in enumerate(zip(bodies, seeds, strict=True)):
        checked(len(body), vcfg, ncfg)
        drop = drops[i] if drops is not None else None
        tv = draw_views(seed, vcfg, ncfg)
        views.append(tv)
        if drop is None and len(body) <= width:  # one window, the same ids in every view
            seq = [ncfg.cls_id, *body, ncfg.sep_id]
            for v in range(K):
                seqs.append(seq)
                pos.append(positions(len(seq), int(tv.offsets[v])))
                owner.append(i * K + v)
                weight.append(max(len(body), 1))
            continue
        for v in range(K):
            parts = []
            for a, b in cuts(len(body), int(tv.starts[v]), width):
                piece = body[a:b] if drop is None else body[a : max(a, min(b, drop[0]))] + body[max(a, drop[1]) : b]
                parts.append((a, b, piece))
            kept = [x for x in parts if x[2]] or parts[:1]  # an emptied window is left out, unless it is all
            for _, _, piece in kept:
                seq = [ncfg.cls_id, *piece, ncfg.sep_id]
                seqs.append(seq)
                pos.append(positions(len(seq), int(tv.offsets[v])))
                owner.append(i * K + v)
                weight.append(max(len(piece), 1))
    return Plan(seqs, pos, np.asarray(owner, dtype=np.int64), np.asarray(weight, dtype=np.float64), views)


def dropped(body: list[int], drop: tuple[int, int] | None) -> list[int]:
    """The body without the pieces [a, b)."""
    return body if drop is None else body[: drop[0]] + body[drop[1] :]
