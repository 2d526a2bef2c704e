"""The command the mall runs by name, ``python -m mallapp.proximity.evaluate``, reaches both evaluations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from mallapp.domain.proximity import entrance_evaluate

PROJECT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", "mallapp.proximity.evaluate", *args], capture_output=True,
                          text=True, env=env, cwd=PROJECT, timeout=300)


def test_labelled_recording_goes_to_the_entrance_evaluation_and_prints_one_json_object(tmp_path):
    recording = tmp_path / "building.csv"
    assert entrance_evaluate.main(["--simulate", str(recording), "--seed", "5", "--tags", "8,3,9"]) == 0
    done = run("--labelled", str(recording), "--json")
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert 0.0 <= figures["inside_accuracy"] <= 1.0
    assert 0.0 <= figures["outside_checked_in_share"] <= 1.0


def test_a_malformed_labelled_recording_is_refused_not_a_traceback(tmp_path):
    recording = tmp_path / "bad.csv"
    recording.write_text("tag,label,timestamp_ms,rssi_a\nt1,upstairs,1,-60\n", encoding="utf-8")
    done = run("--labelled", str(recording))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr


def test_anything_else_goes_to_the_position_evaluation():
    done = run("--help")
    assert done.returncode == 0
    assert "--zone" in done.stdout
