"""The optimal chain-of-thought length of Chlon et al. 2025, k* = Theta(sqrt(n) log(1/eps)).

In the paper, a transformer that must aggregate n pieces of evidence to reach error eps
does best with a reasoning chain whose length grows as sqrt(n) * log(1/eps): longer
inputs need more steps, but only as the square root, and each halving of the tolerated
error costs a constant number of extra steps.

For this model:
- n is the number of word pieces in the whole input (every window): the evidence the
  classifier aggregates, the analogue of the paper's in-context items.
- eps is the error the reasoning should reach: the model's own error estimate for the
  input, 1 - confidence, capped to [EPS_MIN, EPS_MAX]. A hard input (confidence near
  0.5) leaves little to refine; a confident one needs more steps to verify.
- The constant is C = 1: k* = max(1, ceil(C * sqrt(n) * ln(1/eps))).

Example: n = 25 word pieces at confidence 0.9 -> ceil(1 * 5 * ln 10) = 12 steps.
"""
from __future__ import annotations

import math

C = 1.0  # the Theta constant
EPS_MIN = 1e-3  # below this, ln(1/eps) stops growing: no input warrants unbounded steps
EPS_MAX = 0.5  # a coin flip: ln 2 is the fewest steps an answer can need


def cot_length(n_tokens: int, confidence: float) -> int:
    eps = min(max(1.0 - confidence, EPS_MIN), EPS_MAX)
    return max(1, math.ceil(C * math.sqrt(max(n_tokens, 1)) * math.log(1.0 / eps)))
