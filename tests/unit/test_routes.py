"""Routes over a graph in memory: the cheapest route is the shortest path, step-free is step-free, legs and steps
describe the route taken (mallapp.domain.wayfinding.routes and steps)."""

from __future__ import annotations

import math
import random

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mallapp.devtools.synthetic_mall import synthetic_mall
from mallapp.domain.venue_admin import floor_name
from mallapp.domain.wayfinding.graph import STEPPED, Edge, Graph, Node
from mallapp.domain.wayfinding.routes import Place, Router
from mallapp.domain.wayfinding.steps import Label, describe, floor_label
from mallapp.errors import RuleViolation

FLOOR_KINDS = ("lift", "stairs", "escalator", "ramp")
KIND_WORDS = {"zh-CN": {"lift": "电梯", "escalator": "扶梯", "stairs": "楼梯", "ramp": "坡道"},
              "en": {"lift": "lift", "escalator": "escalator", "stairs": "stairs", "ramp": "ramp"}}


# --- the second opinions, written plainly ---------------------------------------------------------------------

def usable(edge: Edge, profile: str) -> list[tuple[str, str]]:
    """The directed arcs an edge gives on a profile: the rules routes.py states, restated here."""
    if profile == "step_free" and edge.kind in STEPPED:
        return []
    if edge.oneway or edge.kind == "escalator":
        return [(edge.a, edge.b)]
    return [(edge.a, edge.b), (edge.b, edge.a)]


def bellman_ford(graph: Graph, sources: dict[str, float], profile: str) -> dict[str, float]:
    """Cheapest seconds from any source (starting at its own cost) to every node: relax every arc until nothing
    changes."""
    dist = {n: math.inf for n in graph.nodes}
    for node, cost in sources.items():
        dist[node] = min(dist[node], cost)
    arcs = [(a, b, e.seconds) for e in graph.edges for a, b in usable(e, profile)]
    for _ in range(len(graph.nodes)):
        changed = False
        for a, b, s in arcs:
            if dist[a] + s < dist[b]:
                dist[b] = dist[a] + s
                changed = True
        if not changed:
            break
    return dist


def networkx_cost(graph: Graph, sources: list[str], goals: list[str], profile: str) -> float:
    g = nx.MultiDiGraph()
    g.add_nodes_from(graph.nodes)
    for e in graph.edges:
        for a, b in usable(e, profile):
            g.add_edge(a, b, weight=e.seconds)
    lengths = nx.multi_source_dijkstra_path_length(g, set(sources), weight="weight")
    return min((lengths[goal] for goal in goals if goal in lengths), default=math.inf)


# --- random graphs ----------------------------------------------------------------------------------------------

@st.composite
def random_graphs(draw) -> Graph:
    floors = draw(st.lists(st.sampled_from([-2, -1, 1, 2, 3]), min_size=1, max_size=4, unique=True))
    count = draw(st.integers(2, 24))
    nodes = {}
    for i in range(count):
        floor = draw(st.sampled_from(floors))
        x, y = draw(st.integers(0, 60)), draw(st.integers(0, 40))
        nodes[f"n{i}"] = Node(f"n{i}", floor, float(x), float(y), "junction", name=draw(st.sampled_from(["", f"点{i}"])),
                              name_en=f"point {i}")
    ids = list(nodes)
    edges = []
    for _ in range(draw(st.integers(0, 3 * count))):
        a, b = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
        if a == b:
            continue
        na, nb = nodes[a], nodes[b]
        ground = math.hypot(na.x - nb.x, na.y - nb.y)
        if na.floor == nb.floor:
            kind, length = "walk", ground
            seconds = ground / 1.2 + draw(st.integers(0, 20))
        else:
            kind, length = draw(st.sampled_from(FLOOR_KINDS)), 5.0 * abs(na.floor - nb.floor)
            seconds = float(draw(st.integers(5, 60)))
        edges.append(Edge(a, b, kind, round(length, 2), round(seconds, 2), oneway=draw(st.booleans())))
    return Graph(version=1, nodes=nodes, edges=tuple(edges))


def check_shape(router: Router, route, start: Place, goal: Place, profile: str) -> None:
    """What every route must be: a walkable path on the profile, legs per floor stretch, ends where it should."""
    graph = router.graph
    arcs = {(a, b, id(e)) for e in graph.edges for a, b in usable(e, profile)}
    for k, e in enumerate(route.edges):
        assert (route.nodes[k], route.nodes[k + 1], id(e)) in arcs
    assert route.nodes[0] in {n for n, _, _ in start.nodes} and route.nodes[-1] in {n for n, _, _ in goal.nodes}
    if profile == "step_free":
        assert not any(e.kind in STEPPED for e in route.edges)
    first, last = route.legs[0], route.legs[-1]
    assert list(first.polyline[0]) == [route.start[1], route.start[2]] and first.floor == route.start[0]
    assert list(last.polyline[-1]) == [route.end[1], route.end[2]] and last.floor == route.end[0]
    for before, after in zip(route.legs, route.legs[1:], strict=False):
        assert before.change is not None and before.change.from_floor == before.floor
        assert before.change.to_floor == after.floor != before.floor
    assert last.change is None
    visited = [graph.nodes[n].floor for n in route.nodes]
    stretches = [f for i, f in enumerate(visited) if i == 0 or f != visited[i - 1]]
    assert len(route.legs) <= len(stretches)  # rides through floors without stopping are one change
    assert {leg.floor for leg in route.legs} <= set(visited)
    assert route.distance_m == pytest.approx(sum(e.length_m for e in route.edges) +
                                             next(m for n, _, m in start.nodes if n == route.nodes[0]) +
                                             next(m for n, _, m in goal.nodes if n == route.nodes[-1]), abs=0.06)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_graphs(), data=st.data())
def test_a_route_on_a_random_graph_costs_what_the_shortest_path_costs(graph, data):
    router = Router(graph)
    ids = sorted(graph.nodes)
    sources = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
    goals = data.draw(st.lists(st.sampled_from(ids), min_size=1, max_size=3, unique=True))
    profile = data.draw(st.sampled_from(["fastest", "step_free"]))
    start, goal = Place.at_nodes(sources), Place.at_nodes(goals)
    expected = min(bellman_ford(graph, dict.fromkeys(sources, 0.0), profile)[g] for g in goals)
    assert expected == pytest.approx(networkx_cost(graph, sources, goals, profile))
    if expected == math.inf:
        with pytest.raises(RuleViolation) as refused:
            router.route(start, goal, profile)
        assert refused.value.code == "routes.unreachable"
        return
    route = router.route(start, goal, profile)
    assert route.seconds == pytest.approx(expected)
    assert sum(e.seconds for e in route.edges) == pytest.approx(expected)
    check_shape(router, route, start, goal, profile)


@pytest.fixture(scope="module")
def mall() -> Router:
    return Router(synthetic_mall(seed=5, cols=8, rows=5, doors_per_floor=40, bays_per_level=60))


def test_on_500_random_pairs_of_a_generated_mall_the_route_is_the_shortest_path(mall):
    graph, rng = mall.graph, random.Random(500)
    places = [("store", s, graph.store_nodes[s]) for s in graph.store_nodes] + \
             [("bay", b, (graph.bay_nodes[b],)) for b in graph.bay_nodes]
    checked = 0
    for _ in range(50):  # 50 starts x 10 goals x alternating profiles = 500 pairs
        _, _, sources = rng.choice(places)
        profile = rng.choice(["fastest", "step_free"])
        dist = bellman_ford(graph, dict.fromkeys(sources, 0.0), profile)
        for _ in range(10):
            _, _, goals = rng.choice(places)
            route = mall.route(Place.at_nodes(sources), Place.at_nodes(goals), profile)
            assert route.seconds == pytest.approx(min(dist[g] for g in goals))
            check_shape(mall, route, Place.at_nodes(sources), Place.at_nodes(goals), profile)
            checked += 1
    assert checked == 500


def test_a_step_free_route_takes_the_lift_where_the_fastest_takes_the_stairs(mall):
    graph = mall.graph
    pairs = [(s, b) for s in list(graph.store_nodes)[:40] for b in list(graph.bay_nodes)[:5]]
    kinds = {"fastest": set(), "step_free": set()}
    for s, b in pairs:
        for profile in kinds:
            route = mall.route(Place.at_nodes(graph.store_nodes[s]), Place.at_nodes([graph.bay_nodes[b]]), profile)
            kinds[profile] |= {e.kind for e in route.edges}
    assert "stairs" in kinds["fastest"]
    assert kinds["step_free"].isdisjoint(STEPPED) and "lift" in kinds["step_free"]


def test_an_escalator_is_ridden_only_in_its_direction():
    nodes = {"a": Node("a", 1, 0, 0, "escalator"), "b": Node("b", 2, 0, 0, "escalator")}
    graph = Graph(1, nodes, (Edge("a", "b", "escalator", 10, 20),))  # oneway not flagged: still one-way
    router = Router(graph)
    assert router.route(Place.at_nodes(["a"]), Place.at_nodes(["b"])).seconds == 20
    with pytest.raises(RuleViolation, match="fastest"):
        router.route(Place.at_nodes(["b"]), Place.at_nodes(["a"]))
    with pytest.raises(RuleViolation) as refused:
        router.route(Place.at_nodes(["a"]), Place.at_nodes(["b"]), "step_free")
    assert refused.value.code == "routes.unreachable" and refused.value.status == 422


def test_the_nearest_of_several_goals_is_the_cheapest_of_the_single_routes(mall):
    graph = mall.graph
    toilets = [n for n, node in graph.nodes.items() if node.amenity == "toilets"]
    for bay in list(graph.bay_nodes)[:20]:
        start = Place.at_nodes([graph.bay_nodes[bay]])
        nearest = mall.route(start, Place.at_nodes(toilets), "step_free")
        assert nearest.seconds == pytest.approx(min(mall.route(start, Place.at_nodes([t]), "step_free").seconds
                                                    for t in toilets))


def test_a_position_joins_its_floor_by_a_straight_walk_and_the_polyline_starts_there(mall):
    place = mall.point_place(2, 13.0, 9.0)
    assert {mall.graph.nodes[n].floor for n, _, _ in place.nodes} == {2}
    route = mall.route(place, Place.at_nodes(mall.graph.store_nodes[1]))  # store 1 is on L1
    assert route.legs[0].polyline[0] == (13.0, 9.0) and route.start == (2, 13.0, 9.0)
    walked = next(m for n, _, m in place.nodes if n == route.nodes[0])
    node = mall.graph.nodes[route.nodes[0]]
    assert walked == pytest.approx(math.hypot(node.x - 13.0, node.y - 9.0))
    check_shape(mall, route, place, Place.at_nodes(mall.graph.store_nodes[1]), "fastest")


def test_a_position_on_a_floor_without_nodes_is_unreachable(mall):
    with pytest.raises(RuleViolation) as refused:
        mall.route(mall.point_place(7, 0, 0), Place.at_nodes(mall.graph.store_nodes[1]))
    assert refused.value.code == "routes.unreachable"


def test_a_goal_point_ends_the_last_polyline():
    nodes = {"a": Node("a", 1, 0, 0, "junction"), "b": Node("b", 1, 10, 0, "junction")}
    router = Router(Graph(1, nodes, (Edge("a", "b", "walk", 10, 8),)))
    goal = Place((("b", 2.5, 3.0),), (1, 10.0, 3.0))
    route = router.route(Place.at_nodes(["a"]), goal)
    assert route.legs[-1].polyline == ((0, 0), (10, 0), (10.0, 3.0))
    assert route.distance_m == 13.0 and route.seconds == 10.5 and route.minutes == 1


def test_a_lift_ridden_through_floors_is_one_change_and_one_leg_per_floor_stopped_on():
    floors = (3, 2, 1, -1)
    nodes = {f"lift{f}": Node(f"lift{f}", f, 0, 0, "lift") for f in floors}
    nodes |= {"shop": Node("shop", 3, 20, 0, "door", store_id=1), "bay": Node("bay", -1, 0, 30, "junction")}
    edges = [Edge(f"lift{a}", f"lift{b}", "lift", 4.5, 10) for a, b in zip(floors, floors[1:], strict=False)]
    edges += [Edge("shop", "lift3", "walk", 20, 16), Edge("lift-1", "bay", "walk", 30, 25)]
    route = Router(Graph(1, nodes, tuple(edges))).route(Place.at_nodes(["shop"]), Place.at_nodes(["bay"]))
    assert [leg.floor for leg in route.legs] == [3, -1]
    change = route.legs[0].change
    assert (change.kind, change.from_floor, change.to_floor, change.seconds) == ("lift", 3, -1, 30)
    assert route.legs[0].polyline == ((20, 0), (0, 0)) and route.legs[1].polyline == ((0, 0), (0, 30))


def test_a_lift_ridden_through_floors_waits_once_so_it_beats_getting_off_for_the_ramp():
    # Lift 1 from L3 down to B2 (wait 40 s, 6 s a floor); from B1 a ramp down to B2 is also there (30 s).
    floors = (3, 2, 1, -1, -2)
    nodes = {f"lift{f}": Node(f"lift{f}", f, 0, 0, "lift") for f in floors}
    nodes |= {"shop": Node("shop", 3, 10, 0, "door", store_id=1), "bay": Node("bay", -2, 0, 10, "junction"),
              "ramp-1": Node("ramp-1", -1, 0, 5, "ramp"), "ramp-2": Node("ramp-2", -2, 0, 5, "ramp")}
    edges = [Edge(f"lift{a}", f"lift{b}", "lift", 4.5, 46, board_s=40) for a, b in zip(floors, floors[1:], strict=False)]
    edges += [Edge("shop", "lift3", "walk", 10, 8), Edge("lift-2", "bay", "walk", 10, 8),
              Edge("lift-1", "ramp-1", "walk", 5, 4), Edge("ramp-1", "ramp-2", "ramp", 20, 30),
              Edge("ramp-2", "bay", "walk", 5, 4)]
    router = Router(Graph(1, nodes, tuple(edges)))
    for profile in ("fastest", "step_free"):
        route = router.route(Place.at_nodes(["shop"]), Place.at_nodes(["bay"]), profile)
        # One wait and four floors' ride: 8 + 40 + 4 x 6 + 8; waiting at every landing would cost 8 + 4 x 46 + 8.
        assert route.seconds == pytest.approx(8 + 40 + 4 * 6 + 8)
        assert [leg.floor for leg in route.legs] == [3, -2] and route.nodes[-2:] == ("lift-2", "bay")
        assert route.legs[0].change.seconds == pytest.approx(40 + 4 * 6)
    # Getting on at B1 for one floor still waits: the ramp is quicker from there.
    down_one = router.route(Place.at_nodes(["lift-1"]), Place.at_nodes(["bay"]))
    assert down_one.seconds == pytest.approx(4 + 30 + 4) and "ramp-1" in down_one.nodes


@pytest.mark.parametrize("locale", ["zh-CN", "en"])
def test_the_steps_spell_out_every_floor_change_in_both_languages(mall, locale):
    graph, rng = mall.graph, random.Random(9)
    for _ in range(60):
        s, b = rng.choice(list(graph.store_nodes)), rng.choice(list(graph.bay_nodes))
        profile = rng.choice(["fastest", "step_free"])
        route = mall.route(Place.at_nodes([graph.bay_nodes[b]]), Place.at_nodes(graph.store_nodes[s]), profile)
        steps = describe(route, graph, locale, Label("bay", "B2-C001"), Label("store", "星巴克", "Starbucks", "L2-05"))
        changes = [leg.change for leg in route.legs if leg.change is not None]
        said = [step for step in steps if step.kind == "change"]
        assert len(said) == len(changes) >= 1
        for change, step in zip(changes, said, strict=True):
            assert KIND_WORDS[locale][change.kind] in step.text
            assert floor_label(locale, change.to_floor) in step.text
            assert ("上到" if change.direction == "up" else "下到") in step.text if locale == "zh-CN" else \
                f" {change.direction} to " in step.text
        assert steps[0].kind == "start" and steps[-1].kind == "arrive"
        arrive = "到达星巴克，位于L2-05" if locale == "zh-CN" else "Arrive at Starbucks, unit L2-05"
        assert steps[-1].text == arrive


def test_floor_labels_read_as_a_shopper_says_them():
    assert [floor_label("zh-CN", f) for f in (-2, 1, 3)] == ["B2层", "1楼", "3楼"]
    assert [floor_label("en", f) for f in (-2, 1, 3)] == [floor_name(f) for f in (-2, 1, 3)] == ["B2", "L1", "L3"]


def test_the_issue_s_examples_read_as_written():
    nodes = {"l1": Node("l1", 1, 0, 0, "lift", name="3号电梯", name_en="Lift 3"),
             "b2": Node("b2", -2, 0, 0, "lift"), "s": Node("s", 1, 30, 0, "door", store_id=1),
             "e1": Node("e1", 1, 5, 5, "escalator"), "e2": Node("e2", 2, 15, 5, "escalator"),
             "d2": Node("d2", 2, 20, 5, "door", store_id=2)}
    edges = (Edge("s", "l1", "walk", 30, 25), Edge("l1", "b2", "lift", 9, 40), Edge("s", "e1", "walk", 25.5, 21),
             Edge("e1", "e2", "escalator", 12, 24, oneway=True), Edge("e2", "d2", "walk", 5, 4))
    router = Router(Graph(1, nodes, edges))
    down = router.route(Place.at_nodes(["s"]), Place.at_nodes(["b2"]))
    zh = [s.text for s in describe(down, router.graph, "zh-CN", Label("store", "星巴克", "Starbucks", "L1-05"),
                                   Label("car", "B2-C058"))]
    assert zh == ["从星巴克出发（1楼）", "步行约30米，到3号电梯", "乘电梯下到B2层", "到达您的车位B2-C058"]
    en = [s.text for s in describe(down, router.graph, "en", Label("store", "星巴克", "Starbucks", "L1-05"),
                                   Label("car", "B2-C058"))]
    assert en == ["Start at Starbucks (L1)", "Walk about 30 m to Lift 3", "Take the lift down to B2",
                  "Arrive at your car, bay B2-C058"]
    up = router.route(Place.at_nodes(["s"]), Place.at_nodes(["d2"]))
    texts = [s.text for s in describe(up, router.graph, None, Label("position"), Label("store", "星巴克", unit="L2-05"))]
    assert texts == ["从您当前的位置出发（1楼）", "步行约25米，到扶梯", "乘扶梯上到2楼", "步行约5米", "到达星巴克，位于L2-05"]
