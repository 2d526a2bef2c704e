"""Typed settings: ``mallapp/defaults.toml``, an optional overlay file, then ``MALL_*`` variables.

Read when called, never at import. Unknown keys and unknown ``MALL_*`` variables are errors,
so a typo fails at start-up instead of silently running with a default.
"""

from __future__ import annotations

import os
import tomllib
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# The production defaults ship inside the package (package data), so an installed mallapp finds them.
DEFAULTS_FILE = Path(__file__).resolve().parent / "defaults.toml"
# The repository's config/: the demo mall and its settings (a checkout only; not installed).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
# The demo's values (its mall's name and place, the emulator's appid, example coupons, gifts and a
# template): the overlay ``mallapp demo`` and the tests load.
DEMO_SETTINGS_FILE = CONFIG_DIR / "demo.toml"

# Variables that are not settings keys but are read by name.
# MALL_GATEWAY_KEY and MALL_SHARED_DATA belong to the gateway (python -m beacons) and the data-set tools.
_SPECIAL_ENV = {"MALL_CONFIG", "MALL_SECRET_KEY", "MALL_WECHAT_SECRET", "MALL_CARPARK_SECRET",
                "MALL_WECHATPAY_PRIVATE_KEY", "MALL_WECHATPAY_APIV3_KEY", "MALL_GATEWAY_KEY", "MALL_SHARED_DATA"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeChatSettings(_Section):
    appid: str
    api_base: str
    timeout_s: float = 5.0
    secret: str = ""

    @field_validator("api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class AuthSettings(_Section):
    token_ttl_s: int = Field(gt=0)
    card_ttl_s: int = Field(gt=0, le=3600)
    sign_in_attempts: int = Field(default=10, ge=1, le=1000)
    sign_in_window_s: int = Field(default=900, ge=1, le=86400)
    sign_in_attempts_per_username: int = Field(default=200, ge=1, le=100000)


class MallSettings(_Section):
    name: str
    timezone: str
    latitude: float = Field(ge=-90, le=90)
    longitude: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0)
    checkin_requires_location: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local_day(self, at: datetime) -> date:
        """The mall-local date of the instant ``at`` (rules about "today" go by it)."""
        return at.astimezone(self.tz).date()

    def day_bounds(self, day: date) -> tuple[datetime, datetime]:
        """The mall-local ``day`` as a UTC range [start, end)."""
        return (datetime.combine(day, time(0), tzinfo=self.tz).astimezone(UTC),
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz).astimezone(UTC))


class PointsSettings(_Section):
    fen_per_point: int = Field(gt=0)
    point_value_fen: int = Field(gt=0)
    birthday_multiplier_pct: int = Field(ge=100)
    expiry_policy: Literal["end_of_year", "never"] = "end_of_year"
    expiry_years_after: int = Field(ge=0, default=1)
    expiring_soon_days: int = Field(gt=0, default=60)
    tier_multipliers_pct: dict[str, int] = Field(default_factory=dict)


class CheckinSettings(_Section):
    points: int = Field(gt=0)
    streak_bonus: dict[int, int] = Field(default_factory=dict)


class BeaconSignalSettings(_Section):
    """[beacons.signal]: from a member's readings of a beacon to a distance (mallapp/domain/proximity/engine.py)."""

    rssi_filter: Literal["trimmed_mean", "max", "median", "mean"] = "max"
    filter_window_s: float = Field(gt=0, le=60)
    path_loss_exponent: float = Field(gt=1, le=6)
    stale_repeats: int = Field(ge=2, le=20)


class BeaconZoneSettings(_Section):
    """[beacons.zones]: when a member enters and leaves a zone, per zone kind."""

    enter_store_m: float = Field(gt=0)
    enter_item_m: float = Field(gt=0)
    enter_area_m: float = Field(gt=0)
    dwell_store_s: float = Field(ge=0)
    dwell_item_s: float = Field(ge=0)
    dwell_area_s: float = Field(ge=0)
    exit_distance_factor: float = Field(ge=1)
    exit_timeout_s: float = Field(gt=0, le=600)


class BeaconCheckinSettings(_Section):
    """[beacons.checkin]: the automatic check-in on entering the mall."""

    min_updates: int = Field(ge=1)
    min_span_s: float = Field(ge=0)


class BeaconIngestSettings(_Section):
    """[beacons.ingest]: the limits on sighting batches, and the stream they are queued on."""

    member_batch_max: int = Field(gt=0, le=1000)
    gateway_batch_max: int = Field(gt=0, le=10000)
    member_max_age_s: float = Field(gt=0)
    gateway_max_age_s: float = Field(gt=0)
    max_future_skew_s: float = Field(ge=0)
    member_batches_per_minute: int = Field(gt=0)
    gateway_batches_per_minute: int = Field(gt=0)
    signature_max_age_s: int = Field(gt=0)
    stream_maxlen: int = Field(gt=1000)
    stream_partitions: int = Field(ge=1, le=256)


class BeaconHealthSettings(_Section):
    """[beacons.health]: when a beacon of the fleet is a problem."""

    silent_after_s: float = Field(gt=0)
    battery_low_mv: int = Field(ge=0)


class BeaconSettings(_Section):
    uuids: tuple[str, ...] = Field(min_length=1)
    identity_uuid: str
    identity_ttl_s: int = Field(ge=60, le=86400)
    signal: BeaconSignalSettings
    zones: BeaconZoneSettings
    checkin: BeaconCheckinSettings
    ingest: BeaconIngestSettings
    health: BeaconHealthSettings

    @field_validator("uuids", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # MALL_BEACONS_UUIDS=uuid1,uuid2
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value

    @field_validator("uuids")
    @classmethod
    def _canonical_uuids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_canonical_uuid(v) for v in value)

    @field_validator("identity_uuid")
    @classmethod
    def _canonical_identity(cls, value: str) -> str:
        return _canonical_uuid(value)


def _canonical_uuid(value: str) -> str:
    import uuid

    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise ValueError(f"{value!r} is not a UUID") from None


class DealsSettings(_Section):
    # A member counts as new for deals with the new_members rule this many days after joining.
    new_member_days: int = Field(gt=0, le=3650)
    # Characters in a coupon code (from a 31-letter alphabet: 10 characters are ~49 bits).
    coupon_code_length: int = Field(ge=8, le=16)
    # The clock reminds a member of an unused coupon this many hours before it expires (0: never).
    coupon_reminder_hours: int = Field(default=24, ge=0, le=24 * 14)


class PackCoupon(_Section):
    """One coupon of the new-member pack."""

    key: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    title: str = Field(min_length=1, max_length=80)
    text: str = Field(default="", max_length=1000)
    # As a deal's benefit: {kind = "amount_off", amount_fen = 1000}, percent_off/percent, gift/gift, bonus_points/points,
    # parking_hours/hours or parking_amount/amount_fen (funded from its store's merchant's parking quota; the
    # pack is given without it while that quota is used up).
    benefit: dict[str, Any]
    # The store (by name) whose till alone redeems it; omitted: a mall-wide coupon, issued by the pack's
    # house store and redeemed at the till of every participating store.
    store: str | None = None
    # A mall-wide coupon's participating stores (by name); omitted: every active store with a merchant.
    participating_stores: tuple[str, ...] | None = Field(default=None, max_length=500)
    # Minimum spend (满减) in fen: the till sends the purchase amount and a smaller one is refused.
    min_spend_fen: int | None = Field(default=None, gt=0, le=100_000_000)


class NewMemberPackSettings(_Section):
    enabled: bool = True
    # Pack coupons are usable for this many days after joining (the sources' first month).
    valid_days: int = Field(gt=0, le=366)
    # The store (by name) that redeems mall-wide pack coupons: the mall's service desk, run by a house merchant.
    # Required when a coupon names no store of its own.
    house_store: str | None = None
    coupons: tuple[PackCoupon, ...] = Field(default=(), max_length=10)

    @field_validator("coupons")
    @classmethod
    def _unique_keys(cls, value: tuple[PackCoupon, ...]) -> tuple[PackCoupon, ...]:
        keys = [c.key for c in value]
        if len(set(keys)) != len(keys):
            raise ValueError("pack coupon keys must be unique")
        return value

    @model_validator(mode="after")
    def _house_store_for_mall_wide_coupons(self) -> NewMemberPackSettings:
        mall_wide = [c.key for c in self.coupons if c.store is None]
        if mall_wide and not self.house_store:
            raise ValueError(f"house_store is required: coupons {', '.join(mall_wide)} name no store")
        return self


class BirthdaySettings(_Section):
    enabled: bool = True
    # Bonus points credited once a year, during the member's birthday month (the mall's time zone).
    gift_points: int = Field(gt=0)


class ReferralSettings(_Section):
    enabled: bool = True
    # Credited to the referrer on the referred member's first purchase.
    reward_points: int = Field(ge=0)
    # The points that first purchase earns also accrue to the referrer.
    accrue_purchase_points: bool = True


class SubscribeTemplate(_Section):
    """The WeChat subscribe-message template for one kind of message, and how its data is filled."""

    template_id: str = Field(pattern=r"^[\w-]{1,64}$")
    # WeChat data key (thing1, time2, ...) -> the message field that fills it: title, body, or a
    # field the message carries (a deal message: store, starts_at, ends_at, benefit).
    data: dict[str, str] = Field(min_length=1)


class NotificationsSettings(_Section):
    # Message kind -> its template; a kind without one goes to the inbox only.
    templates: dict[Literal["deal", "reminder", "queue", "reservation", "campaign"], SubscribeTemplate] = Field(default_factory=dict)
    # The mini-program page a deal message opens (the deal's id is appended as ?id=).
    deal_page: str = Field(default="pages/deals/detail", max_length=100)


class OffersSettings(_Section):
    # Proximity offers (mallapp.domain.offers): at most this many per member per mall-local day.
    max_pushes_per_day: int = Field(default=3, ge=0, le=100)
    # No proximity offer from quiet_start to quiet_end, mall time ("HH:MM"; equal times: none).
    quiet_start: str = Field(default="22:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_end: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # A dwell event older than this when the consumer reads it is dropped: the member has moved on.
    max_event_age_s: float = Field(default=300.0, gt=0)


class CampaignsSettings(_Section):
    # Member campaigns (mallapp.domain.campaigns): the control share and measurement window a new campaign
    # gets unless it says otherwise.
    control_pct: int = Field(default=10, ge=0, le=50)
    window_days: int = Field(default=30, ge=1, le=365)
    # No campaign message from quiet_start to quiet_end, mall time: it waits for quiet_end.
    quiet_start: str = Field(default="21:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    quiet_end: str = Field(default="09:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # At most this many campaign messages per member in any 7 days; one more waits until the oldest is 7 days old.
    max_per_week: int = Field(default=2, ge=1, le=50)
    # Members per batch entry on the sends stream (one transaction each).
    batch_size: int = Field(default=500, ge=1, le=5000)


class QueueBandSettings(_Section):
    """A default party-size band: its letter, its label and the party sizes it takes."""

    code: str = Field(pattern=r"^[A-Z]$")
    label: str = Field(min_length=1, max_length=40)
    min_party: int = Field(ge=1, le=100)
    max_party: int | None = Field(default=None, ge=1, le=100)  # None: no upper limit


class QueueSettings(_Section):
    # Restaurant queues (mallapp.domain.queueing): the bands a restaurant starts with (a manager may change them).
    bands: tuple[QueueBandSettings, ...] = Field(default=(
        QueueBandSettings(code="A", label="1-2 people", min_party=1, max_party=2),
        QueueBandSettings(code="B", label="3-4 people", min_party=3, max_party=4),
        QueueBandSettings(code="C", label="5+ people", min_party=5)), min_length=1, max_length=8)
    max_party: int = Field(default=20, ge=1, le=100)
    # A called ticket not seated within this many seconds lapses (the clock runs queueing.lapse_due).
    grace_s: int = Field(default=600, ge=0, le=24 * 3600)
    # The "n tables ahead" message goes when this many parties (or fewer) are ahead (0: never).
    near_tables_ahead: int = Field(default=3, ge=0, le=50)
    # The naive estimate, and the estimator's prior: this many seconds per party ahead.
    naive_seconds_per_party: int = Field(default=600, gt=0, le=7200)
    # The estimator learns from this many days of the restaurant's own history, recent days weighing more.
    history_days: int = Field(default=28, ge=1, le=366)
    half_life_days: float = Field(default=7.0, gt=0)
    # Time-of-day slots (minutes) and the pseudo-observations that pull a thin slot toward its band.
    slot_minutes: int = Field(default=60, ge=10, le=1440)
    shrinkage: float = Field(default=8.0, ge=0)
    # The mini-program page queue messages open; ?id=<ticket id> is appended.
    page: str = Field(default="pages/queue/ticket", max_length=100)


class RedisSettings(_Section):
    # [redis]: how long a command waits on Redis before it fails (a frozen server must not hold every web
    # worker), and how long connecting may take. The live channel's subscriber waits on reads by design;
    # it checks its connection every health_check_interval_s instead.
    socket_timeout_s: float = Field(default=1.0, gt=0, le=60)
    connect_timeout_s: float = Field(default=1.0, gt=0, le=60)
    health_check_interval_s: float = Field(default=30.0, ge=0, le=3600)


class DatabaseSettings(_Section):
    # [database]: how long connecting to PostgreSQL may take (libpq's connect_timeout: whole seconds, at
    # least 2), so a dead database host fails a request at once instead of after the kernel's minutes.
    connect_timeout_s: int = Field(default=5, ge=2, le=600)


class LiveSettings(_Section):
    # The live channel (mallapp live): open mini-programs hold a WebSocket at ``path``.
    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    path: str = Field(default="/api/v1/live", pattern=r"^/[\w/-]*$")
    # How often a connection's token is checked again: a revoked or expired token is closed by then.
    recheck_s: float = Field(default=60.0, gt=0)
    # More connections than this for one member are refused (one per open mini-program).
    max_connections_per_member: int = Field(default=5, ge=1, le=100)


class ReservationSettings(_Section):
    # Table reservations (mallapp.domain.reservations). Members book slots up to this many days ahead.
    horizon_days: int = Field(default=30, ge=1, le=366)
    # Parties larger than this cannot book (a manager's bands stay within it).
    max_party: int = Field(default=20, ge=1, le=100)
    # A member holds at most this many upcoming bookings, mall-wide (no hoarding of tables).
    max_upcoming_per_member: int = Field(default=5, ge=1, le=100)
    # The reminder goes this long before the slot starts (the clock runs reservations.remind_due).
    reminder_lead_minutes: int = Field(default=120, ge=0, le=7 * 24 * 60)
    # A booking not confirmed this long after its start is released and marked no_show.
    no_show_grace_minutes: int = Field(default=15, ge=0, le=24 * 60)
    # The mini-program page reservation messages open (?id=<reservation id> is appended).
    page: str = Field(default="pages/reservations/detail", max_length=100)


class SegmentSettings(_Section):
    """[segments]: the nightly member segmentation (mallapp.domain.segments, docs/segments.md)."""

    # The nightly run (clock job member-segments), mall time "HH:MM".
    run_at: str = Field(default="02:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # The rolling window of the activity facts, in months (ending with the run's mall-local day).
    window_months: int = Field(default=12, ge=1, le=60)
    # What makes a mall-local day a visit: a purchase, a check-in, a beacon mall visit.
    visit_sources: tuple[Literal["purchase", "checkin", "mall_visit"], ...] = Field(
        default=("purchase", "checkin", "mall_visit"), min_length=1)
    # T1-T4: "medians" cuts at the medians of the members with a purchase in the window; "absolute" at the values below.
    # Often = visits above the cut, much = spend above the cut.
    t_split: Literal["medians", "absolute"] = "medians"
    often_visits_over: int = Field(default=10, ge=0)
    much_spend_over_fen: int = Field(default=1_000_000, ge=0)
    # The pyramid's shares of the members with a purchase in the window, in percent (small: the rest).
    pyramid_vip_pct: float = Field(default=1.0, gt=0, lt=100)
    pyramid_major_pct: float = Field(default=4.0, gt=0, lt=100)
    pyramid_ordinary_pct: float = Field(default=15.0, gt=0, lt=100)
    # The one-off guard: what the pyramid (and RFM's M) rank. "cap_largest": the largest purchase counts at most
    # one_off_cap_ratio x the member's other purchases in the window together (or one_off_floor_fen if more);
    # "min_days": spend x min(1, purchase days / one_off_min_days); "none": the spend.
    one_off_guard: Literal["cap_largest", "min_days", "none"] = "cap_largest"
    one_off_cap_ratio: float = Field(default=1.0, gt=0)
    one_off_floor_fen: int = Field(default=50_000, ge=0)
    one_off_min_days: int = Field(default=4, ge=1)
    # Lifecycle: weakening when the T-tier drops against the previous month, when the days since the last
    # purchase exceed weakening_gap_factor x the member's own gap (mean or median of the gaps between purchase
    # days in the window; members with fewer than weakening_min_purchase_days purchase days use the mall's
    # median of those gaps), or when P(alive) is below weakening_p_alive_below (0: never).
    weakening_on_t_tier_drop: bool = True
    weakening_gap_factor: float = Field(default=2.0, gt=0)
    weakening_gap_stat: Literal["mean", "median"] = "median"
    weakening_min_purchase_days: int = Field(default=3, ge=2)
    weakening_p_alive_below: float = Field(default=0.3, ge=0, le=1)
    # Lost: no purchase for this many days (or none since joining this long ago).
    lost_days: int = Field(default=365, ge=1)
    # A reactivated member is active again this many days after reactivating (unless weakening by then).
    reactivated_days: int = Field(default=30, ge=1)
    # Which view sets members.tier (and so [points.tier_multipliers_pct]): "pyramid" (vip, major, ordinary, small),
    # "t_tier" (T1-T4) or "none" (tier left null).
    tier_view: Literal["pyramid", "t_tier", "none"] = "pyramid"
    # Lifetime value: over this many months, future months discounted at this monthly rate.
    clv_horizon_months: int = Field(default=12, ge=1, le=120)
    clv_monthly_discount: float = Field(default=0.01, ge=0, lt=1)
    # Below this many members with a repeat purchase the models are not fitted (no lifetime value stored).
    clv_min_repeat_buyers: int = Field(default=20, ge=1)
    # Gamma-Gamma is fitted on the repeat buyers' mean repeat spend capped at this percentile of it (100: no
    # cap): a few huge one-off baskets otherwise make the model's tail infinite (q <= 1) and no spend is modelled.
    # When Gamma-Gamma still cannot be fitted, each member's spend is their own mean pulled towards everyone's
    # (clv.shrunk_spend) with clv_spend_prior_days purchases' worth of the overall mean.
    clv_spend_cap_pct: float = Field(default=99.0, gt=50, le=100)
    clv_spend_prior_days: float = Field(default=2.0, gt=0)
    # next_purchase_due from the member's own median gap when they have at least this many purchase days in the
    # window, else from BG/NBD (the run's day + 365 / the purchases expected in the next 365 days). 0: never the
    # own gap, BG/NBD only (members without BG/NBD figures fall back to the own gap from
    # weakening_min_purchase_days). 0 was chosen by nested cross-validation (`mallapp clv evaluate`,
    # docs/lifetime-value.md "How well it predicts"); 1 is refused (one purchase day has no gap).
    next_due_min_purchase_days: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _pyramid_fits(self) -> SegmentSettings:
        if self.pyramid_vip_pct + self.pyramid_major_pct + self.pyramid_ordinary_pct >= 100:
            raise ValueError("pyramid_vip_pct + pyramid_major_pct + pyramid_ordinary_pct must stay below 100")
        return self

    @field_validator("next_due_min_purchase_days")
    @classmethod
    def _due_days(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (never the own gap) or at least 2 (one purchase day has no gap)")
        return value

    @field_validator("visit_sources", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        # MALL_SEGMENTS_VISIT_SOURCES=purchase,checkin
        return tuple(v.strip() for v in value.split(",") if v.strip()) if isinstance(value, str) else value

    @field_validator("visit_sources")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("visit_sources names a source twice")
        return value


class Gift(_Section):
    code: str = Field(pattern=r"^[a-z0-9_-]{1,40}$")
    name: str
    points: int = Field(gt=0)


class ReportsSettings(_Section):
    """[reports]: the thresholds of the member reports (mallapp.domain.member_reports)."""

    # "Visits often": more than this many visits in the segments' window (a year by default).
    frequent_visits: int = Field(default=10, ge=0, le=366)
    # "Spends much": more than this in the window, in fen (10,000 yuan).
    big_spender_fen: int = Field(default=1_000_000, ge=0)
    # A cohort "remains" when its member is active this many months after the month they joined.
    retention_months: int = Field(default=6, ge=1, le=24)
    # How many monthly cohorts the retention report keeps (the newest first).
    cohorts: int = Field(default=18, ge=1, le=60)
    # "Not bought lately": the default number of days since the last purchase.
    lapsed_days: int = Field(default=90, ge=1, le=3650)


class CarParkSystemSettings(_Section):
    """[carpark]: the car-park system (one per mall; each car park in it has its own park code)."""

    vendor: Literal["open_api"] = "open_api"
    # Empty: no car-park system (parking's endpoints answer 503 parking.unconfigured).
    api_base: str = ""
    app_id: str = ""
    secret: str = ""  # MALL_CARPARK_SECRET only
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    retries: int = Field(default=2, ge=0, le=5)
    # Notifications from the car park: their timestamp must be within this of our clock.
    notify_window_s: int = Field(default=300, ge=10, le=3600)


class WeChatPaySettings(_Section):
    """[wechatpay]: WeChat Pay API v3 for the merchant account (商户号) the mall collects with."""

    api_base: str = "https://api.mch.weixin.qq.com"
    mchid: str = ""  # empty: no WeChat Pay (only payments fully covered by benefits go through)
    merchant_serial: str = ""  # the serial number of the merchant API certificate
    private_key_path: str = ""  # the merchant API private key (PEM file)
    private_key: str = ""  # or the PEM text itself: MALL_WECHATPAY_PRIVATE_KEY only
    apiv3_key: str = ""  # MALL_WECHATPAY_APIV3_KEY only: decrypts notifications (32 bytes)
    platform_public_key_path: str = ""  # WeChat Pay's public key (PEM): verifies answers and notifications
    platform_serial: str = ""
    # Our public URL of POST /api/v1/parking/wechatpay/notify, as WeChat Pay reaches it.
    notify_url: str = ""
    timeout_s: float = Field(default=5.0, gt=0, le=60)
    # Or WeChat Pay's public key as PEM text (public, not a secret); wins over platform_public_key_path.
    platform_public_key: str = ""
    # Calls sent again after a timeout, a refused connection or a 5xx (every call is idempotent).
    retries: int = Field(default=1, ge=0, le=5)
    # Answers and notifications must be signed within this many seconds of our clock (WeChat Pay: 5 minutes).
    window_s: int = Field(default=300, ge=10, le=3600)

    @field_validator("api_base")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")


class ParkingSettings(_Section):
    """[parking]: sessions and payments (tariffs and benefit rules are per car park, in the database)."""

    # An unpaid WeChat Pay order is closed, and its points and coupons given back, after this long.
    pending_timeout_minutes: int = Field(default=15, ge=1, le=24 * 60)
    # A session with no exit notification after this long is closed by the clock (exit_kind unknown).
    stale_session_hours: int = Field(default=72, ge=1, le=24 * 90)
    # The nightly reconciliation of yesterday's payments with the car park, mall-local time.
    reconcile_at: str = Field(default="03:10", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # How many plates a member may bind, by members.tier (the MixC rule: 3, 2 or 1).
    plates_by_tier: dict[str, int] = Field(default_factory=lambda: {"vip": 3, "major": 2})
    plates_default: int = Field(default=1, ge=1, le=10)
    # A plate its member unbound cannot be bound by another member for this long (tier borrowing).
    plate_cooldown_hours: int = Field(default=72, ge=0, le=24 * 90)
    # New plate bindings a member may add in any 30 days (a plate already held does not count again).
    plate_binds_per_30_days: int = Field(default=5, ge=1, le=100)
    # The public free-space counts are kept this long, and a car park that did not answer (free spaces, bay
    # cameras) is not asked again for a third of it: members do not each wait out its timeout.
    free_spaces_cache_s: int = Field(default=30, ge=1, le=3600)

    # What a merchant pays the mall for one hour of parking-coupon quota, in fen (amount quota sells at
    # face value: 1 fen of quota for 1 fen).
    quota_price_fen_per_hour: int = Field(default=500, ge=0, le=100_000)


class TillSettings(_Section):
    phone_lookups_per_hour: int = Field(default=20, ge=1, le=1000)
    phone_ref_ttl_s: int = Field(default=600, ge=30, le=3600)


class WayfindingSettings(_Section):
    """[wayfinding]: what an edge of the walkable graph costs in seconds, and how far a bay snaps to the graph.

    Seconds are computed when the graph is imported or edited and stored with each edge, so a compiled graph
    is the same in every process; a change here takes effect at the next import or edit (docs/wayfinding.md).
    """

    # Walking pace along corridors, car-park aisles, ramps and the horizontal run of stairs (m/s).
    walk_speed_mps: float = Field(default=1.2, gt=0.2, le=3.0)
    # A lift: the average wait for the car, then the ride per floor crossed.
    lift_wait_s: float = Field(default=40.0, ge=0, le=600)
    lift_s_per_floor: float = Field(default=6.0, ge=0, le=120)
    # An escalator carries a standing rider along its run (the edge's length) at this speed (m/s).
    escalator_speed_mps: float = Field(default=0.5, gt=0.05, le=3.0)
    # Climbing or descending one floor's stairs, on top of walking the edge's length.
    stairs_s_per_floor: float = Field(default=20.0, ge=0, le=600)
    # A parking bay is reached from the nearest graph node on its level's floor no farther than this (metres);
    # a positioned bay farther from every node is refused on import (bay_not_snapped).
    bay_snap_m: float = Field(default=12.0, gt=0, le=200)


class Settings(_Section):
    database_url: str = ""
    redis_url: str = ""
    var_dir: str = "var"
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    max_body_bytes: int = Field(gt=0, default=65536)
    secret_key: str = ""
    wechat: WeChatSettings
    auth: AuthSettings
    mall: MallSettings
    points: PointsSettings
    checkin: CheckinSettings
    beacons: BeaconSettings
    deals: DealsSettings
    new_member_pack: NewMemberPackSettings
    birthday: BirthdaySettings
    referral: ReferralSettings
    notifications: NotificationsSettings = Field(default_factory=NotificationsSettings)
    offers: OffersSettings = Field(default_factory=OffersSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    live: LiveSettings = Field(default_factory=LiveSettings)
    redis: RedisSettings = Field(default_factory=RedisSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    reservations: ReservationSettings = Field(default_factory=ReservationSettings)
    campaigns: CampaignsSettings = Field(default_factory=CampaignsSettings)
    segments: SegmentSettings = Field(default_factory=SegmentSettings)
    gifts: tuple[Gift, ...] = ()
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    carpark: CarParkSystemSettings = Field(default_factory=CarParkSystemSettings)
    wechatpay: WeChatPaySettings = Field(default_factory=WeChatPaySettings)
    parking: ParkingSettings = Field(default_factory=ParkingSettings)
    till: TillSettings = Field(default_factory=TillSettings)
    wayfinding: WayfindingSettings = Field(default_factory=WayfindingSettings)

    def gift(self, code: str) -> Gift | None:
        return next((g for g in self.gifts if g.code == code), None)

    @property
    def var_path(self) -> Path:
        return Path(self.var_dir).resolve()


class SettingsError(Exception):
    """The configuration cannot be used; the message says which key and why."""


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _is_section(field: Any) -> bool:
    return isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)


def _env_key(model: type[BaseModel], key: str) -> list[str] | None:
    """The path of keys that ``key`` (a variable's name less ``MALL_``, lower case) names in ``model``:
    a key of its own, or a section's name, ``_`` and a key of that section (sub-sections alike:
    ``beacons_zones_enter_store_m`` is beacons.zones.enter_store_m)."""
    fields = model.model_fields
    if key in fields and not _is_section(fields[key]):
        return [key]
    for name, field in fields.items():
        if _is_section(field) and key.startswith(name + "_"):
            rest = _env_key(field.annotation, key[len(name) + 1:])
            if rest:
                return [name, *rest]
    return None


def _env_overrides(data: dict[str, Any], environ: dict[str, str]) -> dict[str, Any]:
    """Apply ``MALL_KEY``, ``MALL_SECTION_KEY`` and ``MALL_SECTION_SUBSECTION_KEY`` variables onto the parsed files."""
    out = dict(data)
    for name, raw in environ.items():
        if not name.startswith("MALL_") or name in _SPECIAL_ENV:
            continue
        path = _env_key(Settings, name[len("MALL_"):].lower())
        if path is None:
            raise SettingsError(f"{name} is not a mallapp setting")
        value: Any = raw
        for key in reversed(path):
            value = {key: value}
        out = _merge(out, value)
    return out


def load_settings(overrides: dict[str, Any] | None = None, environ: dict[str, str] | None = None,
                  overlay: str | Path | None = None) -> Settings:
    """Build settings from the files, the environment, then explicit overrides (tests).

    The files: the package's defaults, then ``overlay`` (the demo and the tests pass
    ``DEMO_SETTINGS_FILE``), then the files ``MALL_CONFIG`` names (several separated by ``os.pathsep``;
    later ones win).
    """
    environ = dict(os.environ if environ is None else environ)
    with DEFAULTS_FILE.open("rb") as fh:
        data = tomllib.load(fh)
    files = [(str(overlay), "overlay")] if overlay else []
    files += [(f, "MALL_CONFIG") for f in environ.get("MALL_CONFIG", "").split(os.pathsep) if f]
    for path, source in files:
        try:
            with open(path, "rb") as fh:
                data = _merge(data, tomllib.load(fh))
        except OSError as exc:
            raise SettingsError(f"{source} {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{source} {path}: {exc}") from exc
    data = _env_overrides(data, environ)
    if environ.get("MALL_SECRET_KEY"):
        data["secret_key"] = environ["MALL_SECRET_KEY"]
    if environ.get("MALL_WECHAT_SECRET"):
        data["wechat"] = {**data.get("wechat", {}), "secret": environ["MALL_WECHAT_SECRET"]}
    for variable, section, key in (("MALL_CARPARK_SECRET", "carpark", "secret"),
                                   ("MALL_WECHATPAY_PRIVATE_KEY", "wechatpay", "private_key"),
                                   ("MALL_WECHATPAY_APIV3_KEY", "wechatpay", "apiv3_key")):
        if environ.get(variable):
            data[section] = {**data.get(section, {}), key: environ[variable]}
    data = _merge(data, overrides or {})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        if any(err["type"] == "missing" for err in exc.errors()):
            problems += " (required keys have no default: set them in the file MALL_CONFIG names, or by MALL_* variables)"
        raise SettingsError(f"invalid settings: {problems}") from None
