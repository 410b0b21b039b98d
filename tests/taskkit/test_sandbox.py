"""Templates are untrusted: they render in the sandbox (no code, no files outside their folder),
and a render is bounded in time and size. Each case here ran code, read a file or hung before."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jinja2
import pytest

from harness.taskkit import sandbox
from tests.helpers import run_cli, task_dir

CANARY = "canary-7f3a9c-never-in-output"


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text(CANARY)
    return path


@pytest.fixture
def fast_limit(monkeypatch):
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.5)


def _env() -> sandbox.SafeEnvironment:
    return sandbox.SafeEnvironment(undefined=jinja2.StrictUndefined)


def _render(source: str, **variables) -> str:
    return sandbox.render(sandbox.compile_string(_env(), source, "t"), variables, "t")


def _toy(tmp_path: Path, template: str, monkeypatch) -> list[str]:
    (tmp_path / "data").mkdir(exist_ok=True)
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "data"))
    return ["--tasks-dir", task_dir(tmp_path, template), "preview", "toy"]


def _one_line_refusal(code: int, out: str, err: str) -> str:
    assert code == 2, (code, out, err)
    assert "Traceback" not in out + err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def test_a_template_that_reads_a_file_is_refused_and_shows_nothing_of_it(tmp_path, secret, capsys, monkeypatch):
    template = f"{{{{ cycler.__init__.__globals__.__builtins__.open('{secret}').read() }}}}"
    code, out, err = run_cli(_toy(tmp_path, template, monkeypatch), capsys, monkeypatch)
    line = _one_line_refusal(code, out, err)
    assert "toy/zero_shot.j2" in line and "refused by the sandbox" in line and "'__init__'" in line
    assert CANARY not in out + err


def test_a_template_that_runs_a_command_is_refused_and_runs_nothing(tmp_path, capsys, monkeypatch):
    marker = tmp_path / "ran"
    template = f"{{{{ self.__init__.__globals__['__builtins__']['__import__']('os').system('touch {marker}') }}}}"
    code, out, err = run_cli(_toy(tmp_path, template, monkeypatch), capsys, monkeypatch)
    line = _one_line_refusal(code, out, err)
    assert "refused by the sandbox" in line and "'__init__'" in line
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload",
    [
        "{{ lipsum.__globals__['os'].popen('id').read() }}",  # lipsum is gone: nothing to reach through
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__ }}",
        "{{ (1).__class__ }}",
        "{{ labels.append('x') }}",  # the immutable sandbox: no list or dict changes
        "{{ ''|attr('__class__') }}",
        "{{ '{0.__class__}'.format('') }}",
    ],
)
def test_escape_attempts_are_refused(payload):
    with pytest.raises(jinja2.TemplateError):
        _render(payload, labels=["a"])


def test_a_runaway_loop_is_stopped_within_the_limit(tmp_path, capsys, monkeypatch, fast_limit):
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{{ text }}"
    t0 = time.perf_counter()
    code, out, err = run_cli(_toy(tmp_path, template, monkeypatch), capsys, monkeypatch)
    assert time.perf_counter() - t0 < 5
    assert "ran for over 0.5 s and was stopped" in _one_line_refusal(code, out, err)


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("{% for i in range(10**10) %}x{% endfor %}", "range of 10,000,000,000 numbers"),
        ("{{ 'a' * 10**10 }}", "'*' would make a value"),
        ("{{ 2 ** (10**10) }}", "'**' would make a number"),
        ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "'~'"),
        ("{% set ns = namespace(s='ab') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "'+'"),
        ("{% set ns = namespace(l=[1]) %}{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}", "literal"),
        ("{% set s = 'ab' * 1000 %}{{ s|replace('', s)|replace('', s) }}", "filter 'replace'"),
        ("{{ 'x'|center(10**10) }}", "filter 'center'"),
        ("{{ 'x'.ljust(10**10) }}", "str.ljust"),
        ("{{ '%0999999999d'|format(1) }}", "%-format"),
        ("{{ '%*d' % (10**9, 1) }}", "%-format"),
        ("{{ '{:>999999999}'.format(1) }}", "format field"),
        ("{{ [1]|batch(10**9, 'x')|list }}", "filter 'batch'"),
        ("{{ [[1]] * 1000 | sum(start=[]) }}", "adds numbers only"),
        ("{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}", "renders over 1,000,000 characters"),
        ("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", "recurses too deeply"),
        ("{{ 'abc'.translate({97: 'x' * 1000}) }}", "str.translate"),
    ],
)
def test_what_would_exhaust_memory_or_time_is_sized_before_it_runs(source, said):
    t0 = time.perf_counter()
    with pytest.raises(sandbox.TemplateRefused, match=re.escape(said)):
        _render(source)
    assert time.perf_counter() - t0 < 2


def test_ordinary_templates_render_as_plain_jinja_does():
    source = (
        "{% set ns = namespace(n=0) %}{% for l in labels %}{% set ns.n = ns.n + 1 %}{{ loop.index }}.{{ l|upper }} "
        "{% endfor %}{{ ns.n }} {{ '%s=%03d' % ('k', 7) }} {{ '{}-{}'.format(1, 2) }} {{ (labels * 2)|join(',') }} "
        "{% for a, b in [(1, 2)] %}{{ a ~ b }}{% endfor %} {{ {'x': 1}|dictsort }} {{ 2 ** 10 }} {{ text[:3] }}"
    )
    variables = {"labels": ["a", "b"], "text": "hello"}
    plain = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(source).render(**variables)
    assert _render(source, **variables) == plain == "1.A 2.B 2 k=007 1-2 a,b,a,b 12 [('x', 1)] 1024 hel"


def test_a_value_shared_many_times_is_weighed_as_printed():
    inner = ["x" * 10]
    nested = [inner] * 3
    assert sandbox.weight(nested) == 1 + 3 * (1 + 10)
    bomb: list = [1]
    for _ in range(60):
        bomb = [bomb, bomb]
    t0 = time.perf_counter()
    assert sandbox.weight(bomb) > sandbox.MAX_VALUE
    assert time.perf_counter() - t0 < 0.1  # each shared list is weighed once


def test_a_stopped_render_leaves_the_thread_clean(fast_limit):
    with pytest.raises(sandbox.TemplateRefused):
        _render("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    compiled = sandbox.compile_string(_env(), "{{ x }}", "t")
    for i in range(2000):
        assert sandbox.render(compiled, {"x": i}, "t") == str(i)
    time.sleep(3 * sandbox._POLL_S)  # no exception may arrive late, outside a render
    assert _render("{{ 1 + 1 }}") == "2"


# ---------------------------------------------------------------- files


def test_include_outside_the_folder_is_refused_by_name(tmp_path, secret, capsys, monkeypatch):
    code, out, err = run_cli(_toy(tmp_path, "{% include '../../secret.txt' %}", monkeypatch), capsys, monkeypatch)
    line = _one_line_refusal(code, out, err)
    assert "'../../secret.txt' is outside the template's folder" in line and CANARY not in out + err


def test_a_link_that_leads_outside_the_folder_is_refused(tmp_path, secret, capsys, monkeypatch):
    args = _toy(tmp_path, "{% include 'part.j2' %}", monkeypatch)
    (tmp_path / "extra" / "prompts" / "toy" / "part.j2").symlink_to(secret)
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert "'part.j2' is outside the template's folder" in _one_line_refusal(code, out, err)
    assert CANARY not in out + err


def test_include_inside_the_folder_and_the_shared_macros_still_work(tmp_path, capsys, monkeypatch):
    template = "{% import '_macros.j2' as m %}{% include 'parts/head.j2' %} {{ text }}"
    args = _toy(tmp_path, template, monkeypatch)
    (tmp_path / "extra" / "prompts" / "toy" / "parts").mkdir()
    (tmp_path / "extra" / "prompts" / "toy" / "parts" / "head.j2").write_text("Header.")
    code, out, err = run_cli(args, capsys, monkeypatch)
    assert code == 0, err
    assert "Header. hello" in out


def test_a_missing_include_names_the_folder(tmp_path, capsys, monkeypatch):
    code, out, err = run_cli(_toy(tmp_path, "{% include 'nope.j2' %}", monkeypatch), capsys, monkeypatch)
    line = _one_line_refusal(code, out, err)
    assert "includes or imports 'nope.j2', which is not in" in line


# ---------------------------------------------------------------- other untrusted Jinja


def test_lm_eval_templates_render_in_the_sandbox():
    from harness.core.errors import UserError
    from harness.taskkit.lmeval_docs import apply_template

    assert apply_template("{{ question|regex_replace(' +', ' ') }}?", {"question": "a  b"}) == "a b?"
    with pytest.raises(UserError, match="refused by the sandbox"):
        apply_template("{{ question.__class__ }}", {"question": "x"})


def test_import_lm_eval_refuses_a_payload_in_doc_to_text(tmp_path, capsys, monkeypatch):
    yaml_file = tmp_path / "evil.yaml"
    yaml_file.write_text(
        "task: evil\ndataset_path: x\ntest_split: test\ntraining_split: train\n"
        "doc_to_text: \"{{ cycler.__init__.__globals__.os.popen('id').read() }}\"\ndoc_to_target: answer\n"
    )
    code, out, err = run_cli(["import-lm-eval", str(yaml_file), "--out", str(tmp_path / "out")], capsys, monkeypatch)
    line = _one_line_refusal(code, out, err)
    assert "doc_to_text reads the attribute '__globals__'" in line and "never run here" in line
    assert not (tmp_path / "out").exists()


def test_a_chat_template_that_runs_away_is_stopped(fast_limit):
    from harness.core.errors import UserError
    from harness.engines.tokenizer import _render

    runaway = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    with pytest.raises(UserError, match=r"chat template is refused by the sandbox: .* ran for over"):
        _render(runaway, [{"role": "user", "content": "hi"}], True, {})
