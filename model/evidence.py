"""Evidence behind a prediction, computed from the model itself by occlusion: each word is
removed in turn and the expectation over views is recomputed; the words whose removal
moves the predicted class's probability most are the evidence, with signed effects."""
from __future__ import annotations

from dataclasses import dataclass

from .expectation import Expectation
from .tokenizer import TextTokenizer

TOP_WORDS = 3  # evidence steps per prediction


@dataclass(frozen=True)
class WordEffect:
    word: str
    effect: float  # p(predicted) with the word minus p(predicted) without it


def word_spans(tokens: list[str]) -> list[tuple[int, int]]:
    """[start, end) spans of whole words over the body (between [CLS] and [SEP])."""
    spans: list[tuple[int, int]] = []
    for i in range(1, len(tokens) - 1):
        if tokens[i].startswith("##") and spans:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return spans


def occlusion(exp: Expectation, tok: TextTokenizer, seqs, seeds, label_ids, base_probs) -> list[list[WordEffect]]:
    """For each text, every word's effect on the probability of its predicted label."""
    variants, owners, words = [], [], []
    for t, seq in enumerate(seqs):
        tokens = tok.tokens(seq)
        for s, e in word_spans(tokens):
            variants.append(seq[:s] + seq[e:])
            owners.append(t)
            words.append(tokens[s] + "".join(t[2:] for t in tokens[s + 1 : e]))
    out: list[list[WordEffect]] = [[] for _ in seqs]
    if not variants:
        return out
    probs = exp(variants, [seeds[o] for o in owners]).probs
    for v, t in enumerate(owners):
        lab = label_ids[t]
        out[t].append(WordEffect(words[v], float(base_probs[t][lab] - probs[v][lab])))
    return out


def reasoning_steps(effects: list[WordEffect], label: str, labels: list[str], confidence: float,
                    n_tokens: int, n_used: int, n_views: int, total: float, aleatoric: float,
                    epistemic: float, familiarity: float) -> list[str]:
    steps = [f"Read {n_tokens} word pieces" + (f" (first {n_used} used)" if n_used < n_tokens else "")
             + f"; averaged {n_views} seeded views of their positions."]
    ranked = sorted(effects, key=lambda w: abs(w.effect), reverse=True)[:TOP_WORDS]
    others = [x for x in labels if x != label]
    for w in ranked:
        toward = label if w.effect >= 0 else (others[0] if len(others) == 1 else f"not {label}")
        steps.append(f"'{w.word}' points to {toward}: without it p({label}) changes by {-w.effect:+.3f}.")
    if not ranked:
        steps.append("No single word carries the decision.")
    steps.append(
        f"Predicted {label} with p={confidence:.3f}; uncertainty {total:.3f} nats = "
        f"aleatoric {aleatoric:.3f} + epistemic {epistemic:.3f}; "
        f"similarity to the training data {familiarity:.2f} (1 = familiar)."
    )
    return steps
