"""The one table of option rules: every numeric option of every command has a range, every
command checks by it, and the rules themselves (ends, non-finite values, output folders)."""

from __future__ import annotations

import inspect
import math
import socket
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness.cli import authoring, experiments, root  # noqa: F401 (root registers and guards every command)
from harness.cli import common as cli
from harness.cli.option_rules import check_output_folder, check_value, flags_of
from harness.core.errors import UserError
from harness.core.options import RANGES, Range


def commands():
    return [info for group in (cli.app, cli.models_app) for info in group.registered_commands]


def path_parameters(callback: Callable[..., Any]) -> list[str]:
    """The command's parameters that take a path (optional ones and lists of paths included)."""
    names = []
    for name, hint in typing.get_type_hints(inspect.unwrap(callback)).items():
        kinds = {hint, *typing.get_args(hint)}
        if Path in kinds | {a for k in kinds for a in typing.get_args(k)}:
            names.append(name)
    return names


def numeric_parameters(callback: Callable[..., Any]) -> dict[str, Any]:
    """The command's int and float parameters (optional ones included) with their defaults."""
    signature = inspect.signature(inspect.unwrap(callback))
    numeric = {}
    for name, hint in typing.get_type_hints(inspect.unwrap(callback)).items():
        kinds = set(typing.get_args(hint)) - {type(None)} if typing.get_args(hint) else {hint}
        if kinds & {int, float} and name in signature.parameters:
            numeric[name] = signature.parameters[name].default
    return numeric


def test_every_numeric_option_of_every_command_has_a_range_its_default_meets():
    seen = 0
    for info in commands():
        assert getattr(info.callback, "__guarded__", False), f"{info.callback} is not checked by harness.core.options"
        for name, default in numeric_parameters(info.callback).items():
            seen += 1
            assert name in RANGES, f"{info.callback.__name__}: numeric option {name!r} has no range in harness.core.options"
            if isinstance(default, int | float):
                assert RANGES[name].holds(default), f"{name}'s default {default} is outside its own range"
    assert seen >= 30  # the walk found the options (a walk that finds none would pass anything)


def test_every_path_option_is_checked_somewhere_named():
    from harness.core.options import CHECKED_BY_COMMAND, INPUT_FILES, OUTPUT_FOLDERS

    seen = [(info.callback.__name__, name) for info in commands() for name in path_parameters(info.callback)]
    assert len(seen) >= 15
    for command, name in seen:
        assert name in OUTPUT_FOLDERS + INPUT_FILES + CHECKED_BY_COMMAND, f"{command}: path option {name!r} unchecked"


def test_an_input_file_must_exist_even_where_it_would_not_be_read(tmp_path):
    with pytest.raises(UserError, match=r"^--wheel file not found: .*nope\.whl$"):
        check_value("wheel", "--wheel", tmp_path / "nope.whl")
    with pytest.raises(UserError, match=r"is not a file$"):
        check_value("plan", "--plan", tmp_path)
    (tmp_path / "p.toml").write_text("")
    check_value("plan", "--plan", tmp_path / "p.toml")


def test_numeric_parameters_sees_optional_and_annotated_numbers_only():
    def command(a: int, b: float | None = None, c: bool = False, d: str = "x", e: list[int] | None = None) -> None: ...

    assert numeric_parameters(command) == {"a": inspect.Parameter.empty, "b": None}


@pytest.mark.parametrize(
    "rule, inside, outside, words",
    [
        (Range(1), [1, 10**9], [0, -1], "positive"),
        (Range(0), [0, 0.5], [-1e-9], "0 or more"),
        (Range(0, lo_open=True), [1e-12, 3.0], [0, -2], "positive"),
        (Range(0, 1, lo_open=True, hi_open=True), [0.5], [0, 1, 1.5], "between 0 and 1"),
        (Range(1, 65535), [1, 65535], [0, 65536], "from 1 to 65535"),
        (Range(0, 100, lo_open=True), [100, 0.1], [0, 100.5], "above 0 and at most 100"),
    ],
)
def test_range_ends_and_wording(rule, inside, outside, words):
    assert all(rule.holds(v) for v in inside)
    assert not any(rule.holds(v) for v in outside)
    assert not rule.holds(math.nan) and not rule.holds(math.inf) and not rule.holds(-math.inf)
    assert rule.describe() == words


def test_values_are_named_by_the_flag_the_user_typed():
    flags = flags_of(experiments.check_adapter)
    assert flags["n"] == "-n" and flags["task"] == "--task"
    assert flags_of(authoring.new_task)["out_dir"] == "--out" and flags_of(authoring.new_task)["input_field"] == "--input"
    with pytest.raises(UserError, match=r"^-n must be positive, got 0$"):
        check_value("n", "-n", 0)
    with pytest.raises(UserError, match=r"^--lr must be a finite number, got inf$"):
        check_value("lr", "--lr", math.inf)
    with pytest.raises(UserError, match=r"^--seed must be from 0 to 4294967295, got 4294967296$"):
        check_value("seed", "--seed", 2**32)
    check_value("limit", "--limit", None)  # not given: nothing to check
    check_value("debug", "--debug", True)  # a flag is no number, whatever bool is to Python


def test_output_folder_checked_without_creating_anything(tmp_path):
    target = tmp_path / "a" / "b" / "c"
    check_output_folder(target, "--out")
    assert list(tmp_path.iterdir()) == []  # the probe file is gone and no folder was made
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="is a file, not a folder"):
        check_output_folder(tmp_path / "f" / "sub", "--out")
    with pytest.raises(UserError, match=r"--results /proc/x/y is not writable: no file can be made in /proc"):
        check_output_folder(Path("/proc/x/y"), "--results")


def test_serve_refuses_an_address_it_cannot_listen_on_before_starting():
    from harness.engines.backends.serve import check_address

    with pytest.raises(UserError, match="is not an address of this machine"):
        check_address("999.1.1.1", 8999)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(UserError, match=f"cannot listen on 127.0.0.1:{port}"):
            check_address("127.0.0.1", port)
    check_address("127.0.0.1", port)  # free again


def test_openai_url_may_end_in_v1_as_openai_clients_write_it():
    from harness.engines.backends.openai import base_url

    for url in ("http://h:8000", "http://h:8000/", "http://h:8000/v1", "http://h:8000/v1/"):
        assert base_url(url) == "http://h:8000"
    assert base_url("http://h:8000/proxy/v1x") == "http://h:8000/proxy/v1x"


def test_cache_folder_that_is_a_file_is_refused(tmp_path, monkeypatch):
    from harness.core.files import cache_root

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "file"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match=r"HARNESS_CACHE=.*file is a file"):
        cache_root()
    monkeypatch.setenv("HARNESS_CACHE", "")  # set but empty: the default, never the current folder
    assert cache_root() == Path.home() / ".cache" / "harness"


def test_a_yes_no_variable_reads_no_as_no_and_refuses_anything_else(monkeypatch):
    from harness.core.options import env_flag
    from harness.engines.backends.serve import running

    for value, flag in (("", False), ("0", False), ("false", False), ("No", False), ("1", True), ("yes", True)):
        monkeypatch.setenv("HARNESS_NO_SERVE", value)
        assert env_flag("HARNESS_NO_SERVE") is flag, value
    monkeypatch.setenv("HARNESS_NO_SERVE", "maybe")
    with pytest.raises(UserError, match="HARNESS_NO_SERVE=maybe is not a yes/no value"):
        running(Path("m"), "float32", 4096, 0)


def test_every_ranged_option_says_its_range_in_help():
    """The range a value is checked against is the one `--help` states, for every command: read
    from the commands typer builds, as `harness CMD --help` prints them."""
    import typer.main

    said = 0
    for group in (cli.app, cli.models_app):
        built = typer.main.get_command(group).commands  # type: ignore[attr-defined]
        for info in group.registered_commands:
            name = info.name or info.callback.__name__.replace("_", "-")
            helps = {p.name: p.help or "" for p in built[name].params}
            for option in numeric_parameters(info.callback):
                said += 1
                words = f"Must be {RANGES[option].describe()}."
                assert helps[option].endswith(words) and helps[option].count("Must be") == 1, (name, option)
    assert said >= 30
