"""Member campaigns: an audience, an offer (or a sequence of them), a timing, a control group, the effect measured.

- :mod:`.models`: the tables (``campaigns``, ``campaign_assignments``);
- :mod:`.audience`: the rules, as one SQL query (and the live count);
- :mod:`.service`: create, launch, cancel, and what a member received (the service desk's record);
- :mod:`.delivery`: the control draw, the batches the ``sends`` consumers deliver, the ``campaigns`` clock job;
- :mod:`.report` and :mod:`.stats`: treated against control, with confidence intervals.

See docs/campaigns.md.
"""

from mallapp.domain.campaigns.audience import Audience, count
from mallapp.domain.campaigns.delivery import assign, deliver_batch, draw, fan_out, message_key, tick
from mallapp.domain.campaigns.models import ARMS, STATUSES, TIMINGS, Assignment, Campaign
from mallapp.domain.campaigns.report import METHODS, Report, report
from mallapp.domain.campaigns.service import (
           OFFER_KINDS,
           Launched,
           cancel,
           create,
           get,
           launch,
           list_all,
           received,
)

__all__ = ["ARMS", "METHODS", "OFFER_KINDS", "STATUSES", "TIMINGS", "Assignment", "Audience", "Campaign", "Launched",
           "Report", "assign", "cancel", "count", "create", "deliver_batch", "draw", "fan_out", "get", "launch",
           "list_all", "message_key", "received", "report", "tick"]
