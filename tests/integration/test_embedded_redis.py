"""The embedded Redis of a one-machine run keeps its data across a restart."""

from __future__ import annotations

from mallapp.runtime import start_embedded_redis


def test_the_embedded_redis_keeps_an_append_only_file_and_its_data_survives_a_restart(settings, tmp_path):
    settings = settings.model_copy(update={"var_dir": str(tmp_path / "var")})
    redis = start_embedded_redis(settings)
    try:
        assert redis.config_get("appendonly") == {"appendonly": "yes"}
        assert redis.config_get("appendfsync") == {"appendfsync": "everysec"}
        redis.xadd("s", {"n": "1"})
        redis.xgroup_create("s", "g", id="0")
    finally:
        redis.shutdown(save=False, nosave=True)  # a crash: no snapshot written on the way down
    redis = start_embedded_redis(settings)
    try:
        assert redis.xlen("s") == 1 and redis.xinfo_groups("s")[0]["name"] == b"g"
    finally:
        redis.shutdown(nosave=True)
