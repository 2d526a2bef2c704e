"""``mallapp clv fit`` in a subprocess, as an analyst runs it: one JSON object, or one line of error."""

from __future__ import annotations

import json
import random
import subprocess
from datetime import date, timedelta

import pytest
from factories import MALLAPP, cli_env

from beacons.datasets import shared_data_dir


def _fit(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([MALLAPP, "clv", "fit", *args], env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=120)


def test_clv_fit_reproduces_the_published_cdnow_estimates(tmp_path):
    sample = shared_data_dir() / "cdnow" / "CDNOW_sample.txt"
    if not sample.exists():
        pytest.skip(f"the CDNOW data set is not at {sample.parent}: put ../shared/data beside the project")
    done = _fit(tmp_path, "--transactions", str(sample), "--calibration-end", "1997-09-30", "--unit", "weeks")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {"bgnbd", "gamma_gamma", "customers", "repeat_customers", "fit_seconds"}
    bg, gg = out["bgnbd"], out["gamma_gamma"]
    assert [round(bg[k], 3) for k in ("r", "alpha", "a", "b")] == [0.243, 4.414, 0.793, 2.426]
    assert round(bg["log_likelihood"], 1) == -9582.4
    assert [round(gg["p"], 2), round(gg["q"], 2), round(gg["gamma"], 2)] == [6.25, 3.74, 15.44]
    assert (out["customers"], out["repeat_customers"]) == (2357, 946)
    assert out["fit_seconds"] >= 0


def test_clv_fit_reads_a_csv_with_a_header_and_warns_about_zero_amounts(tmp_path):
    rng = random.Random(14)
    lines = ["member_id;purchased_at;amount_fen"]
    end = date(2024, 4, 30)
    for member in range(400):  # BG/NBD: a rate per day and a chance to drop out after each repeat purchase
        rate, drop = rng.gammavariate(0.8, 1 / 30), rng.betavariate(1.0, 3.0)
        nu = rng.gammavariate(4.0, 1 / 5000)  # Gamma-Gamma: the member's own scale of spending
        day = date(2024, 1, 1) + timedelta(days=rng.randrange(100))
        elapsed, i = 0.0, 0
        while day + timedelta(days=int(elapsed)) <= end:
            amount = round(rng.gammavariate(6.0, 1 / nu))
            lines.append(f"m{member};{(day + timedelta(days=int(elapsed))).isoformat()}T12:00:00+08:00;{amount}")
            if i and rng.random() < drop:
                break
            elapsed += rng.expovariate(rate)
            i += 1
    # A member whose repeat purchases were free (a gift): a purchase, but no spend to learn from.
    lines += ["gift;2024-02-01;5000", "gift;2024-02-09;0", "gift;2024-03-01T09:30;0"]
    path = tmp_path / "purchases.csv"
    path.write_text("\n".join(lines) + "\n")
    done = _fit(tmp_path, "--transactions", str(path), "--unit", "days", "--calibration-end", "2024-04-30")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["customers"] == 401 and 0 < out["repeat_customers"] < 401
    assert out["bgnbd"]["r"] > 0 and out["gamma_gamma"]["q"] > 1
    assert "1 repeat buyer(s) with a mean repeat amount of 0" in done.stderr


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("who,when,how much\n1,2024-01-01,3\n", "no id column"),
    ("customer_id,date,amount\n1,yesterday,3\n", ":2: not a date"),
    ("customer_id,date,amount\n1,2024-01-01,-3\n", "amounts must be finite and >= 0"),
    ("customer_id,date,amount\n1,2024-01-01,nan\n", "amounts must be finite and >= 0"),
    ("customer_id,date,amount\n1,2024-01-01\n", ":2: 2 fields, the header has 3"),
    ("customer_id,date,amount\n1,2024-01-01,3\n2,2024-01-05,4\n", "no member bought more than once"),
])
def test_clv_fit_refuses_bad_files_in_one_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    done = _fit(tmp_path, "--transactions", str(path))
    assert done.returncode != 0
    assert message in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_clv_fit_refuses_a_missing_or_binary_file_in_one_line(tmp_path):
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 4)
    for path in (tmp_path / "missing.csv", binary):
        done = _fit(tmp_path, "--transactions", str(path))
        assert done.returncode != 0 and "Traceback" not in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


@pytest.mark.parametrize("end, message", [("1997-13-40", "not a date"),
                                          ("1990-01-01", "no purchases on or before the end of calibration")])
def test_clv_fit_refuses_a_bad_calibration_end_in_one_line(tmp_path, end, message):
    path = tmp_path / "purchases.csv"
    path.write_text("customer_id,date,amount\n1,1997-01-01,3\n1,1997-02-01,4\n")
    done = _fit(tmp_path, "--transactions", str(path), "--calibration-end", end)
    assert done.returncode != 0 and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
