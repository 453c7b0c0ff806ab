import numpy as np

from nlp.calibration import choose_thresholds, coverage_at, expected_calibration_error, fit_temperature, softmax


def test_temperature_recovers_overconfident_scores():
    rng = np.random.default_rng(0)
    n, k = 4000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.0
    sharp = logits * 5  # overconfident by a factor 5
    t = fit_temperature(sharp, y)
    assert 3.5 < t < 7
    p = softmax(sharp, t)
    conf, correct = p.max(1), p.argmax(1) == y
    assert expected_calibration_error(conf, correct) < 0.03
    assert expected_calibration_error(softmax(sharp).max(1), correct) > 0.1


def test_thresholds_meet_target_on_their_data():
    rng = np.random.default_rng(1)
    conf = rng.uniform(0.3, 1, 3000)
    correct = rng.uniform(0, 1, 3000) < conf
    pred = np.where(rng.uniform(0, 1, 3000) < 0.5, "a", "b")
    th, glob = choose_thresholds(conf, pred, correct, 0.9)
    assert set(th) == {"a", "b"} and 0.5 < glob < 1
    cov, prec = coverage_at(conf, np.array([th[p] for p in pred]), correct)
    assert prec >= 0.89 and 0.05 < cov < 0.6


def test_unreachable_target_means_review_everything():
    th, glob = choose_thresholds(np.array([0.9] * 20), ["a"] * 20, np.zeros(20, bool), 0.97)
    assert th["a"] > 1 and glob > 1


def test_reliable_class_routes_more_and_overall_precision_holds():
    rng = np.random.default_rng(2)
    n = 4000
    conf = rng.uniform(0.4, 1, n)
    pred = np.where(rng.uniform(0, 1, n) < 0.5, "good", "bad")
    p_correct = np.where(pred == "good", np.minimum(1, conf + 0.15), conf - 0.2)
    correct = rng.uniform(0, 1, n) < p_correct
    th, _ = choose_thresholds(conf, pred, correct, 0.95)
    assert th["good"] < th["bad"]
    cov, prec = coverage_at(conf, np.array([th[p] for p in pred]), correct)
    assert prec >= 0.95 and cov > 0.2
    # a fresh sample of the same process: the thresholds generalise
    conf2 = rng.uniform(0.4, 1, n)
    pc2 = np.where(pred == "good", np.minimum(1, conf2 + 0.15), conf2 - 0.2)
    correct2 = rng.uniform(0, 1, n) < pc2
    assert coverage_at(conf2, np.array([th[p] for p in pred]), correct2)[1] >= 0.94
