"""The wait estimator's pure rules, and the evaluation that scores it against the naive estimate."""

from __future__ import annotations

from mallapp.domain.queueing import evaluate
from mallapp.domain.queueing.estimator import Observation, Params, aggregate, fit, naive

P = Params(naive_seconds_per_party=600, half_life_days=7, slot_minutes=60, shrinkage=8)


def _line_waits(band: str, per_party: int, first: int, n: int = 200, age: int = 1, minute: int = 720):
    return [Observation(band, age, minute, k % 9 + 1, first + (k % 9 + 1) * per_party) for k in range(n)]


def test_with_no_history_the_estimate_is_the_naive_one():
    model = fit([], P)
    assert [model.estimate("A", 720, k) for k in range(4)] == [naive(k, 600) for k in range(4)] == [0, 600, 1200, 1800]


def test_each_band_learns_its_own_pace_per_party_ahead():
    model = fit(aggregate(_line_waits("A", 150, 120) + _line_waits("C", 900, 600), 60), P)
    assert abs(model.estimate("A", 720, 4) - (120 + 4 * 150)) < 30
    assert abs(model.estimate("C", 720, 4) - (600 + 4 * 900)) < 120


def test_a_slot_without_history_uses_its_bands_all_day_line():
    model = fit(aggregate(_line_waits("A", 150, 120, minute=720), 60), P)
    assert (18 * 60 // 60) not in {slot for _, slot in model.cells}
    assert abs(model.estimate("A", 18 * 60, 3) - (120 + 3 * 150)) < 60


def test_time_of_day_slots_learn_their_own_waits():
    lunch = _line_waits("A", 300, 300, minute=12 * 60)
    afternoon = _line_waits("A", 100, 0, minute=15 * 60)
    model = fit(aggregate(lunch + afternoon, 60), P)
    assert model.estimate("A", 12 * 60 + 10, 3) > 2 * model.estimate("A", 15 * 60 + 10, 3)


def test_the_first_in_line_waits_nothing_where_most_were_called_at_once_and_else_the_usual_wait():
    quiet = [Observation("A", 1, 15 * 60, 0, 0)] * 40 + [Observation("A", 1, 15 * 60, 0, 900)] * 5
    busy = [Observation("A", 1, 12 * 60, 0, 420)] * 40
    model = fit(aggregate(quiet + busy, 60), P)
    assert model.estimate("A", 15 * 60, 0) == 0
    assert abs(model.estimate("A", 12 * 60, 0) - 420) < 60


def test_recent_days_weigh_more_than_old_ones():
    old, recent = _line_waits("A", 600, 0, age=28), _line_waits("A", 200, 0, age=1)
    model = fit(aggregate(old + recent, 60), P)
    assert abs(model.estimate("A", 720, 5) - 5 * 200) < abs(model.estimate("A", 720, 5) - 5 * 600)


def test_a_few_waits_move_the_estimate_only_part_of_the_way_from_the_naive_one():
    model = fit(aggregate(_line_waits("A", 100, 0, n=4), 60), P)
    assert 4 * 100 < model.estimate("A", 720, 4) < 4 * 600


def test_the_evaluation_run_small_improves_on_the_naive_estimate():
    result = evaluate.run(days=10, eval_days=3, seed=3)
    assert result.called > 100
    assert result.mae_learned_s < result.mae_naive_s
    assert result.mae_learned_s < result.mae_history_naive_s


def test_the_evaluation_command_prints_both_errors_and_the_goal(capsys):
    assert evaluate.main(["--days", "8", "--eval-days", "2", "--seed", "5"]) == 0
    out = capsys.readouterr().out
    assert "naive: ahead x 600 s" in out and "learned" in out and "GOAL" in out
