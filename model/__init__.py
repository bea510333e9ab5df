"""The Bayesian Expectation Transformer: a compact text classifier whose answer is an
expectation over seeded views of the input, with calibrated, decomposed uncertainty."""
