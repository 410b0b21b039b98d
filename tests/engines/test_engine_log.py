"""Engine output goes to the run's engine.log; the harness's own console keeps the terminal."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)


def test_engine_processes_native_writes_and_logging_reach_the_log_not_the_console(tmp_path):
    log = tmp_path / "run" / "engine.log"
    done = _run(f"""
        import logging, os, subprocess, sys
        from pathlib import Path
        from harness.engines import engine_log
        from harness.core.console import make_console
        console = make_console(stderr=True)
        with engine_log.logging_to(Path({str(log)!r})):
            with engine_log.captured():
                subprocess.run([sys.executable, "-c", "import sys; print('child out'); print('child err', file=sys.stderr)"])
                os.write(2, b"native write\\n")
                console.print("progress 3/10")
                print("print inside")
            logging.getLogger("vllm.engine").warning("WARNING from the engine logger")
            logging.getLogger("transformers.modeling").warning("a transformers warning")
            import warnings; warnings.warn("a python warning")
            import transformers
            print("bars", transformers.utils.logging.is_progress_bar_enabled())  # "Loading weights" tqdm
            console.print("verdict line")
        print("after the run")
        import os; print("env", os.environ.get("VLLM_LOGGING_CONFIG_PATH"))
        """)
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    for line in ("child out", "child err", "native write", "WARNING from the engine logger", "a transformers warning"):
        assert line in text, line
    assert "a python warning" in text
    shown = done.stdout + done.stderr
    for line in ("child out", "child err", "native write", "WARNING", "warning"):
        assert line not in shown, (line, shown)
    assert "progress 3/10" in done.stderr and "verdict line" in done.stderr
    assert "print inside" in done.stdout and "after the run" in done.stdout
    assert "env None" in done.stdout  # the run's logging config does not outlive the run
    assert "bars False" in done.stdout


def test_an_in_process_engines_own_python_writes_reach_the_log(tmp_path):
    """An engine in this process draws its weight-loading bar through sys.stderr itself."""
    log = tmp_path / "engine.log"
    done = _run(f"""
        import sys
        from pathlib import Path
        from harness.engines import engine_log
        with engine_log.logging_to(Path({str(log)!r})):
            with engine_log.captured(keep_console=False):
                print("Loading safetensors checkpoint shards: 100%", file=sys.stderr)
                print("engine stdout line")
            print("verdict line")
        """)
    assert done.returncode == 0, done.stderr
    assert "Loading safetensors" in log.read_text() and "engine stdout line" in log.read_text()
    assert "Loading" not in done.stderr and "engine stdout" not in done.stdout
    assert "verdict line" in done.stdout


def test_a_failing_engine_start_names_the_log(tmp_path):
    log = tmp_path / "engine.log"
    done = _run(f"""
        import os
        from pathlib import Path
        from harness.engines import engine_log
        with engine_log.logging_to(Path({str(log)!r})):
            with engine_log.captured():
                os.write(2, b"CUDA out of memory details\\n")
                raise RuntimeError("engine died")
        """)
    assert done.returncode == 1 and "engine died" in done.stderr
    assert f"the engine's own output is in {log}" in done.stderr
    assert "out of memory details" in log.read_text() and "out of memory" not in done.stderr


def test_without_a_run_log_nothing_is_redirected(capfd):
    from harness.engines import engine_log

    assert engine_log.current() is None
    with engine_log.captured():
        print("still here")
    assert "still here" in capfd.readouterr().out


def test_a_run_without_engine_output_leaves_no_log_and_no_logging_config(tmp_path, monkeypatch):
    import logging
    import os

    from harness.engines import engine_log

    monkeypatch.delenv("VLLM_LOGGING_CONFIG_PATH", raising=False)
    monkeypatch.delenv("VLLM_CONFIGURE_LOGGING", raising=False)
    quiet, talking = tmp_path / "quiet" / "engine.log", tmp_path / "talking" / "engine.log"
    with engine_log.logging_to(quiet):
        config = quiet.with_name(f".engine.log.{os.getpid()}.logging.json")
        assert config.is_file()  # engines started inside the run read it
    assert not quiet.exists() and not config.exists() and "VLLM_LOGGING_CONFIG_PATH" not in os.environ
    with engine_log.logging_to(talking):
        logging.getLogger("vllm.engine").warning("a line from the engine")
    assert "a line from the engine" in talking.read_text()
    assert list(talking.parent.iterdir()) == [talking]
