"""The "processes" executor from any kind of script (bayescale.executors).

Spawned workers would normally run the caller's main module again: an unguarded
script then starts its pool again in every worker (BrokenProcessPool rows and worker
tracebacks), and code piped into ``python -`` has no file to run. These tests run
small scripts in a fresh interpreter, as a file, on stdin and with ``-c``.
"""

from __future__ import annotations

import json
import operator
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import bayescale as bs
from bayescale.executors import ExecutorError, run_tasks

REPO = Path(__file__).resolve().parents[1]

# no `if __name__ == "__main__":` guard; the first line shows how often the script ran
UNGUARDED = """
import json, operator
from bayescale.executors import run_tasks
print("script ran", flush=True)
rows = sorted(run_tasks(operator.truediv, [4.0, 0.0, 2.0], shared=1.0, executor="processes", workers=2))
print(json.dumps({"rows": rows, "file": globals().get("__file__")}))
"""

MAIN_FUNCTION_GUARDED = """
import json
from bayescale.executors import run_tasks

def scale(shared, task):
    return shared * task.value

class Box:
    def __init__(self, value):
        self.value = value

if __name__ == "__main__":
    rows = sorted(run_tasks(scale, [Box(2), Box(3)], shared=10, executor="processes", workers=2))
    print(json.dumps({"rows": rows}))
"""

MAIN_FUNCTION_UNGUARDED = """
import multiprocessing
from bayescale.executors import ExecutorError, run_tasks

def scale(shared, task):
    return shared * task

try:
    run_tasks(scale, [2, 3], shared=10, executor="processes", workers=2)
except ExecutorError as exc:
    print(f"refused: {exc}")
print(f"children: {len(multiprocessing.active_children())}")
"""

MAIN_CLASS_IN_TASK = """
import multiprocessing, operator
from bayescale.executors import ExecutorError, run_tasks

class Number(float):
    pass

try:
    run_tasks(operator.mul, [Number(2)], shared=10, executor="processes", workers=2)
except ExecutorError as exc:
    print(f"refused: {exc}")
print(f"children: {len(multiprocessing.active_children())}")
"""

SWEEP = """
import json
import bayescale as bs
df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4].reset_index(drop=True)
res = bs.sweep(df, laws="chinchilla", splits=0.2, draws=50, warmup=50, chains=1, executor="processes", workers=1,
               progress=False)
print(json.dumps(res.table[["status", "error", "worker", "n_test"]].to_dict("records")))
"""


def _python(code: str, how: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter: as a script file, piped on stdin, or with ``-c``."""
    code = textwrap.dedent(code)
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    kwargs = {"cwd": tmp_path, "capture_output": True, "text": True, "timeout": 300,
              "env": {**os.environ, "PYTHONPATH": path, **env}}
    if how == "file":
        script = tmp_path / "script.py"
        script.write_text(code)
        return subprocess.run([sys.executable, str(script)], **kwargs)
    if how == "stdin":
        return subprocess.run([sys.executable, "-"], input=code, **kwargs)
    return subprocess.run([sys.executable, "-c", code], **kwargs)


def _clean(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenProcessPool" not in proc.stderr, proc.stderr
    assert "BrokenProcessPool" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("how", ["file", "stdin", "-c"])
def test_unguarded_script_runs_its_tasks_in_workers(tmp_path, how):
    proc = _python(UNGUARDED, how, tmp_path)
    _clean(proc)
    lines = proc.stdout.splitlines()
    assert lines.count("script ran") == 1  # the workers did not run the script again
    rows = json.loads(lines[-1])["rows"]
    assert [r[:2] for r in rows] == [[0, 0.25], [1, None], [2, 0.5]]
    assert rows[0][2] is None and rows[2][2] is None and rows[1][2].startswith("ZeroDivisionError")
    # __main__ was hidden only while the workers started
    assert json.loads(lines[-1])["file"] == {"file": str(tmp_path / "script.py"), "stdin": "<stdin>", "-c": None}[how]


def test_guarded_script_may_send_its_own_functions_and_classes(tmp_path):
    proc = _python(MAIN_FUNCTION_GUARDED, "file", tmp_path)
    _clean(proc)
    assert json.loads(proc.stdout.splitlines()[-1])["rows"] == [[0, 20, None], [1, 30, None]]


@pytest.mark.parametrize(("code", "how", "match"), [
    (MAIN_FUNCTION_UNGUARDED, "file", 'runs script.py again, and with it this call; put the script\'s top-level '
                                      'code under if __name__ == "__main__":'),
    (MAIN_FUNCTION_UNGUARDED, "stdin", "cannot import (code from stdin, -c or a notebook)"),
    (MAIN_FUNCTION_UNGUARDED, "-c", "cannot import (code from stdin, -c or a notebook)"),
    (MAIN_CLASS_IN_TASK, "stdin", "Number is defined in __main__"),
])
def test_what_workers_cannot_import_is_refused_before_any_worker_starts(tmp_path, code, how, match):
    proc = _python(code, how, tmp_path)
    _clean(proc)
    refused, children = proc.stdout.splitlines()
    assert refused.startswith('refused: executor="processes": ') and match in refused
    assert children == "children: 0"


@pytest.mark.parametrize(("fn", "shared", "match"), [
    (lambda shared, task: task, None, "cannot send fn "),
    (operator.truediv, threading.Lock(), "cannot send the shared data"),
])
def test_unpicklable_function_or_shared_data_is_refused_at_the_call(fn, shared, match):
    with pytest.raises(ExecutorError, match=match) as info:
        run_tasks(fn, [1.0], shared=shared, executor="processes", workers=1)
    assert "\n" not in str(info.value)


def test_an_unpicklable_task_fails_alone():
    got = {i: (v, e) for i, v, e in run_tasks(operator.truediv, [4.0, threading.Lock()], shared=1.0,
                                               executor="processes", workers=1)}
    assert got[0] == (0.25, None)
    assert got[1][0] is None and "pickle" in got[1][1]


def test_sweep_refuses_before_writing_its_file(tmp_path):
    out = tmp_path / "never.jsonl"
    df = bs.datasets.load("chinchilla", epoch_subset=True).iloc[::4]
    with pytest.raises(ExecutorError, match="cannot send the shared data"):
        bs.sweep(df, splits=0.2, executor="processes", fit_kwargs={"likelihood": lambda: None}, out=out)
    assert not out.exists()


def test_unguarded_sweep_piped_on_stdin(tmp_path):
    proc = _python(SWEEP, "stdin", tmp_path, BAYESCALE_CACHE_DIR=str(tmp_path / "jax_cache"))
    _clean(proc)
    (row,) = json.loads(proc.stdout.splitlines()[-1])
    assert row["status"] == "ok" and row["error"] == "" and row["n_test"] == 12
