"""The operations console's walkable graph page in a real browser: the seeded graph drawn per floor with its
summary; an admin imports a refused file (the problem named by its feature id and highlighted on the map) then a
good one; closes the lift (a closing that would cut the car park off is refused beside the button) and the
step-free route then answers unreachable; a route drawn on the map with its steps in Chinese, then in English;
a viewer sees no edit controls and the API refuses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from factories import build_venue, small_graph
from playwright.sync_api import expect

from mallapp.domain.wayfinding import store
from mallapp.domain.wayfinding.store import WayfindingEdge

pytestmark = [pytest.mark.parametrize("backend", ["sqlite"], indirect=True),
              pytest.mark.usefixtures("cheap_password_hashing")]

PAGE = "/console/ops/wayfinding"
GRAPH = "/api/v1/ops/wayfinding/graph"
# Metres on the map to screen pixels, through the SVG's own matrix (the page's conversion).
TO_SCREEN = """([x, y]) => { const svg = document.getElementById('wf-map'); const p = svg.createSVGPoint();
  p.x = x; p.y = y; const m = p.matrixTransform(svg.getScreenCTM()); return [m.x, m.y]; }"""


def _seed(rt, doc=None) -> None:
    with rt.sessions.begin() as session:
        store.replace_graph(session, doc or small_graph(), by=None, now=rt.now(), costs=rt.settings.wayfinding)


def _file(doc: dict, name: str = "mall.geojson") -> dict:
    return {"name": name, "mimeType": "application/geo+json", "buffer": json.dumps(doc).encode()}


def _choose_floor(page, name: str) -> None:
    page.get_by_label("楼层", exact=True).select_option(label=name)


def test_the_page_draws_the_seeded_graph_per_floor_with_its_summary(console, ops_account, rt):
    build_venue(rt)
    _seed(rt)
    page = console.sign_in("ops", ops_account("viewer"), then=PAGE)
    nodes, edges = page.locator("#wf-map [data-kind=node]"), page.locator("#wf-map [data-kind=edge]")
    # L1: 7 nodes, 6 corridors, and a badge for each of the 4 floor changes landing there (lift B1-1, lift 1-2,
    # stairs, escalator).
    expect(nodes).to_have_count(7)
    expect(edges).to_have_count(10)
    expect(page.get_by_role("button", name="通道 lift-1-2")).to_contain_text("↑L2")
    expect(page.get_by_role("button", name="通道 lift-B1-1")).to_contain_text("↓B1")
    _choose_floor(page, "B1")
    expect(nodes).to_have_count(2)
    expect(edges).to_have_count(2)  # the corridor and the lift's badge
    _choose_floor(page, "L2")
    expect(nodes).to_have_count(5)
    expect(page.locator("#wf-map .node.kind-amenity")).to_have_count(1)
    summary = page.locator("#wf-summary")
    expect(summary.get_by_test_id("graph-version")).to_have_text("1")
    expect(summary).to_contain_text("导入")
    expect(summary.locator("tbody tr")).to_have_count(3)
    # A node clicked: its facts.
    page.get_by_role("button", name="节点 2-wc").click()
    expect(page.locator("#wf-selection")).to_contain_text("洗手间")
    expect(page.locator("#wf-selection")).to_contain_text("设施")


def test_an_admin_imports_a_refused_file_sees_the_problem_by_feature_id_then_imports_a_good_one(
        console, ops_account, rt):
    build_venue(rt)
    _seed(rt)
    console.allow(422, GRAPH)
    page = console.sign_in("ops", ops_account("admin"), then=PAGE)

    # Nothing chosen: said beside the file field, nothing sent.
    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator('[data-error-for="file"]')).to_have_text("请先选择要导入的 .geojson 文件。")

    bad = small_graph()
    lift = next(f for f in bad["features"] if f["id"] == "lift-1-2")
    del lift["properties"]["highway"]  # a floor change that is neither lift, stairs, escalator nor ramp
    page.get_by_label("路网文件（GeoJSON）").set_input_files(_file(bad, "bad.geojson"))
    page.get_by_role("button", name="导入", exact=True).click()
    result = page.locator("#wf-result")
    expect(result).to_contain_text("“bad.geojson”未导入：发现 1 个问题")
    problem = result.get_by_test_id("import-problems").locator("li")
    expect(problem).to_have_count(1)
    expect(problem).to_contain_text("lift-1-2")
    expect(problem).to_contain_text("通道连接了两个楼层，但不是电梯、楼梯、扶梯或坡道。")
    expect(page.get_by_role("button", name="通道 lift-1-2")).to_have_class("change kind-lift problem")
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 1  # nothing was written

    good = small_graph()
    next(f for f in good["features"] if f["id"] == "2-wc")["properties"]["name"] = "二楼洗手间"
    page.get_by_label("路网文件（GeoJSON）").set_input_files(_file(good, "good.geojson"))
    page.get_by_role("button", name="导入", exact=True).click()
    expect(result).to_contain_text("导入成功：版本 2，共 14 个节点、15 条通道")
    expect(page.get_by_test_id("graph-version")).to_have_text("2")
    expect(page.locator("#wf-map .problem")).to_have_count(0)
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 2
        assert store.load_graph(session).nodes["2-wc"].name == "二楼洗手间"

    # Export: the current file, as the API has it.
    with page.expect_download() as download:
        page.get_by_role("button", name="导出").click()
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert exported["mall:version"] == 2 and len(exported["features"]) == 29


def test_an_admin_closes_the_lift_and_the_step_free_route_is_then_unreachable(console, ops_account, rt):
    venue = build_venue(rt)
    _seed(rt)
    console.allow(422, f"{GRAPH}/edges/lift-B1-1")
    console.allow(422, "/api/v1/routes")
    page = console.sign_in("ops", ops_account("admin"), then=PAGE)
    page.on("dialog", lambda dialog: dialog.accept())
    selection = page.locator("#wf-selection")

    # The car park's only way up: closing it would cut B1 off, and the refusal appears beside the button.
    page.get_by_role("button", name="通道 lift-B1-1").click()
    selection.get_by_role("button", name="关闭通道").click()
    expect(selection.get_by_test_id("edge-error")).to_contain_text("导航图有问题，未作任何修改")
    expect(selection.get_by_test_id("edge-error")).to_contain_text("导航图的这一部分与其余部分不连通。")
    expect(selection.get_by_test_id("edge-state")).to_have_text("开放")

    page.get_by_role("button", name="通道 lift-1-2").click()
    selection.get_by_role("button", name="关闭通道").click()
    expect(selection.get_by_test_id("edge-state")).to_have_text("已关闭")
    expect(selection.get_by_test_id("edge-warnings")).to_contain_text("导航图的这一部分只能通过楼梯或扶梯到达。")
    expect(page.get_by_role("button", name="通道 lift-1-2")).to_have_class("change kind-lift closed selected")
    expect(page.get_by_test_id("graph-version")).to_have_text("2")
    expect(page.locator("#wf-summary tbody tr", has_text="L1").locator("td").last).to_have_text("1")
    with rt.sessions.begin() as session:
        assert session.get(WayfindingEdge, "lift-1-2").closed is True
        assert session.get(WayfindingEdge, "lift-B1-1").closed is False

    # From the coffee shop to the toilets upstairs without steps: no way while the lift is closed.
    form = page.locator("#wf-route")
    form.get_by_label("起点店铺").select_option(str(venue.store))
    form.get_by_label("终点类型").select_option("amenity")
    form.get_by_label("终点设施").select_option("toilets")
    form.get_by_label("无障碍路线").check()
    form.get_by_role("button", name="查找路线").click()
    expect(form.locator('[data-error-for="_form"]')).to_have_text(
        "这两处之间没有可走的路线；如需无台阶路线，可改选最快路线或询问服务台。")
    expect(page.get_by_test_id("route-line")).to_have_count(0)

    # Reopened: the step-free route goes by the lift again.
    page.get_by_role("button", name="通道 lift-1-2").click()
    selection.get_by_role("button", name="重新开放").click()
    expect(selection.get_by_test_id("edge-state")).to_have_text("开放")
    form.get_by_role("button", name="查找路线").click()
    expect(form.get_by_test_id("route-steps")).to_contain_text("乘电梯上到2楼")
    with rt.sessions.begin() as session:
        assert session.get(WayfindingEdge, "lift-1-2").closed is False


def test_a_route_is_drawn_per_floor_with_its_steps_in_chinese_then_in_english(console, ops_account, rt):
    venue = build_venue(rt)
    _seed(rt)
    console.allow(404, "/api/v1/routes")
    page = console.sign_in("ops", ops_account("viewer"), then=PAGE)
    form = page.locator("#wf-route")

    # Bad starts, said beside the start: an empty bay code (nothing sent), then a bay the mall does not have.
    form.get_by_label("起点类型").select_option("bay")
    form.get_by_role("button", name="查找路线").click()
    expect(form.locator('[data-error-for="from"]')).to_have_text("请选择或填写。")
    form.get_by_label("起点车位号").fill("B9-C999")
    form.get_by_role("button", name="查找路线").click()
    expect(form.locator('[data-error-for="from"]')).to_have_text("找不到这个车位。")
    form.get_by_label("起点类型").select_option("store")

    # The goal picked on the map: the south entrance's node.
    page.get_by_role("button", name="节点 1-entrance").click()
    page.locator("#wf-selection").get_by_role("button", name="设为终点").click()
    form.get_by_label("起点店铺").select_option(str(venue.store))
    form.get_by_role("button", name="查找路线").click()
    steps = form.get_by_test_id("route-steps").locator("li")
    expect(steps.first).to_have_text("从Starlight Coffee出发（1楼）")
    expect(steps.last).to_contain_text("到达")
    expect(page.get_by_test_id("route-line")).to_have_count(1)
    expect(form.locator("select[name=to_kind]")).to_have_value("node")
    expect(form.locator("input[name=to_node]")).to_have_value("1-entrance")

    # Upstairs to the toilets: two legs, the map follows the first, the second on L2.
    form.get_by_label("终点类型").select_option("amenity")
    form.get_by_label("终点设施").select_option("toilets")
    form.get_by_role("button", name="查找路线").click()
    expect(form.get_by_test_id("route-steps")).to_contain_text("乘扶梯上到2楼")
    expect(steps.last).to_have_text("到达洗手间")
    expect(page.get_by_label("楼层", exact=True)).to_have_value("1")
    form.get_by_role("button", name="第 2 段：L2").click()
    expect(page.get_by_label("楼层", exact=True)).to_have_value("2")
    expect(page.get_by_test_id("route-line")).to_have_count(1)

    # The same in English.
    page.get_by_role("link", name="English").click()
    console.wait_ready()
    form.get_by_label("Start store").select_option(str(venue.store))
    form.get_by_label("Goal type").select_option("amenity")
    form.get_by_label("Goal amenity").select_option("toilets")
    form.get_by_role("button", name="Find route").click()
    expect(form.get_by_test_id("route-steps")).to_contain_text("Take the escalator up to L2")
    expect(steps.last).to_have_text("Arrive at the toilets")
    expect(form.get_by_test_id("route-summary")).to_contain_text("About")


def test_a_viewer_sees_no_edit_controls_and_the_api_refuses_them(console, ops_account, rt):
    build_venue(rt)
    _seed(rt)
    console.allow(403, GRAPH)
    page = console.sign_in("ops", ops_account("viewer"), then=PAGE)
    expect(page.locator("#wf-import")).to_have_count(0)
    expect(page.get_by_role("button", name="导入", exact=True)).to_have_count(0)
    page.get_by_role("button", name="通道 lift-1-2").click()
    expect(page.locator("#wf-selection")).to_contain_text("电梯")
    expect(page.locator("#wf-selection").get_by_role("button", name="关闭通道")).to_have_count(0)
    # A corridor: a click on its line, halfway between the junction (0, 0) and the entrance (0, -5).
    page.mouse.click(*page.evaluate(TO_SCREEN, [0, -2.5]))
    expect(page.locator("#wf-selection")).to_contain_text("1-j1 (L1) → 1-entrance (L1)")
    expect(page.locator("#wf-selection")).to_contain_text("5.0 m")
    expect(page.locator("#wf-selection").get_by_role("button", name="关闭通道")).to_have_count(0)
    expect(page.get_by_role("button", name="导出")).to_be_visible()  # reading the file is any ops user's

    # The same session's calls, as the page would send them: refused by the API, nothing changed.
    answers = page.evaluate("""async () => {
      const out = [];
      for (const [method, path, body] of [["PATCH", "/api/v1/ops/wayfinding/graph/edges/lift-1-2", {closed: true}],
                                          ["PUT", "/api/v1/ops/wayfinding/graph", {type: "FeatureCollection", features: []}]]) {
        try { await Mall.api(method, path, body); out.push("accepted"); }
        catch (err) { out.push(`${err.status} ${err.code}`); }
      }
      return out;
    }""")
    assert answers == ["403 ops.admin_required", "403 ops.admin_required"]
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 1
        assert session.get(WayfindingEdge, "lift-1-2").closed is False


def test_before_any_import_the_page_says_so_and_the_first_import_draws_the_graph(console, ops_account, rt):
    build_venue(rt)
    page = console.sign_in("ops", ops_account("admin"), then=PAGE)
    expect(page.locator("#wf-summary")).to_contain_text("还没有导入路网。")
    expect(page.get_by_test_id("graph-version")).to_have_text("0")
    expect(page.locator("#wf-map [data-kind]")).to_have_count(0)

    page.get_by_label("路网文件（GeoJSON）").set_input_files(_file(small_graph()))
    page.get_by_role("button", name="导入", exact=True).click()
    expect(page.locator("#wf-result")).to_contain_text("导入成功：版本 1，共 14 个节点、15 条通道")
    expect(page.locator("#wf-map [data-kind=node]")).to_have_count(7)
    expect(page.get_by_label("楼层", exact=True).locator("option")).to_have_text(["B1", "L1", "L2"])
    with rt.sessions.begin() as session:
        assert store.graph_version(session) == 1
