"""The ops API of the member segmentation: ask for a run, and read the runs (status, parameters, counts).

A run over every member is never computed inside the request: ``POST`` records a requested run, which the
clock's ``member-segments-requested`` job picks up within seconds; the reply (202) says where to watch it.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from flask import Blueprint
from pydantic import ConfigDict, Field

from mallapp.api.core import Out, Query, current_ops, operation, runtime, transaction
from mallapp.domain import segments
from mallapp.domain.segments import SegmentRun

bp = Blueprint("segments", __name__, url_prefix="/api/v1/ops/segments")

_MARKETING = ("ops.marketing_required",)


class RunOut(Out):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: Literal["requested", "running", "done", "failed"]
    trigger: Literal["clock", "ops", "cli"]
    month: date = Field(description="the mall-local month whose snapshots the run writes (its first day)")
    as_of: date = Field(description="the mall-local day the facts are computed for")
    started_at: datetime = Field(description="when the run started (for a requested run: when it was asked for)")
    finished_at: datetime | None
    members: int = Field(description="members segmented (erased members are skipped)")
    requested_by: str | None
    error: str | None
    parameters: dict[str, Any] = Field(description="what the run used: the T-split cuts, the pyramid's lowest "
                                                   "scored spend per level, the RFM quintile edges, the fitted "
                                                   "BG/NBD and Gamma-Gamma parameters (see docs/segments.md)")
    counts: dict[str, Any] = Field(description="members per T-tier, pyramid level, RFM segment and lifecycle "
                                               "state, and the lifecycle transitions recorded")
    href: str = Field(description="where to read this run")


class RequestedOut(RunOut):
    created: bool = Field(description="false when a run was already requested or running: that one is answered")


class RunsOut(Out):
    runs: list[RunOut]


class RunsQuery(Query):
    limit: int = Field(default=50, ge=1, le=500)


def _out(row: SegmentRun) -> dict[str, Any]:
    return {**RunOut.model_validate({**{c.key: getattr(row, c.key) for c in SegmentRun.__table__.columns},
                                     "href": f"/api/v1/ops/segments/runs/{row.id}"}).model_dump()}


@operation(bp, "/runs", "POST", summary="Ask for a segmentation run now (the clock runs it within seconds)",
           auth="ops_marketing", response=RequestedOut, status=202, errors=_MARKETING)
def request_run() -> RequestedOut:
    rt = runtime()
    with transaction() as session:
        row, created = segments.request(session, rt.settings, rt.now(), requested_by=current_ops().username)
        return RequestedOut(**_out(row), created=created)


@operation(bp, "/runs", "GET", summary="The segmentation runs, newest first: status, month, parameters, counts",
           auth="ops", query=RunsQuery, response=RunsOut)
def list_runs(query: RunsQuery) -> RunsOut:
    with transaction() as session:
        return RunsOut(runs=[RunOut(**_out(row)) for row in segments.runs(session, query.limit)])


@operation(bp, "/runs/<int:run_id>", "GET", summary="One segmentation run", auth="ops", response=RunOut,
           errors=("segments.run_not_found",))
def get_run(run_id: int) -> RunOut:
    with transaction() as session:
        return RunOut(**_out(segments.get_run(session, run_id)))
