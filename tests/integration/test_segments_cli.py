"""``mallapp segments run``: the segmentation run synchronously from a shell, printed as JSON."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta

import pytest
from factories import MALLAPP, cli_env
from sqlalchemy import select

from mallapp.domain import members, purchases
from mallapp.domain import merchants as merchant_service
from mallapp.domain.segments import MemberSnapshot, SegmentRun


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_segments_run_prints_the_run_and_writes_the_snapshots(rt, settings, tmp_path) -> None:
    with rt.sessions.begin() as s:
        member_id = members.sign_in(s, openid="o-cli", unionid=None, now=rt.now())[0].id
        merchant_id = merchant_service.create(s, "CLI Store", rt.now())[0].id
        purchases.record_purchase(s, rt.settings, merchant_id=merchant_id, member_id=member_id, receipt_no="c1",
                                  amount_fen=12_300, occurred_at=rt.now() - timedelta(days=3), now=rt.now())
    env = cli_env(tmp_path, MALL_DATABASE_URL=settings.database_url, MALL_REDIS_URL=settings.redis_url)
    done = subprocess.run([MALLAPP, "segments", "run"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["status"], out["members"]) == ("done", 1)
    assert out["counts"]["pyramid"]["vip"] == 1
    with rt.sessions() as s:
        assert s.get(SegmentRun, out["id"]).trigger == "cli"
        assert s.scalar(select(MemberSnapshot.spend_fen).where(MemberSnapshot.member_id == member_id)) == 12_300
