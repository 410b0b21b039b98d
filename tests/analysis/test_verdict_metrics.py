"""The test matches the metric: on constructed records, a macro-F1 verdict takes its p-value from a
paired permutation test of macro-F1 (not McNemar, which tests accuracy), a ROUGE verdict from one of
ROUGE, disagreeing metrics are said, the headline is tested alone and Holm's family is the other
adapters, a proportion gets the Wilson interval, power is the exact McNemar test's, and the
break-even clause reads as a sentence."""

from __future__ import annotations

import numpy as np
import pytest

from harness.analysis import stats
from harness.analysis.cost import Prices
from harness.taskkit.metrics import Scored, metric
from tests.helpers import summarise_task


def _rec(item: str, variant: str, gold: str, pred: str, pt: int = 100) -> dict:
    return {
        "task": "t", "item": item, "variant": variant, "prediction": pred, "gold": gold,
        "scores": {"correct": float(pred == gold)}, "prompt_tokens": pt, "completion_tokens": 2,
        "latency_s": 0.001 + pt / 10_000,
    }  # fmt: skip


def _golds() -> list[str]:
    return ["N"] * 140 + ["B"] * 30 + ["U"] * 30  # imbalanced, as sentiment data is


def _adapter_preds(n_correct: int, minority_correct: int) -> list[str]:
    """Right on `n_correct` of the 140 majority items (the rest split between B and U) and on
    `minority_correct` of each 30-item minority label (the rest answered N)."""
    wrong_n = 140 - n_correct
    preds = ["N"] * n_correct + ["B"] * (wrong_n // 2) + ["U"] * (wrong_n - wrong_n // 2)
    for label in ("B", "U"):
        preds += [label] * minority_correct + ["N"] * (30 - minority_correct)
    return preds


def _summary(adapter_preds: list[str], metrics=("macro_f1", "accuracy"), train_s: float = 3600.0):
    golds = _golds()
    records = [_rec(f"i{i}", "zero_shot", g, "N", pt=400) for i, g in enumerate(golds)]
    records += [_rec(f"i{i}", "lora_n256", g, p, pt=50) for i, (g, p) in enumerate(zip(golds, adapter_preds, strict=True))]
    info = {"metrics": list(metrics), "labels": ["B", "N", "U"], "kind": "classification"}
    return summarise_task("t", info, records, {"lora_n256": {"train_size": 256, "train_device_s": train_s}}, Prices())


def test_macro_f1_gain_with_an_accuracy_loss_is_tested_on_macro_f1_and_the_disagreement_said():
    s = _summary(_adapter_preds(n_correct=63, minority_correct=27))
    row = next(r for r in s.rows if r.variant == "lora_n256")
    assert row.test == "paired permutation"
    # McNemar on per-item correctness points the other way here (77 items lost, 54 won): not the test used
    assert row.p_value != pytest.approx(stats.mcnemar_exact(77, 54))
    assert row.p_value is not None and row.p_value < 0.01 and row.diff is not None and row.diff.low > 0
    assert s.verdict.startswith("Fine-tuning pays off: lora_n256 beats zero_shot by +30.")
    assert "The metrics disagree in direction: on accuracy, lora_n256 is -11.5 points against zero_shot" in s.verdict
    # the accuracy comparison names its own test, with its own p (not any p that starts "0.0")
    assert f"exact McNemar p = {stats.mcnemar_exact(77, 54):.2g})" in s.verdict and "p = 0.054)" in s.verdict


def test_equal_accuracy_but_better_macro_f1_is_not_called_no_difference():
    # 50 majority items traded for 50 minority items: McNemar sees 50 v 50 (p = 1), macro-F1 moves a lot
    s = _summary(_adapter_preds(n_correct=90, minority_correct=25))
    row = next(r for r in s.rows if r.variant == "lora_n256")
    assert stats.mcnemar_exact(50, 50) == 1.0
    assert row.diff is not None and row.diff.low > 0
    assert row.p_value is not None and row.p_value < 0.05
    assert s.verdict.startswith("Fine-tuning pays off")
    assert "The metrics disagree" not in s.verdict  # accuracy is unchanged, not opposed


def test_rouge_verdict_tests_the_headline_alone_and_holms_the_exploratory_arms():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(0)
    base = rng.uniform(0.1, 0.4, size=60)
    noise = rng.normal(0, 0.08, size=60)
    records = []
    for i, x in enumerate(base):
        arms = (("zero_shot", x), ("few_shot", x + 0.01), ("lora_n64", x + 0.03 + noise[i]), ("lora_n256", x + 0.12))
        for v, score in arms:
            scores = {"rouge1": score, "rouge2": score, "rougeL": score}
            records.append({**_rec(f"i{i}", v, "g", "p"), "scores": scores})
    info = {"metrics": ["rougeL"], "labels": [], "kind": "generation"}
    adapters = {
        "lora_n64": {"train_size": 64, "train_device_s": 1.0},
        "lora_n256": {"train_size": 256, "train_device_s": 1.0},
    }
    val = []  # validation picks the same arms before test is read
    for i in range(20):
        for v, score in (("zero_shot", 0.2), ("few_shot", 0.25), ("lora_n64", 0.3), ("lora_n256", 0.35)):
            val.append({**_rec(f"v{i}", v, "g", "p"), "scores": {"rouge1": score, "rouge2": score, "rougeL": score}})
    s = summarise_task("t", info, records, adapters, Prices(), val_records=val)
    rows = {r.variant: r for r in s.rows}
    assert s.best_prompt == "few_shot" and s.best_adapter == "lora_n256" and s.selection.on == "validation"
    assert rows["lora_n256"].test == "paired permutation" and rows["lora_n256"].p_value is not None
    # the headline arm is one confirmatory test: its own p, never Holm's
    assert rows["lora_n256"].p_value < 0.01 and rows["lora_n256"].p_holm is None
    # the other prompt is not in the family; the exploratory arm is, and its p is off the permutation floor
    assert rows["zero_shot"].p_holm is None and rows["zero_shot"].p_value is not None
    p64 = rows["lora_n64"].p_value
    assert p64 is not None and 0.003 < p64 < 0.5
    expected = multipletests([p64, rows["lora_n256"].p_value], method="holm")[1][0]
    assert rows["lora_n64"].p_holm == pytest.approx(expected)
    assert rows["lora_n64"].ci_level == pytest.approx(0.975)  # its interval at the Bonferroni level of a family of 2
    assert s.verdict.startswith("Fine-tuning wins on quality but costs more: lora_n256 beats few_shot by +0.110")
    # chosen on test (no validation records), the headline is one of the family it was picked from: Holm
    on_test = summarise_task("t", info, records, adapters, Prices())
    row = next(r for r in on_test.rows if r.variant == "lora_n256")
    assert on_test.selection.on == "test" and row.p_holm == pytest.approx(2 * row.p_value)
    assert "Holm-adjusted over every adapter arm, since the arms were chosen on test" in on_test.verdict


def test_permutation_test_of_a_mean_is_the_sign_flip_test():
    m = metric("rougeL")
    d = np.array([0.3, -0.1, 0.2, 0.25, 0.05, 0.15])
    a = [Scored("x", "g", {"rougeL": 0.0}) for _ in d]
    b = [Scored("x", "g", {"rougeL": float(x)}) for x in d]
    # exact two-sided sign-flip p over all 2^6 flips
    flips = np.array(np.meshgrid(*[[-1, 1]] * len(d))).reshape(len(d), -1).T
    exact = float(np.mean(np.abs((flips * d).mean(axis=1)) >= abs(d.mean()) - 1e-12))
    assert stats.permutation_test(a, b, m, n_perm=20_000, seed=1) == pytest.approx(exact, abs=0.01)
    assert stats.permutation_test(a, a, m) == 1.0


def test_macro_f1_permutation_test_rejects_at_its_level_under_the_null():
    """600 draws of two arms from one distribution: the rejection rate at 0.05 is 0.05 give or take
    binomial noise (sd 0.9 points); a test that rejected twice as often (10%) fails the bound."""
    rng = np.random.default_rng(3)
    m = metric("macro_f1")
    ps = []
    for _ in range(600):
        golds = rng.choice(["a", "b", "c"], size=40)
        a = [Scored(str(rng.choice(["a", "b", "c"])), g, {}) for g in golds]
        b = [Scored(str(rng.choice(["a", "b", "c"])), g, {}) for g in golds]
        ps.append(stats.permutation_test(a, b, m, ["a", "b", "c"], n_perm=199, seed=int(rng.integers(1 << 30))))
    rate = float(np.mean(np.array(ps) <= 0.05))
    assert 0.02 <= rate <= 0.075, rate
    assert 0.45 < float(np.mean(ps)) < 0.55


def test_the_headline_is_one_test_not_a_family_of_twelve():
    """The adapter chosen on validation beats the prompt on test with exact McNemar p = 0.013 (14
    items won, 3 lost); eleven other adapter arms sit level with the prompt. Holm over all twelve made
    it 0.15 and the verdict 'no detectable difference'; the headline is one confirmatory test."""
    n = 100
    golds = ["a"] * n
    prompt = [i < 50 for i in range(n)]
    chosen = [(i < 50 and not 47 <= i < 50) or 50 <= i < 64 for i in range(n)]  # 3 lost, 14 won
    records = [_rec(f"i{i}", "zero_shot", g, "a" if r else "b") for i, (g, r) in enumerate(zip(golds, prompt, strict=True))]
    records += [_rec(f"i{i}", "lora_best", "a", "a" if r else "b", pt=50) for i, r in enumerate(chosen)]
    others = [f"lora_{k}" for k in range(11)]
    for v in others:
        records += [_rec(f"i{i}", v, "a", "a" if r else "b", pt=50) for i, r in enumerate(prompt)]
    # validation: the chosen arm is the best of its side, chosen before test was read
    val = [_rec(f"v{i}", "zero_shot", "a", "a" if i < 10 else "b") for i in range(20)]
    val += [_rec(f"v{i}", "lora_best", "a", "a" if i < 16 else "b", pt=50) for i in range(20)]
    for v in others:
        val += [_rec(f"v{i}", v, "a", "a" if i < 12 else "b", pt=50) for i in range(20)]
    adapters = {v: {"train_size": 64, "train_device_s": 1.0} for v in ["lora_best", *others]}
    info = {"metrics": ["accuracy"], "labels": ["a", "b"], "kind": "classification"}
    s = summarise_task("t", info, records, adapters, Prices(), val_records=val)
    assert s.selection is not None and s.selection.on == "validation" and s.best_adapter == "lora_best"
    row = next(r for r in s.rows if r.variant == "lora_best")
    assert row.p_value == pytest.approx(stats.mcnemar_exact(3, 14)) and row.p_value < 0.05 and row.p_holm is None
    assert s.verdict.startswith("Fine-tuning pays off: lora_best beats zero_shot by +11.0 points")
    # the exploratory arms keep Holm over the family, and intervals at its Bonferroni level
    other = next(r for r in s.rows if r.variant == "lora_0")
    assert other.p_holm == 1.0 and other.ci_level == pytest.approx(1 - 0.05 / 12)


@pytest.mark.parametrize(("k", "n"), [(0, 150), (150, 150), (0, 12), (149, 150), (45, 90)])
def test_a_proportion_gets_the_wilson_interval(k, n):
    from statsmodels.stats.proportion import proportion_confint

    items = [Scored("a" if i < k else "b", "a", {"correct": float(i < k)}) for i in range(n)]
    est = stats.metric_ci(items, "accuracy")
    assert (est.low, est.high) == pytest.approx(proportion_confint(k, n, method="wilson"))
    if (k, n) == (0, 150):
        assert est.high == pytest.approx(0.025, abs=5e-4)  # not "0.0 [0.0, 0.0]"
    if (k, n) == (149, 150):
        # the percentile bootstrap said [98.0, 100.0]: too sure near the boundary
        boot = stats.bootstrap_ci(items, metric("accuracy").corpus)
        assert boot.low > 0.979 and est.low == pytest.approx(0.9632, abs=1e-4)


def test_array_macro_f1_equals_the_sklearn_one():
    """The report, the bootstrap and the permutation test compute macro-F1 on integer codes; it must
    be sklearn's, including answers outside the label set and no answer at all."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(5)
    m = metric("macro_f1")
    labels = ["a", "b", "c", "d"]
    for _ in range(50):
        n = int(rng.integers(1, 40))
        golds = rng.choice(labels[:3], size=n)
        preds = rng.choice(["a", "b", "c", "d", "zzz", None], size=n)
        items = [Scored(p, str(g), {}) for g, p in zip(golds, preds, strict=True)]
        [fn] = stats.column_stats(m, labels, [items])
        guessed = [p if p is not None else "<none>" for p in preds]
        present = sorted(set(golds) | (set(guessed) & set(labels)))
        expected = f1_score(list(golds), guessed, labels=present, average="macro", zero_division=0)
        assert fn(np.arange(n)) == pytest.approx(expected)
        assert m.corpus(items, labels) == pytest.approx(expected)
        idx = rng.integers(0, n, size=n)
        assert fn(idx) == pytest.approx(m.corpus([items[i] for i in idx], labels))


def test_a_better_adapter_that_never_costs_less_is_said_to_cost_more():
    # the adapter is better but its requests cost more, and its training more: it never pays back
    golds = _golds()
    records = [_rec(f"i{i}", "zero_shot", g, "N", pt=50) for i, g in enumerate(golds)]
    records += [_rec(f"i{i}", "lora", g, g, pt=400) for i, g in enumerate(golds)]
    info = {"metrics": ["accuracy"], "labels": ["B", "N", "U"], "kind": "classification"}
    s = summarise_task("t", info, records, {"lora": {"train_size": 8, "train_device_s": 60.0}}, Prices())
    assert s.verdict.startswith("Fine-tuning wins on quality but costs more: lora beats zero_shot by +30.0 points")
    assert "on cost, the prompt costs less at every volume." in s.verdict
    assert "it never costs less than the prompt" in s.verdict and "recovered never" not in s.verdict


def test_items_needed_is_the_exact_mcnemar_count_near_connors_formula():
    n = stats.items_needed(0.05, 0.3)
    assert n == 975  # the exact test; a paired t-test answered 936
    normal = (1.959964 * 0.3**0.5 + 0.841621 * (0.3 - 0.0025) ** 0.5) ** 2 / 0.0025  # Connor (1987), McNemar
    assert normal < n < normal * 1.05  # the exact test is a little more conservative than the normal formula
    assert stats.items_needed(0.10, 0.3) < n < stats.items_needed(0.05, 0.5)  # bigger effects need fewer items
    with pytest.raises(ValueError):
        stats.items_needed(0.4, 0.3)  # an effect larger than the disagreement is impossible
    with pytest.raises(ValueError):
        stats.items_needed(0.05, 0.3, alpha=0.05, power=0.05)  # no difference at all already has this power


def test_the_detectable_difference_and_items_needed_are_inverse():
    from harness.analysis import proportions

    for n, discordance in ((400, 0.3), (150, 0.2), (60, 0.5)):
        mde = proportions.mde_mcnemar(n, discordance)
        assert mde is not None
        assert proportions.mcnemar_power(n, mde, discordance) >= 0.8 - 1e-6
        assert proportions.mcnemar_power(n, mde * 0.98, discordance) < 0.8
        assert stats.items_needed(mde, discordance) == pytest.approx(n, rel=0.05)
    assert proportions.mde_mcnemar(10, 0.05) is None  # half an item differs: no difference is detectable


def test_no_detectable_difference_states_the_post_hoc_detectable_effect():
    from harness.analysis import proportions

    golds = ["N"] * 80 + ["B"] * 20
    preds_a = ["N"] * 100
    preds_b = ["B" if 75 <= i < 85 else "N" for i in range(100)]  # 5 items lost, 5 won: equal accuracy
    records = [_rec(f"i{i}", "zero_shot", g, p) for i, (g, p) in enumerate(zip(golds, preds_a, strict=True))]
    records += [_rec(f"i{i}", "lora", g, p) for i, (g, p) in enumerate(zip(golds, preds_b, strict=True))]
    info = {"metrics": ["accuracy"], "labels": ["B", "N", "U"], "kind": "classification"}
    s = summarise_task("t", info, records, {"lora": {"train_size": 8, "train_device_s": 1.0}}, Prices())
    expected = proportions.mde_mcnemar(100, 0.10)
    assert expected is not None
    low, high = proportions.tango(5, 5, 100)  # held to McNemar's test and to exact coverage in test_stats_cost
    assert s.verdict.startswith(
        f"Keep the prompt: no detectable quality difference (+0.0 points, 95% CI {low * 100:.1f} to {high * 100:.1f}, "
        "exact McNemar p = 1; "
        f"these items detect about {expected * 100:.1f} points), and the prompt costs less at every volume."
    )
    assert f"Post hoc, these items detect a difference of about {expected * 100:.1f} points" in s.verdict


@pytest.mark.parametrize(
    ("args", "code", "text"),
    [
        (["size", "twitter_fin_sentiment", "--effect", "5"], 0, "975 test items detect a 5-point difference in accuracy"),
        (
            ["size", "twitter_fin_sentiment", "--effect", "10", "--discordance", "0.25", "--alpha-family", "12"],
            0,
            f"{stats.items_needed(0.1, 0.25, alpha=0.05 / 12)} test items detect a 10-point difference",
        ),
        (["size", "twitter_fin_sentiment", "--effect", "5", "--alpha-family", "0"], 2, "--alpha-family must be"),
        (["size", "twitter_fin_sentiment", "--effect", "0"], 2, "--effect must be above 0"),
        (["size", "twitter_fin_sentiment", "--effect", "150"], 2, "--effect must be above 0 and at most 100, got 150"),
        (["size", "twitter_fin_sentiment", "--effect", "40", "--discordance", "0.3"], 2, "at least the effect"),
        (["size", "scitldr", "--effect", "5"], 2, "rougeL is not one"),
    ],
)
def test_size_command(args, code, text, capsys, monkeypatch, fixture_data):
    from tests.helpers import run_cli

    got, out, err = run_cli(args, capsys, monkeypatch)
    assert got == code and text in " ".join((out + err).split()), out + err


def test_several_seeds_are_summarised_and_counted_in_the_verdict():
    golds = _golds()
    records = [_rec(f"i{i}", "zero_shot", g, "N") for i, g in enumerate(golds)]  # accuracy 0.70
    correct_by_seed = {0: 190, 1: 180, 2: 142}  # seeds 0 and 1 clearly better; seed 2 level with the prompt
    for seed, k in correct_by_seed.items():
        records += [_rec(f"i{i}", f"lora_n64_s{seed}", g, g if i < k else "zzz") for i, g in enumerate(golds)]
    adapters = {f"lora_n64_s{s}": {"train_size": 64, "seed": s, "train_device_s": 1.0} for s in correct_by_seed}
    info = {"metrics": ["accuracy"], "labels": ["B", "N", "U"], "kind": "classification"}
    s = summarise_task("t", info, records, adapters, Prices())
    values = [k / 200 * 100 for k in correct_by_seed.values()]
    mean, sd = float(np.mean(values)), float(np.std(values, ddof=1))
    assert f"Across seeds 0, 1, 2: lora_n64_s0 (n=64) accuracy {mean:.1f} ± {sd:.1f} points" in s.verdict
    assert "the adapter beats the prompt in 2 of 3 seeds (each seed's adapter against zero_shot)." in s.verdict


def test_with_few_shot_draws_per_seed_each_seed_is_paired_with_its_own_draw():
    """seeds = [0, 1, 2]: the few-shot prompt draws its examples per seed, like the adapter trains
    per seed; the verdict gives both sides' mean +- sd and pairs seed k's adapter with seed k's draw."""
    from dataclasses import asdict

    from harness.experiment.variant import Variant, seeded_prompts

    drawn = seeded_prompts([Variant("zero_shot", "zero_shot"), Variant("few_shot_8", "few_shot", shots=8)], [0, 1, 2])
    assert [(v.name, v.shot_seed) for v in drawn] == [
        ("zero_shot", None), ("few_shot_8_s0", 0), ("few_shot_8_s1", 1), ("few_shot_8_s2", 2)
    ]  # fmt: skip
    assert seeded_prompts(drawn[:2], [0]) == drawn[:2]
    similar = Variant("few_shot_8", "few_shot", shots=8, selection="similar")  # deterministic: one arm
    assert seeded_prompts([similar], [0, 1]) == [similar]
    golds = _golds()
    prompt_right = {0: 150, 1: 170, 2: 120}  # the draws differ by 25 points
    adapter_right = {0: 190, 1: 175, 2: 185}
    records = []
    for seed in (0, 1, 2):
        records += [
            _rec(f"i{i}", f"few_shot_8_s{seed}", g, g if i < prompt_right[seed] else "zzz") for i, g in enumerate(golds)
        ]
        records += [
            _rec(f"i{i}", f"lora_n64_s{seed}", g, g if i < adapter_right[seed] else "zzz") for i, g in enumerate(golds)
        ]
    records += [_rec(f"i{i}", "zero_shot", g, "zzz") for i, g in enumerate(golds)]
    adapters = {f"lora_n64_s{s}": {"train_size": 64, "seed": s, "train_device_s": 1.0} for s in (0, 1, 2)}
    info = {
        "metrics": ["accuracy"], "labels": ["B", "N", "U"], "kind": "classification",
        "variants": [asdict(v) for v in drawn],
    }  # fmt: skip
    s = summarise_task("t", info, records, adapters, Prices())
    assert s.best_prompt == "few_shot_8_s1" and s.best_adapter == "lora_n64_s0"  # no validation: the test scores
    p = [k / 2 for k in prompt_right.values()]
    a = [k / 2 for k in adapter_right.values()]
    assert (
        f"Across seeds 0, 1, 2: lora_n64_s0 (n=64) accuracy {np.mean(a):.1f} ± {np.std(a, ddof=1):.1f} points, "
        f"few_shot_8 over its few-shot draws {np.mean(p):.1f} ± {np.std(p, ddof=1):.1f} points"
    ) in s.verdict
    # seed 1: 175 against 170 right (5 discordant items) is no win; seeds 0 and 2 are
    assert (
        "the adapter beats the prompt in 2 of 3 seeds (each seed's adapter against the same seed's few-shot draw)."
    ) in s.verdict


def test_noise_floor_counts_answers_that_change_in_another_batch_order():
    from harness.analysis.evidence import noise_floor
    from harness.analysis.verdict import noise_sentence

    golds = ["N"] * 80 + ["B"] * 20
    records = [_rec(f"i{i}", "zero_shot", g, "N") for i, g in enumerate(golds)]
    records += [_rec(f"i{i}", "lora", g, g) for i, g in enumerate(golds)]
    noise = [_rec(f"i{i}", "noise:zero_shot", g, "B" if i in (3, 50, 97) else "N") for i, g in enumerate(golds)]
    info = {"metrics": ["accuracy"], "labels": ["B", "N", "U"], "kind": "classification"}
    s = summarise_task("t", info, records, {"lora": {"train_size": 8, "train_device_s": 1.0}}, Prices(), noise_records=noise)
    assert s.noise == ("zero_shot", 3, 100)
    assert (
        "Noise floor: zero_shot re-run on 100 test items in another batch order changed 3 answers "
        "(3.0%, 95% CI 1.0% to 8.5%)" in s.verdict
    )
    assert noise_floor({"zero_shot": records[:100]}, []) is None and noise_sentence(None) == ""
    kept = [{**r, "cached": True} for r in noise]  # the re-run's batches were answered before on this machine
    s = summarise_task("t", info, records, {"lora": {"train_size": 8, "train_device_s": 1.0}}, Prices(), noise_records=kept)
    assert (
        "in another batch order (the re-run of an earlier run on this machine, same batches) changed 3 answers" in s.verdict
    )
    assert noise_sentence(("zero_shot", 1, 100)).endswith(
        "changed 1 answer (1.0%, 95% CI 0.2% to 5.4%): differences of that rate are run-to-run noise."
    )
