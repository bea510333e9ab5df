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
    """[start, end) spans of whole words over a body's pieces."""
    spans: list[tuple[int, int]] = []
    for i, t in enumerate(tokens):
        if t.startswith("##") and spans:
            spans[-1] = (spans[-1][0], i + 1)
        else:
            spans.append((i, i + 1))
    return spans


def occlusion(exp: Expectation, tok: TextTokenizer, bodies, seeds, label_ids, base_probs) -> list[list[WordEffect]]:
    """For each text, every word's effect on the probability of its predicted label. A
    word is left out of the windows that held it; the text's other windows stay as cut,
    so a long text's variants cost one window per view each (Expectation.raw's drops)."""
    variants, drops, owners, words = [], [], [], []
    for t, body in enumerate(bodies):
        tokens = tok.tokens(body)
        for s, e in word_spans(tokens):
            variants.append(body)
            drops.append((s, e))
            owners.append(t)
            words.append(tokens[s] + "".join(x[2:] for x in tokens[s + 1 : e]))
    out: list[list[WordEffect]] = [[] for _ in bodies]
    if not variants:
        return out
    probs = exp(variants, [seeds[o] for o in owners], drops).probs
    for v, t in enumerate(owners):
        lab = label_ids[t]
        out[t].append(WordEffect(words[v], float(base_probs[t][lab] - probs[v][lab])))
    return out


def reasoning_steps(effects: list[WordEffect], label: str, labels: list[str], confidence: float,
                    n_tokens: int, n_windows: int, n_views: int, n_draws: int, total: float, aleatoric: float,
                    epistemic: float, familiarity: float) -> list[str]:
    steps = [f"Read all {n_tokens} word pieces" + (f" in {n_windows} windows" if n_windows > 1 else "")
             + f"; averaged {n_views} seeded views and {n_draws} posterior draws per view."]
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
