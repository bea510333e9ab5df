"""bench.domain_grid's rule: a head may not buy the off-home targets with answers. Shrunk to
50/50, a text's answer is a coin flip, which reads as calibrated and as an error ranked
last; the accuracy guard refuses such a row however good its ECE and AUROC."""
from __future__ import annotations

from bench.domain_grid import ACCURACY_MARGIN, FAR_DEV, FAR_MARGIN, OTHER, kept


def _figures(accuracy: float = 0.75, ece: float = 0.1, auroc: float = 0.6, far: float = 0.99) -> dict:
    m = {"nll": 0.40, "misclassification_auroc_confidence": 0.78} | dict.fromkeys(FAR_DEV, far)
    for n in OTHER:
        m |= {n + "_accuracy": accuracy, n + "_ece": ece, n + "_auroc": auroc}
    return m


def test_a_row_that_answers_fewer_texts_right_is_refused_however_calibrated() -> None:
    now = _figures()
    assert kept(_figures(ece=0.02, auroc=0.76), now)
    assert not kept(_figures(accuracy=0.75 - 2 * ACCURACY_MARGIN, ece=0.02, auroc=0.76), now)
    assert kept(_figures(accuracy=0.75 - ACCURACY_MARGIN / 2), now)


def test_a_row_that_lets_a_far_stand_in_fall_is_refused() -> None:
    now = _figures()
    assert kept(_figures(far=0.99 - FAR_MARGIN / 2), now)
    assert not kept(_figures(far=0.99 - 2 * FAR_MARGIN), now)
