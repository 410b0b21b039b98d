"""A researcher's path: a task of their own in a folder outside the repository, found with
--tasks-dir after any subcommand, checked with `check-task`, run prompt-only from the command line,
with decoding settings and whitespace under their control, and its field mistakes named before any
work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.types import Sample
from harness.experiment.plan import Plan, TaskPlan, default_variants, pick_variants, without_training
from harness.experiment.requests import build_requests
from harness.experiment.variant import Variant
from harness.taskkit import prompts
from harness.taskkit.registry import get_task, registry
from tests.helpers import run_cli
from tests.tiny_model import make_model_dir

TASK = """from harness.tasks import Fixtures, Task
from harness.types import Sample

TASK = Task(name="spam", version=1, domain="sms", kind="classification", description="spam or ham",
            to_sample=lambda r: Sample(id=r["id"], fields={FIELDS}, target=r["label"]),
            test_split="test", train_split="train", metrics=("accuracy",), labels=("ham", "spam"),
            input_field="sms",
            fixtures=Fixtures(rows={{"train": [{{"id": "f1", "sms": "WIN a prize now", "label": "spam"}},
                                              {{"id": "f2", "sms": "see you at six", "label": "ham"}}],
                                    "test": [{{"id": "f3", "sms": "free ringtones, reply YES", "label": "spam"}}]}},
                              wrong={WRONG!r}))
"""


def _rows(prefix: str, n: int) -> str:
    texts = [("Claim your free cash prize", "spam"), ("Lunch tomorrow?", "ham"), ("URGENT: you won", "spam")]
    return "".join(
        json.dumps({"id": f"{prefix}{i}", "sms": f"{texts[i % 3][0]} #{i}", "label": texts[i % 3][1]}) + "\n"
        for i in range(n)
    )


def make_task(root: Path, fields: str = '{"sms": r["sms"]}', wrong: str = "maybe", **templates: str) -> str:
    """A task folder outside the repository (tasks/ and prompts/ side by side) and its data."""
    (root / "extra" / "tasks").mkdir(parents=True, exist_ok=True)
    (root / "extra" / "tasks" / "spam.py").write_text(TASK.format(FIELDS=fields, WRONG=wrong))
    folder = root / "extra" / "prompts" / "spam"
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (templates or {"zero_shot": "Is this SMS spam or ham?\n{{ sms }}"}).items():
        (folder / f"{name}.j2").write_text(text)
    (root / "data" / "spam").mkdir(parents=True, exist_ok=True)
    (root / "data" / "spam" / "train.jsonl").write_text(_rows("tr", 30))
    (root / "data" / "spam" / "test.jsonl").write_text(_rows("te", 6))
    return str(root / "extra" / "tasks")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("HARNESS_TASKS_PATH", raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    registry.cache_clear()


@pytest.mark.parametrize(
    "command",
    [
        ["preview", "spam"],
        ["data-check", "spam"],
        ["check-task", "spam"],
        ["tasks"],
        ["compare", "spam", "--no-train", "--dry-run", "--search-trials", "0"],
    ],
)
def test_tasks_dir_works_after_the_subcommand(env, command, capsys, monkeypatch):
    folder = make_task(env)
    code, out, err = run_cli([*command, "--tasks-dir", folder], capsys, monkeypatch)
    assert code == 0, err
    assert "spam" in out


def test_unknown_task_says_how_to_add_one(env, capsys, monkeypatch):
    code, _, err = run_cli(["preview", "spam"], capsys, monkeypatch)
    assert code == 2
    assert "--tasks-dir" in err and "HARNESS_TASKS_PATH" in err and "new-task spam" in err


def test_check_task_fails_with_exit_1_when_a_wrong_answer_scores(env, capsys, monkeypatch):
    folder = make_task(env, wrong="spam")  # the fixture's test row *is* spam: this "wrong" answer is right
    code, out, err = run_cli(["check-task", "spam", "--tasks-dir", folder], capsys, monkeypatch)
    assert code == 1 and "FAILED" in out
    assert err.strip() == "failed: a wrong answer scores 0: the wrong answer 'spam' scores 1 on row f3"


def test_the_suites_task_checks_pick_up_a_task_from_tasks_dir(env):
    folder = make_task(env)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(Path(__file__).parent / "test_tasks.py"),
         "-k", "test_task_checks", "--tasks-dir=" + folder],
        capture_output=True, text=True, timeout=120, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    assert "7 passed" in done.stdout  # six built-in tasks and spam


def test_a_template_field_the_data_lacks_is_named_before_any_work(env, capsys, monkeypatch):
    # the plan's variants use zero_shot only; the other template is what the prompt search would try
    folder = make_task(env, zero_shot="{{ sms }}", wordy="Message: {{ message }}")
    code, _, err = run_cli(
        ["compare", "spam", "--tasks-dir", folder, "--no-train", "--variants", "zero_shot", "--dry-run"],
        capsys,
        monkeypatch,
    )
    assert code == 2
    assert "wordy.j2: 'message' is undefined" in err and "fields are choices, id, labels, sms" in err


def test_a_template_saved_in_another_encoding_is_named_before_any_work(env, capsys, monkeypatch):
    folder = make_task(env)
    (env / "extra" / "prompts" / "spam" / "zero_shot.j2").write_bytes(
        "Spam ou non ?\nR\u00e9ponse : {{ sms }}".encode("latin-1")
    )
    code, _, err = run_cli(["compare", "spam", "--tasks-dir", folder, "--no-train", "--dry-run"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "template spam/zero_shot.j2 is not UTF-8 text (byte 0xe9 at line 2, column 2); save it as UTF-8" in err


def test_a_templates_byte_order_mark_is_not_part_of_the_prompt(env):
    make_task(env)
    (env / "extra" / "prompts" / "spam" / "zero_shot.j2").write_bytes(b"\xef\xbb\xbfIs this SMS spam?\n{{ sms }}")
    registry.cache_clear()
    from harness.taskkit.registry import set_extra_dirs

    set_extra_dirs([str(env / "extra" / "tasks")])
    prompts._environment.cache_clear()
    turn = prompts.render_turn(get_task("spam"), "zero_shot", Sample(id="x", fields={"sms": "hi"}, target="ham"))
    assert turn.user == "Is this SMS spam?\nhi"  # no U+FEFF before it


def test_an_input_field_the_samples_lack_is_refused(env, capsys, monkeypatch):
    folder = make_task(env, fields='{"text": r["sms"]}')  # input_field says "sms"
    code, _, err = run_cli(["preview", "spam", "--tasks-dir", folder], capsys, monkeypatch)
    assert code == 2
    assert "input_field 'sms' is not a field of its samples (text)" in err


def _plan(task: str, variants: tuple[Variant, ...]) -> Plan:
    return Plan("p", (TaskPlan(task, variants, train_sizes=(64,), sweep={"trials": 2}, retention=("contract_nli",)),))


def test_pick_variants_by_plan_name_template_or_template_k():
    task = get_task("twitter_fin_sentiment")
    plan = pick_variants(_plan(task.name, default_variants(task)), ("constrained", "short", "few_shot_3"))
    picked = plan.tasks[0].variants
    assert [v.name for v in picked] == ["constrained", "short", "few_shot_3"]
    assert picked[0].constrained and picked[0].template == "zero_shot"
    assert picked[1] == Variant("short", "short")
    assert (picked[2].template, picked[2].shots, picked[2].selection) == ("few_shot", 3, "balanced")


@pytest.mark.parametrize("names", [("zero_shoot",), ("few_shot_x",), ("zero_shot", "zero_shot"), ()])
def test_pick_variants_refuses_what_it_cannot_name(names):
    from harness.core.errors import UserError

    task = get_task("twitter_fin_sentiment")
    with pytest.raises(UserError, match="--variants"):
        pick_variants(_plan(task.name, default_variants(task)), names)


def test_without_training_keeps_prompts_and_drops_every_adapter_cost():
    task = get_task("twitter_fin_sentiment")
    tp = without_training(_plan(task.name, default_variants(task))).tasks[0]
    assert (tp.train_sizes, tp.sweep, tp.retention) == ((), {}, ())
    assert tp.variants == default_variants(task)


def test_decoding_settings_come_from_variant_over_template_over_task(tmp_path):
    from dataclasses import replace

    task = replace(get_task("twitter_fin_sentiment"), prompts_dir=tmp_path)
    (tmp_path / "zero_shot.j2").write_text(
        '{% set stop = ["\\n\\n", "Tweet:"] %}{% set temperature = 0.7 %}{% set max_tokens = 5 %}\n  {{ text }}  \n'
    )
    (tmp_path / "plain.j2").write_text("{{ text }}")
    sample = Sample("x", {"text": "$ACME up"}, "Bullish")
    [templ] = build_requests(task, Variant("a", "zero_shot"), [sample], (), seed=3)
    assert (templ.decoding.stop, templ.decoding.temperature, templ.decoding.max_tokens) == (("\n\n", "Tweet:"), 0.7, 5)
    assert templ.decoding.seed == 3
    [plain] = build_requests(task, Variant("b", "plain"), [sample], ())
    assert (plain.decoding.stop, plain.decoding.temperature, plain.decoding.max_tokens) == ((), 0.0, task.max_tokens)
    over = Variant("c", "zero_shot", stop=(), temperature=0.0, max_tokens=9)
    [o] = build_requests(task, over, [sample], ())
    assert (o.decoding.stop, o.decoding.temperature, o.decoding.max_tokens) == ((), 0.0, 9)


def test_whitespace_is_stripped_by_default_and_kept_when_the_template_says_so(tmp_path):
    from dataclasses import replace

    task = replace(get_task("twitter_fin_sentiment"), prompts_dir=tmp_path)
    (tmp_path / "zero_shot.j2").write_text("Tweet: {{ text }}\n")
    (tmp_path / "plain.j2").write_text("Tweet: {{ text }}{% set strip = false %}\n")
    sample = Sample("x", {"text": "  $ACME up \n"}, "Bullish")
    assert prompts.render(task, "zero_shot", sample)[-1].content == "Tweet:   $ACME up"
    assert prompts.render(task, "plain", sample)[-1].content == "Tweet:   $ACME up \n"


def test_plan_variants_take_stop_and_temperature(tmp_path, fixture_data):
    from harness.experiment.plan import load_plan

    plan = tmp_path / "p.toml"
    plan.write_text(
        '[[task]]\nname = "twitter_fin_sentiment"\n'
        'variants = [{template = "zero_shot", stop = ["\\n"], temperature = 0.5, max_tokens = 4}]\n'
    )
    [v] = load_plan(plan).tasks[0].variants
    assert (v.stop, v.temperature, v.max_tokens) == (("\n",), 0.5, 4)


def test_prompt_only_run_from_the_command_line(env):
    """`compare --no-train --variants` end to end (fake backend, tiny model): only the named prompt
    variants are evaluated, nothing is trained, and the report says so."""
    folder = make_task(env, zero_shot="Spam or ham? {{ sms }}", plain="{{ sms }}")
    plan = env / "plan.toml"
    plan.write_text(
        f'name = "spam"\nmodel = "{make_model_dir(env / "tiny")}"\nval_limit = 3\n'
        '[[task]]\nname = "spam"\ntrain_sizes = [8]\n'
    )
    cmd = [sys.executable, "-c", "from harness.cli import main; main()", "compare", "--plan", str(plan),
           "--tasks-dir", folder, "--no-train", "--variants", "plain", "--backend", "fake", "--results", "runs"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=env)
    assert done.returncode == 0, done.stderr[-2000:]
    [run] = [p for p in (env / "runs").iterdir() if (p / "manifest.json").is_file()]
    variants = {json.loads(line)["variant"] for line in (run / "samples.jsonl").read_text().splitlines()}
    assert variants == {"plain"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["tasks"]["spam"]["adapters"] == {}
    assert not (env / "cache" / "adapters").exists()
    # the noise floor: the zero-shot arm again, every test item, in another order, never from the
    # ordinary cache (the test answers to the same prompts were cached just before it ran)
    first = [json.loads(x) for x in (run / "noise.jsonl").read_text().splitlines()]
    assert {r["variant"] for r in first} == {"noise:plain"} and not any(r["cached"] for r in first)
    assert (
        "Noise floor: plain re-run on 6 test items in another batch order gave the same answers: the flip rate is "
        "below 39.0% (95% Wilson bound)." in (run / "report.md").read_text()
    )
    # a second run: its answers come from the cache, and so does its noise floor, which this machine
    # computed in these very batches; the verdict says whose re-run it is
    again = subprocess.run([*cmd, "--run-id", "second"], capture_output=True, text=True, timeout=300, cwd=env)
    assert again.returncode == 0, again.stderr[-2000:]
    samples = [json.loads(x) for x in (env / "runs" / "second" / "samples.jsonl").read_text().splitlines()]
    noise = [json.loads(x) for x in (env / "runs" / "second" / "noise.jsonl").read_text().splitlines()]
    assert all(r["cached"] for r in samples) and all(r["cached"] for r in noise)
    assert sorted(r["item"] for r in noise) == sorted(r["item"] for r in samples)
    report = (env / "runs" / "second" / "report.md").read_text()
    assert (
        "Noise floor: plain re-run on 6 test items in another batch order (the re-run of an earlier run on this "
        "machine, same batches) gave the same answers: the flip rate is below 39.0% (95% Wilson bound)." in report
    )


def test_a_prompt_only_run_is_not_warned_about_training_lengths(fixture_data, tmp_path):
    from harness.experiment.checks import data_check

    model = make_model_dir(tmp_path / "tiny")
    trains = data_check(get_task("twitter_fin_sentiment"), model, {})
    prompts_only = data_check(get_task("twitter_fin_sentiment"), model, None)
    assert trains["token_lengths"] and not prompts_only["token_lengths"]
    assert not any("max_seq_len" in w for w in prompts_only["warnings"])
    assert prompts_only["label_counts"] == trains["label_counts"]  # the other checks still run


SWEEP_TWITTER_DIGEST = "cfaf069b"  # what the plan's digest was before variants could score labels


def test_the_default_plan_never_blocks_a_new_task_on_retention_data(tmp_path, monkeypatch):
    """A researcher's own HARNESS_DATA_DIR holds their task only: the default retention task
    (twitter_fin_sentiment) has no data there, so retention is skipped and said, not refused."""
    from harness.experiment.plan import default_plan
    from tests.fixtures import write_data_dir

    write_data_dir(tmp_path / "data", ["banking77"])
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    [tp] = default_plan(["banking77"]).tasks
    assert tp.retention == () and tp.retention_skipped == ("twitter_fin_sentiment",)
    write_data_dir(tmp_path / "data", ["twitter_fin_sentiment"])
    [tp] = default_plan(["banking77"]).tasks
    assert tp.retention == ("twitter_fin_sentiment",) and tp.retention_skipped == ()
    # a plan that skips nothing keeps the digest (a part of its run folder's name) it had before
    from harness.experiment.plan import load_plan

    assert load_plan(Path(__file__).parents[2] / "experiments" / "sweep_twitter.toml").digest() == SWEEP_TWITTER_DIGEST


def test_the_demo_tunes_both_sides_with_the_same_trial_budget():
    from harness.experiment.plan import load_plan

    plan = load_plan(Path(__file__).parents[2] / "experiments" / "demo.toml")
    for tp in plan.tasks:
        assert tp.sweep and tp.prompt_search, tp.name
        assert tp.sweep["trials"] == tp.prompt_search["trials"] == 2
    twitter = next(tp for tp in plan.tasks if tp.name == "twitter_fin_sentiment")
    assert {v.calibration for v in twitter.variants if v.scoring == "loglik"} == {"none", "contextual", "batch"}
