"""Training's logistic regressions are solved to the optimum, so their weights depend on the
data and not on where the solver stopped."""
import numpy as np

from model.logistic import logistic


def test_a_fit_reaches_the_optimum_of_its_objective():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 300))
    y = (x[:, :5].sum(1) + rng.standard_normal(400) > 0).astype(int)
    c = 4.0
    lr = logistic(c).fit(x, y)
    p = lr.predict_proba(x)[:, 1]
    # gradient of c * sum(log loss) + ||w||^2 / 2, divided by c: zero at the optimum
    # (scikit-learn's default tolerance leaves it at 0.04 here)
    assert np.abs(x.T @ (p - y) + lr.coef_[0] / c).max() < 1e-4
    assert abs((p - y).sum()) < 1e-4  # the unregularised intercept
