"""The README's first command ends in `python -m bayeslmm.demo`: it must fit and summarize."""

import warnings


def test_demo_fits_and_summarizes(capsys):
    from bayeslmm.demo import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = main(["--draws", "100", "--chains", "2"])
    out = capsys.readouterr().out
    assert "Regression Coefficients" in out and "~subj (Number of levels" in out
    est = fit.fixef()["Estimate"]
    assert abs(est["Intercept"] - 6.0) < 0.5 and abs(est["cond"] - 0.1) < 0.3
