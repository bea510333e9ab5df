"""The logistic regression behind every fit of training (the teacher's soft labels, the
n-gram head, the in-domain head), solved to a tight tolerance so that its weights are a
function of the data, not of where lbfgs happened to stop. At scikit-learn's default
tolerance (1e-4) the n-gram head stopped after 122 or 85 iterations depending on a 1e-6
perturbation of the teacher's embeddings, and its weights and the test ECE moved with it
(docs/model-history.md, Measured). Imported only when training: serving never loads scikit-learn."""
from __future__ import annotations

from sklearn.linear_model import LogisticRegression

TOL = 1e-8
MAX_ITER = 5000  # the n-gram head's class fit needs about 800 iterations at TOL


def logistic(c: float, **options) -> LogisticRegression:
    """An unfitted L2-regularised logistic regression with inverse strength c."""
    return LogisticRegression(C=c, tol=TOL, max_iter=MAX_ITER, **options)
