"""Floors ops define: names and outline through PUT /api/v1/ops/floors/<number>, read back in the floor list,
validated, admins only; the engine's floor plans and the demo's seeding from them."""

from __future__ import annotations

import pytest

from mallapp.devtools import demo
from mallapp.domain import floors, venue
from mallapp.domain.proximity.floorplan import Geometry
from mallapp.processes.worker import Worker

pytestmark = pytest.mark.usefixtures("cheap_password_hashing")

API = "/api/v1/ops"
L_SHAPE = [[0, 0], [20, 0], [20, 10], [10, 10], [10, 20], [0, 20]]


def _put(client, headers, number, outline=L_SHAPE, **over):
    return client.put(f"{API}/floors/{number}", headers=headers,
                      json={"name": "一层", "name_en": "Ground floor", "outline": outline, **over})


def test_an_admin_defines_a_floor_and_every_ops_user_reads_it_in_the_floor_list(client, ops_admin, ops_viewer, rt):
    version = venue.registry_version(rt.redis)
    answer = _put(client, ops_admin["headers"], 1, [*L_SHAPE, L_SHAPE[0]])  # a closed ring is fine
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert (body["number"], body["label"], body["name"], body["name_en"]) == (1, "L1", "一层", "Ground floor")
    assert body["outline"] == L_SHAPE  # stored without the closing vertex
    assert venue.registry_version(rt.redis) > version  # the workers reload the floor plans
    listed = client.get(f"{API}/floors", headers=ops_viewer["headers"]).get_json()["floors"]
    assert listed == [{"number": 1, "name": "L1", "outline": L_SHAPE, "name_zh": "一层", "name_en": "Ground floor",
                       "outline_source": "floor"}]


def test_a_basement_is_defined_by_its_negative_number_and_a_second_put_replaces_the_floor(client, ops_admin):
    assert _put(client, ops_admin["headers"], -2, name="地下二层", name_en="B2 car park").status_code == 200
    square = [[0, 0], [5, 0], [5, 5], [0, 5]]
    again = _put(client, ops_admin["headers"], -2, square, name="地下二层", name_en="Car park B2")
    assert again.status_code == 200 and again.get_json()["outline"] == square
    listed = client.get(f"{API}/floors", headers=ops_admin["headers"]).get_json()["floors"]
    assert [(f["number"], f["name"], f["name_en"], f["outline"]) for f in listed] == [
        (-2, "B2", "Car park B2", square)]


@pytest.mark.parametrize("outline", [
    [[0, 0], [10, 10], [10, 0], [0, 10]],  # a bow tie: edges cross
    [[0, 0], [10, 0]],  # fewer than three vertices (the body's own check)
    [[0, 0], [5, 0], [10, 0]],  # no area
    [[0, 0], [10, 0], [10, 10], [10, 10], [0, 10]],  # a vertex repeated
    [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0], [5, 5]],  # touches itself at a corner
    [[0, 0], [10, 0], [10, 10], [10, 20], [10, 5], [0, 10]],  # folds back along an edge
])
def test_an_outline_that_is_not_a_simple_polygon_is_refused(client, ops_admin, outline):
    answer = _put(client, ops_admin["headers"], 1, outline)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["code"] in ("floors.invalid_outline", "request.invalid")
    assert client.get(f"{API}/floors", headers=ops_admin["headers"]).get_json()["floors"] == []


@pytest.mark.parametrize("number", ["201", "-21", "one", "1.5"])
def test_a_floor_number_out_of_range_is_refused(client, ops_admin, number):
    answer = _put(client, ops_admin["headers"], number)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "floors.invalid_number"


def test_infinite_or_huge_coordinates_are_refused(client, ops_admin):
    answer = client.put(f"{API}/floors/1", headers={**ops_admin["headers"], "Content-Type": "application/json"},
                        data='{"name": "一层", "name_en": "G", "outline": [[0, 0], [1e400, 0], [0, 5]]}')
    assert answer.status_code == 400
    assert _put(client, ops_admin["headers"], 1, [[0, 0], [1e6, 0], [0, 5]]).status_code == 400


@pytest.mark.parametrize("role", ["viewer", "marketing", "desk"])
def test_only_an_admin_defines_floors(client, request, role):
    headers = request.getfixturevalue(f"ops_{role}")["headers"]
    answer = _put(client, headers, 1)
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "ops.admin_required"


def test_floor_plans_give_the_engine_each_outlined_floor_with_its_lattice_inside_the_outline(rt, clock):
    with rt.sessions.begin() as session:
        floors.put_floor(session, 1, "一层", "Ground floor", L_SHAPE, clock.now)
        floors.put_floor(session, -1, "地下一层", "B1", [[0, 0], [4, 0], [4, 4], [0, 4]], clock.now)
    with rt.sessions() as session:
        plans = floors.floor_plans(session)
    assert sorted(plans) == [-1, 1]
    assert plans[1].bounds == (0.0, 0.0, 20.0, 20.0) and len(plans[1].outline) == 6
    geometry = Geometry(plans[1], 0.5)
    assert geometry.xs and not any(x > 10.0 and y > 10.0 for x, y in zip(geometry.xs, geometry.ys, strict=True))


def test_the_demo_seeds_its_floors_once_and_keeps_ops_edits(rt, clock):
    rows = demo.load_plan()["floors"]
    with rt.sessions.begin() as session:
        assert floors.seed_floors(session, rows, clock.now) == len(rows)
        floors.put_floor(session, 1, "一楼", "Level 1", [[0, 0], [3, 0], [3, 3]], clock.now)
    with rt.sessions.begin() as session:
        assert floors.seed_floors(session, rows, clock.now) == 0
        by_number = {f.number: f for f in floors.list_floors(session)}
    assert by_number[1].name == "一楼"  # ops' edit kept
    assert by_number[2].name == "美食广场" and by_number[2].name_en == "Food court"


def test_the_proximity_worker_reloads_the_outlined_floors_with_the_registry(client, ops_admin, rt):
    worker = Worker(rt, "floors-worker", block_ms=0, flush_every_s=0)
    worker.refresh_registry()
    assert worker.engine._floor_plans == {}  # noqa: SLF001 (what position() searches: nothing outlined yet)
    assert _put(client, ops_admin["headers"], 2).status_code == 200
    worker.refresh_registry()  # the PUT bumped the registry's version
    assert sorted(worker.engine._floor_plans) == [2]  # noqa: SLF001
    assert worker.engine._floor_plans[2].outline[3] == (10.0, 10.0)  # noqa: SLF001
