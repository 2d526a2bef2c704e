"""Routes over the walkable graph: the cheapest way (in seconds) from a place to a place, on a profile.

A :class:`Router` compiles one :class:`~mallapp.domain.wayfinding.graph.Graph` once into integer adjacency
lists per profile ("fastest": every edge; "step_free": no :data:`~mallapp.domain.wayfinding.graph.STEPPED`
edge, so no stairs and no escalator), then answers any number of routes on it. An escalator runs from its
edge's ``a`` to ``b`` only, whatever its ``oneway`` flag says; any other edge is one-way only when flagged.

A :class:`Place` is a set of graph nodes, each with what reaching it costs beyond the graph (a store's doors
cost nothing more; a position on a floor reaches its nearest nodes by a straight walk), and optionally the
point the route starts or ends at when that is off the graph. The search is A* with a heuristic that never
overestimates and is consistent: the larger of the straight line at the fastest pace any edge covers ground,
and, to another floor, the walk at that pace to the nearest landing that leaves this floor, the floors at the
cheapest seconds per floor any change allows, and the walk from the nearest landing arriving on the goal's
floor (parts no route can skip). So the first goal settled at a cost nothing else can beat is the cheapest;
with many goals (the nearest toilet) it is plain Dijkstra. A node on a floor no change leaves is never
queued for a goal on another floor.

The answer is a :class:`Route`: the nodes and edges taken, and one :class:`Leg` per stretch on one floor
(its polyline from the start point to the goal point, its distance and seconds), each ending with the
floor change that leaves it (consecutive rides of one kind in one direction are one change: a lift from
L3 to B2 passes L2 and B1 without stopping the route there). :mod:`mallapp.domain.wayfinding.steps`
turns it into words.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from mallapp.domain.wayfinding.graph import STEPPED, Edge, Graph
from mallapp.errors import InvalidInput, RuleViolation

__all__ = ["PROFILES", "Change", "Leg", "Place", "Route", "Router", "unreachable"]

PROFILES = ("fastest", "step_free")
# The pace of a straight walk off the graph (from a position to its nearest node) when the graph's own walk
# edges do not give one: a shopper's unhurried pace.
DEFAULT_PACE_MPS = 1.2
NEAREST = 3  # nodes a position on a floor may join the graph at
HEURISTIC_GOALS = 16  # above this many goals the heuristic costs more than it saves: plain Dijkstra


def unreachable(profile: str) -> RuleViolation:
    """The refusal when no route joins two places (on this profile: step-free may have none where fastest has)."""
    return RuleViolation(f"no route joins these places on the {profile} profile", code="routes.unreachable",
                         details={"profile": profile})


@dataclass(frozen=True)
class Place:
    """Where a route starts or ends: graph nodes, each with (seconds, metres) beyond the graph, and the point
    (floor, x, y) off the graph the route begins or ends at, if any."""

    nodes: tuple[tuple[str, float, float], ...]
    point: tuple[int, float, float] | None = None

    @classmethod
    def at_nodes(cls, node_ids: tuple[str, ...] | list[str]) -> Place:
        return cls(tuple((node_id, 0.0, 0.0) for node_id in node_ids))


@dataclass(frozen=True)
class Change:
    """A ride (or a climb) between floors: its kind (lift, escalator, stairs, ramp), from and to which floor."""

    kind: str
    from_floor: int
    to_floor: int
    distance_m: float
    seconds: float
    node: str  # the landing it leaves from
    to_node: str  # the landing it arrives at

    @property
    def direction(self) -> str:
        return "up" if self.to_floor > self.from_floor else "down"


@dataclass(frozen=True)
class Leg:
    """A stretch on one floor: the polyline walked ([x, y] metres), its distance and seconds, and the floor
    change that ends it (None on the last leg)."""

    floor: int
    polyline: tuple[tuple[float, float], ...]
    nodes: tuple[str, ...]
    distance_m: float
    seconds: float
    change: Change | None = None


@dataclass(frozen=True)
class Route:
    profile: str
    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]
    legs: tuple[Leg, ...]
    distance_m: float  # every edge's length and the straight walks off the graph, rounded to 0.1 m
    seconds: float
    start: tuple[int, float, float]  # (floor, x, y) where the polyline begins
    end: tuple[int, float, float]

    @property
    def minutes(self) -> int:
        """Whole minutes, rounded up: 'about 2 minutes' never promises less than it takes."""
        return math.ceil(self.seconds / 60 - 1e-9) if self.seconds > 0 else 0


class _Profile:
    """One profile's adjacency (per node index: (neighbour index, seconds, edge index)) and what its heuristic
    needs: the fastest pace over ground, the cheapest seconds per floor, and per node the seconds at that pace to
    the nearest landing that leaves its floor (inf: no way off that floor)."""

    __slots__ = ("adj", "inv_pace", "floor_cost", "to_exit", "entries")

    def __init__(self, adj: list[list[tuple[int, float, int]]], inv_pace: float, floor_cost: float,
                 to_exit: list[float], entries: dict[int, list[int]]) -> None:
        self.adj = adj
        self.inv_pace = inv_pace  # seconds per metre at the fastest pace any edge covers ground (0: no bound)
        self.floor_cost = floor_cost  # seconds per floor: no floor change is cheaper per floor
        self.to_exit = to_exit
        self.entries = entries  # per floor, the landings a floor change arrives at


class Router:
    """A graph compiled for routes; build once per graph version and share it (it is read-only)."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.ids: list[str] = list(graph.nodes)
        self.index = {node_id: i for i, node_id in enumerate(self.ids)}
        nodes = [graph.nodes[node_id] for node_id in self.ids]
        self.xs = [n.x for n in nodes]
        self.ys = [n.y for n in nodes]
        self.floors = [n.floor for n in nodes]
        self.by_floor: dict[int, list[int]] = {}
        for i, floor in enumerate(self.floors):
            self.by_floor.setdefault(floor, []).append(i)
        # A lift's wait is paid once per boarding (Edge.board_s), not once per floor ridden through: each landing of
        # such an edge gets a second node, "in the car" at the same place. Boarding costs the wait, riding between
        # cars the rest of each edge's seconds, stepping out nothing; a route never sees these nodes (``real``).
        self.real: list[int] = list(range(len(nodes)))
        self.car: dict[int, int] = {}
        for e in graph.edges:
            if e.board_s > 0:
                for node_id in (e.a, e.b):
                    i = self.index.get(node_id)
                    if i is not None and i not in self.car:
                        self.car[i] = len(self.real)
                        self.real.append(i)
                        self.xs.append(self.xs[i])
                        self.ys.append(self.ys[i])
                        self.floors.append(self.floors[i])
        paces = sorted(e.length_m / e.seconds for e in graph.edges if e.kind == "walk" and e.seconds > 0
                       and e.length_m > 0)
        self.walk_pace = paces[len(paces) // 2] if paces else DEFAULT_PACE_MPS
        self.profiles = {name: self._compile(name) for name in PROFILES}

    def _compile(self, profile: str) -> _Profile:
        index, n, xs, ys, floors, car = self.index, len(self.real), self.xs, self.ys, self.floors, self.car
        adj: list[list[tuple[int, float, int]]] = [[] for _ in range(n)]
        boarding: dict[int, float] = {}  # per landing with a boarding edge on this profile: its wait
        pace, floor_cost = 0.0, math.inf
        exits: dict[int, set[int]] = {}
        entries: dict[int, set[int]] = {}
        for k, e in enumerate(self.graph.edges):
            if profile == "step_free" and e.kind in STEPPED:
                continue
            a, b = index.get(e.a), index.get(e.b)
            if a is None or b is None:
                continue
            seconds = max(0.0, float(e.seconds))
            if e.board_s > 0:  # ridden from car to car; the wait is the boarding arc's (below)
                board = min(float(e.board_s), seconds)
                seconds -= board
                for i in (a, b):
                    boarding[i] = max(boarding.get(i, 0.0), board)
                a, b = car[a], car[b]
            arcs = [(a, b)] if e.oneway or e.kind == "escalator" else [(a, b), (b, a)]
            for u, v in arcs:
                adj[u].append((v, seconds, k))
                if floors[u] != floors[v]:
                    exits.setdefault(floors[u], set()).add(u)
                    entries.setdefault(floors[v], set()).add(v)
            ground = math.hypot(xs[a] - xs[b], ys[a] - ys[b])
            if ground > 0:
                pace = math.inf if seconds == 0 else max(pace, ground / seconds)
            climb = abs(floors[a] - floors[b])
            if climb:
                floor_cost = min(floor_cost, seconds / climb)
        for i, wait in boarding.items():  # board (wait), or step out (nothing); edge -1: no edge of the graph
            adj[i].append((car[i], wait, -1))
            adj[car[i]].append((i, 0.0, -1))
        inv_pace = 0.0 if pace in (0.0, math.inf) else 1.0 / pace
        to_exit = [math.inf] * n
        landings_on = {floor: [(xs[i], ys[i]) for i in found] for floor, found in exits.items()}
        for i in range(n):
            x, y = xs[i], ys[i]
            to_exit[i] = min((math.hypot(lx - x, ly - y) * inv_pace for lx, ly in landings_on.get(floors[i], ())),
                             default=math.inf)
        return _Profile(adj, inv_pace, 0.0 if floor_cost == math.inf else floor_cost, to_exit,
                        {floor: sorted(found) for floor, found in entries.items()})

    # --- places --------------------------------------------------------------------------------------

    def node_place(self, node_id: str) -> Place:
        return Place.at_nodes([node_id])

    def point_place(self, floor: int, x: float, y: float, k: int = NEAREST) -> Place:
        """A point on a floor: joins the graph at the ``k`` nearest nodes of that floor by a straight walk."""
        candidates = self.by_floor.get(floor, [])
        xs, ys = self.xs, self.ys
        nearest = heapq.nsmallest(k, ((math.hypot(xs[i] - x, ys[i] - y), i) for i in candidates))
        return Place(tuple((self.ids[i], d / self.walk_pace, d) for d, i in nearest), (floor, float(x), float(y)))

    # --- the search ----------------------------------------------------------------------------------

    def route(self, start: Place, goal: Place, profile: str = "fastest") -> Route:
        """The cheapest route from ``start`` to ``goal``; :func:`unreachable` (422) when there is none."""
        if profile not in self.profiles:
            raise InvalidInput(f"profile: one of {', '.join(PROFILES)}", code="request.invalid_query")
        prof = self.profiles[profile]
        index = self.index
        goals: dict[int, float] = {}
        for node_id, seconds, _m in goal.nodes:
            i = index.get(node_id)
            if i is not None and seconds < goals.get(i, math.inf):
                goals[i] = seconds
        starts: dict[int, float] = {}
        for node_id, seconds, _m in start.nodes:
            i = index.get(node_id)
            if i is not None and seconds < starts.get(i, math.inf):
                starts[i] = seconds
        found = self._search(prof, starts, goals) if goals and starts else None
        if found is None:
            raise unreachable(profile)
        best_goal, cost, prev = found
        path = [best_goal]
        edges: list[int] = []
        while prev[path[-1]][0] >= 0:
            before, edge = prev[path[-1]]
            edges.append(edge)
            path.append(before)
        path.reverse()
        edges.reverse()
        # Back to the graph's own nodes and edges: boarding and stepping out (edge -1) stay where they are.
        real = self.real
        nodes, taken = [real[path[0]]], []
        for step, edge in enumerate(edges):
            if edge >= 0:
                nodes.append(real[path[step + 1]])
                taken.append(edge)
        return self._shape(profile, nodes, taken, cost, start, goal)

    def _search(self, prof: _Profile, starts: dict[int, float],
                goals: dict[int, float]) -> tuple[int, float, list[tuple[int, int]]] | None:
        xs, ys, floors, adj = self.xs, self.ys, self.floors, prof.adj
        inv_pace, floor_cost, to_exit = prof.inv_pace, prof.floor_cost, prof.to_exit
        use_h = len(goals) <= HEURISTIC_GOALS
        # Per goal: where it is, and the cheapest walk at that pace from a landing that arrives on its floor.
        targets = []
        for g in goals:
            gx, gy, gf = xs[g], ys[g], floors[g]
            arrive = min((math.hypot(xs[i] - gx, ys[i] - gy) * inv_pace for i in prof.entries.get(gf, ())),
                         default=math.inf)
            targets.append((gx, gy, gf, arrive))
        hypot = math.hypot

        def h(i: int) -> float:
            # A lower bound of the seconds from i to the nearest goal: the straight line at the fastest pace and,
            # to another floor, the walk to a landing that leaves i's floor, the floors at the cheapest rate and
            # the walk from a landing that arrives on the goal's floor (disjoint parts of any route).
            x, y, f = xs[i], ys[i], floors[i]
            best = math.inf
            for gx, gy, gf, arrive in targets:
                guess = hypot(gx - x, gy - y) * inv_pace
                if gf != f:
                    via = to_exit[i] + abs(gf - f) * floor_cost + arrive
                    if via > guess:
                        guess = via
                if guess < best:
                    best = guess
            return best

        n = len(adj)
        dist = [math.inf] * n
        prev: list[tuple[int, int]] = [(-1, -1)] * n
        heap: list[tuple[float, float, int]] = []
        push, pop = heapq.heappush, heapq.heappop
        for i, g in starts.items():
            dist[i] = g
            guess = h(i) if use_h else 0.0
            if guess < math.inf:
                push(heap, (g + guess, g, i))
        best, best_goal = math.inf, -1
        while heap:
            f, g, u = pop(heap)
            if f >= best:
                break
            if g > dist[u]:
                continue  # a stale entry: u was reached cheaper since
            extra = goals.get(u)
            if extra is not None and g + extra < best:
                best, best_goal = g + extra, u
                if extra == 0:  # nothing left can arrive cheaper (the heuristic never overestimates)
                    break
            for v, seconds, edge in adj[u]:
                nd = g + seconds
                if nd < dist[v]:
                    dist[v] = nd
                    prev[v] = (u, edge)
                    guess = h(v) if use_h else 0.0
                    if guess < math.inf:  # inf: v can never reach a goal (no way off its floor)
                        push(heap, (nd + guess, nd, v))
        if best_goal < 0:
            return None
        return best_goal, best, prev

    # --- the answer ----------------------------------------------------------------------------------

    def _shape(self, profile: str, path: list[int], edge_ids: list[int], cost: float, start: Place,
               goal: Place) -> Route:
        graph, ids, xs, ys, floors = self.graph, self.ids, self.xs, self.ys, self.floors
        first, last = path[0], path[-1]
        lead = next((m for node_id, _s, m in start.nodes if node_id == ids[first]), 0.0)
        lead_s = next((s for node_id, s, _m in start.nodes if node_id == ids[first]), 0.0)
        tail = next((m for node_id, _s, m in goal.nodes if node_id == ids[last]), 0.0)
        tail_s = next((s for node_id, s, _m in goal.nodes if node_id == ids[last]), 0.0)
        start_pt = start.point if start.point is not None else (floors[first], xs[first], ys[first])
        end_pt = goal.point if goal.point is not None else (floors[last], xs[last], ys[last])
        edges = tuple(graph.edges[k] for k in edge_ids)

        legs: list[Leg] = []
        poly: list[tuple[float, float]] = []
        leg_nodes: list[str] = []
        if start.point is not None:
            poly.append((start_pt[1], start_pt[2]))
        poly.append((xs[first], ys[first]))
        leg_nodes.append(ids[first])
        leg_m, leg_s = lead, lead_s
        ride: list[tuple[Edge, int, int]] = []  # the floor-change edges of the change under way

        def close_ride() -> None:
            nonlocal poly, leg_nodes, leg_m, leg_s
            e0, a0, _ = ride[0]
            _, _, b1 = ride[-1]
            # One boarding: riding on through a landing does not wait again (Edge.board_s).
            change = Change(e0.kind, floors[a0], floors[b1], sum(e.length_m for e, _, _ in ride),
                            sum(e.seconds for e, _, _ in ride) - sum(e.board_s for e, _, _ in ride[1:]),
                            ids[a0], ids[b1])
            legs.append(Leg(floors[a0], tuple(poly), tuple(leg_nodes), round(leg_m, 1), leg_s, change))
            poly, leg_nodes, leg_m, leg_s = [(xs[b1], ys[b1])], [ids[b1]], 0.0, 0.0
            ride.clear()

        for step, e in enumerate(edges):
            a, b = path[step], path[step + 1]
            if floors[a] != floors[b]:
                if ride and (ride[-1][0].kind != e.kind or (floors[b] > floors[a]) !=
                             (floors[ride[-1][2]] > floors[ride[-1][1]])):
                    close_ride()  # a different ride straight on: the floor between is a leg of no length
                ride.append((e, a, b))
                continue
            if ride:
                close_ride()
            poly.append((xs[b], ys[b]))
            leg_nodes.append(ids[b])
            leg_m += e.length_m
            leg_s += e.seconds
        if ride:
            close_ride()
        if goal.point is not None:
            poly.append((end_pt[1], end_pt[2]))
        legs.append(Leg(floors[last], tuple(poly), tuple(leg_nodes), round(leg_m + tail, 1), leg_s + tail_s))
        distance = lead + tail + sum(e.length_m for e in edges)
        return Route(profile, tuple(ids[i] for i in path), edges, tuple(legs), round(distance, 1), cost,
                     start_pt, end_pt)
