"""Member campaigns for ops: build (with a live audience count), launch, cancel, and read the measured effect.

Marketing (and admins) create, launch and cancel; any ops user reads campaigns and their reports.
Launching never messages anyone inside the request: the audience's fan-out goes on the sends stream
after the commit, for the ``sends`` workers (docs/campaigns.md).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Literal

from flask import Blueprint
from pydantic import AwareDatetime, Field, model_validator

from mallapp.api.core import Body, Id, Out, Printable, Query, current_ops, operation, runtime, transaction
from mallapp.domain import campaigns, sends
from mallapp.domain.campaigns import audience as audiences
from mallapp.domain.campaigns.report import Arm
from mallapp.domain.campaigns.stats import Interval

bp = Blueprint("ops_campaigns", __name__, url_prefix="/api/v1/ops/campaigns")

TTier = Literal["T1", "T2", "T3", "T4"]
Pyramid = Literal["vip", "major", "ordinary", "small"]
Lifecycle = Literal["new", "active", "weakening", "lost", "reactivated"]
Rfm = Literal["champions", "loyal", "potential_loyalist", "new", "promising", "need_attention", "about_to_sleep",
              "at_risk", "cant_lose_them", "hibernating", "lost"]
Status = Literal["draft", "scheduled", "running", "finished", "cancelled"]
Days = Annotated[int, Field(ge=0, le=3650)]
Probability = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


Name = Printable(80)
Text = Printable(500, min_length=0)
Category = Printable(40)
Tiers = Annotated[list[TTier], Field(max_length=4)]
Ids = Annotated[list[Id], Field(max_length=200)]


class AudienceIn(Body):
    """Rules that must all hold; within one rule any value will do. Segment rules read the latest month's
    segments (member_snapshots)."""

    t_tiers: Tiers = Field(default_factory=list, description="the current T-tier")
    last_t_tiers: Tiers = Field(
        default_factory=list, description="the latest T-tier the member had (lost members have none now): "
                                          "win-back of lost T1/T2")
    pyramid: Annotated[list[Pyramid], Field(max_length=4)] = Field(default_factory=list)
    rfm_segments: Annotated[list[Rfm], Field(max_length=11)] = Field(default_factory=list)
    lifecycle: Annotated[list[Lifecycle], Field(max_length=5)] = Field(default_factory=list)
    p_alive_min: Probability | None = None
    p_alive_max: Probability | None = None
    days_since_purchase_min: Days | None = None
    days_since_purchase_max: Days | None = None
    bought_at_stores: Ids = Field(default_factory=list)
    bought_in_categories: Annotated[list[Category], Field(max_length=50)] = Field(default_factory=list)
    bought_within_days: Annotated[int, Field(ge=1, le=3650)] = Field(
        default=365, description="how far back bought_at_stores and bought_in_categories look")
    follows_stores: Ids = Field(default_factory=list)


class LocalisedName(Body):
    zh_cn: Name = Field(alias="zh-CN")
    en: Name | None = None


class LocalisedText(Body):
    zh_cn: Text = Field(default="", alias="zh-CN")
    en: Text | None = None


class OfferIn(Body):
    kind: Literal["message", "coupon", "points"]
    title: Name | LocalisedName = Field(description='the message\'s title in zh-CN, or in both languages: '
                                                    '{"zh-CN": "...", "en": "..."}')
    body: Text | LocalisedText = ""
    title_en: Name | None = Field(default=None, description="the English title (members reading English get it; "
                                                            "without it they get the zh-CN)")
    body_en: Text | None = Field(default=None, description="the English body (without it: the zh-CN)")
    deal_id: Id | None = Field(default=None, description="coupon: a live deal whose coupon each member is given "
                                                         "(within its quota)")
    coupon_valid_days: Annotated[int, Field(ge=1, le=365)] = 14
    points: Annotated[int, Field(ge=1, le=100_000)] | None = Field(default=None, description="points: how many")

    @model_validator(mode="after")
    def _flatten_languages(self) -> OfferIn:
        # Stored flat (title, title_en, body, body_en) whichever way the text came.
        for name in ("title", "body"):
            value = getattr(self, name)
            if isinstance(value, LocalisedName | LocalisedText):
                if getattr(self, f"{name}_en") is not None:
                    raise ValueError(f"{name}_en and an English {name} in {name} are one too many")
                setattr(self, name, value.zh_cn)
                setattr(self, f"{name}_en", value.en)
        return self


class StepIn(Body):
    after_days: Annotated[int, Field(ge=0, le=60)] = Field(default=0, description="days after the member's "
                                                                                  "assignment")
    offer: OfferIn


class CampaignIn(Body):
    name: Name
    audience: AudienceIn = Field(default_factory=AudienceIn)
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=8)] = Field(
        description="one offer, or a sequence (e.g. the first-month steps for new members)")
    timing: Literal["now", "at", "lifecycle", "next_purchase_due"]
    start_at: AwareDatetime | None = Field(default=None, description="timing at: when")
    lifecycle_state: Lifecycle | None = Field(default=None, description="timing lifecycle: members entering it")
    ends_at: AwareDatetime | None = Field(default=None, description="triggered timings assign nobody after it")
    control_pct: Annotated[int, Field(ge=0, le=50)] | None = Field(
        default=None, description="the share kept as a control group, never contacted ([campaigns] control_pct)")
    window_days: Annotated[int, Field(ge=1, le=365)] | None = Field(
        default=None, description="purchases within this many days of assignment count ([campaigns] window_days)")


class CampaignOut(Out):
    id: int
    name: str
    status: Status
    audience: dict[str, object]
    steps: list[dict[str, object]]
    timing: str
    start_at: datetime | None
    lifecycle_state: str | None
    ends_at: datetime | None
    control_pct: int
    window_days: int
    created_by: int
    created_at: datetime
    launched_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    cancelled_at: datetime | None


class CampaignsOut(Out):
    campaigns: list[CampaignOut]


class ListQuery(Query):
    status: Status | None = None


class CountOut(Out):
    members: int = Field(description="members the rules select now")
    segments_month: date | None = Field(description="the month of the segments the rules read (None: none yet)")


class ArmOut(Out):
    members: int
    contacted: int = Field(description="members a step was delivered to (always 0 for control)")
    buyers: int = Field(description="members who bought within their window")
    purchases: int
    spend_fen: int = Field(description="net of refunds")
    conversion: float | None = Field(description="buyers / members")
    spend_per_member_fen: float | None


class IntervalOut(Out):
    estimate: float
    low: float
    high: float


class ReportOut(Out):
    campaign_id: int
    name: str
    status: Status
    window_days: int
    treated: ArmOut
    control: ArmOut
    conversion_uplift: IntervalOut | None = Field(description="treated minus control conversion, 95% interval")
    spend_uplift_fen: IntervalOut | None = Field(description="treated minus control spend per member, 95% interval")
    methods: dict[str, str]
    windows_closed: bool = Field(description="every member's window is over and the campaign ended: final")
    as_of: datetime


def _out(c: campaigns.Campaign) -> CampaignOut:
    return CampaignOut(id=c.id, name=c.name, status=c.status, audience=c.audience, steps=c.steps, timing=c.timing,
                       start_at=c.start_at, lifecycle_state=c.lifecycle_state, ends_at=c.ends_at,
                       control_pct=c.control_pct, window_days=c.window_days, created_by=c.created_by,
                       created_at=c.created_at, launched_at=c.launched_at, started_at=c.started_at,
                       finished_at=c.finished_at, cancelled_at=c.cancelled_at)


_MARKETING = ("ops.marketing_required",)
_NOT_FOUND = ("campaign.not_found",)


@operation(bp, "", "POST", summary="Create a draft campaign: audience, offer steps, timing, control share, window",
           auth="ops_marketing", body=CampaignIn, response=CampaignOut, status=201,
           errors=(*_MARKETING, "campaign.invalid_audience", "campaign.invalid_offer", "campaign.invalid_timing",
                   "campaign.deal_not_live"))
def create(body: CampaignIn) -> CampaignOut:
    rt = runtime()
    with transaction() as session:
        campaign = campaigns.create(
            session, rt.settings, current_ops().id, name=body.name, audience=body.audience.model_dump(),
            steps=[step.model_dump() for step in body.steps], timing=body.timing, now=rt.now(),
            start_at=body.start_at, lifecycle_state=body.lifecycle_state, ends_at=body.ends_at,
            control_pct=body.control_pct, window_days=body.window_days)
        return _out(campaign)


@operation(bp, "/audience-count", "POST", summary="How many members these audience rules select now (one count)",
           auth="ops_marketing", body=AudienceIn, response=CountOut,
           errors=(*_MARKETING, "campaign.invalid_audience"))
def audience_count(body: AudienceIn) -> CountOut:
    rt = runtime()
    with transaction() as session:
        rules = audiences.Audience.from_dict(body.model_dump())
        return CountOut(members=audiences.count(session, rules, rt.now()),
                        segments_month=audiences.latest_month(session))


@operation(bp, "", "GET", summary="Campaigns, newest first", auth="ops", query=ListQuery, response=CampaignsOut)
def list_campaigns(query: ListQuery) -> CampaignsOut:
    with transaction() as session:
        return CampaignsOut(campaigns=[_out(c) for c in campaigns.list_all(session, query.status)])


@operation(bp, "/<int:campaign_id>", "GET", summary="One campaign", auth="ops", response=CampaignOut,
           errors=_NOT_FOUND)
def get_campaign(campaign_id: int) -> CampaignOut:
    with transaction() as session:
        return _out(campaigns.get(session, campaign_id))


@operation(bp, "/<int:campaign_id>/launch", "POST",
           summary="Launch a draft: running now (its audience drawn and messaged by the sends workers), or scheduled",
           auth="ops_marketing", response=CampaignOut,
           errors=(*_MARKETING, *_NOT_FOUND, "campaign.invalid_state"))
def launch(campaign_id: int) -> CampaignOut:
    rt = runtime()
    with transaction() as session:
        launched = campaigns.launch(session, campaign_id, rt.now())
        out = _out(launched.campaign)
    if launched.fanout:  # committed: a consumer finds it (the campaigns clock job re-sends a lost entry)
        sends.enqueue_fanout(rt.redis, "campaign", campaign_id)
    return out


@operation(bp, "/<int:campaign_id>/cancel", "POST", summary="Cancel: nothing more is assigned or delivered",
           auth="ops_marketing", response=CampaignOut, errors=(*_MARKETING, *_NOT_FOUND, "campaign.invalid_state"))
def cancel(campaign_id: int) -> CampaignOut:
    rt = runtime()
    with transaction() as session:
        return _out(campaigns.cancel(session, campaign_id, rt.now()))


@operation(bp, "/<int:campaign_id>/report", "GET",
           summary="The campaign's effect: treated against control, bought and spent within the window, uplift "
                   "with 95% intervals", auth="ops", response=ReportOut, errors=_NOT_FOUND)
def report(campaign_id: int) -> ReportOut:
    rt = runtime()
    with transaction() as session:
        r = campaigns.report(session, campaign_id, rt.now())

        def arm(a: Arm) -> ArmOut:
            return ArmOut(**asdict(a))

        def interval(i: Interval | None) -> IntervalOut | None:
            return None if i is None else IntervalOut(**asdict(i))

        return ReportOut(campaign_id=r.campaign.id, name=r.campaign.name, status=r.campaign.status,
                         window_days=r.campaign.window_days, treated=arm(r.treated), control=arm(r.control),
                         conversion_uplift=interval(r.conversion_uplift),
                         spend_uplift_fen=interval(r.spend_uplift_fen), methods=campaigns.METHODS,
                         windows_closed=r.windows_closed, as_of=r.as_of)
