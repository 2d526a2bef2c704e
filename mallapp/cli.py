"""The ``mallapp`` command line: run the demo, manage the schema, create merchants, run the clock's jobs."""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import sys
import time

import click

from mallapp.domain.ops import ROLES as OPS_ROLES
from mallapp.processes import PROCESSES, procfile, runner
from mallapp.settings import DEMO_SETTINGS_FILE, SettingsError, load_settings


def _settings(environ: dict[str, str] | None = None):
    try:
        return load_settings(environ=environ)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Operate a mallapp installation."""


@main.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply Alembic migrations up to REVISION."""
    from mallapp import schema
    from mallapp.runtime import database_url

    url = database_url(_settings())
    schema.upgrade(url, revision)
    click.echo(f"schema at {schema.current(url)}")


@main.group()
def merchants() -> None:
    """Merchant accounts."""


@merchants.command("create")
@click.argument("name")
def merchants_create(name: str) -> None:
    """Create a merchant; its API key is printed once, as the last line."""
    from mallapp.domain import merchants as service
    from mallapp.runtime import build_runtime

    rt = build_runtime(_settings())
    try:
        with rt.sessions.begin() as session:
            merchant, key = service.create(session, name, rt.now())
            click.echo(f"merchant {merchant.id} {merchant.name!r} created; its API key (shown once):")
    finally:
        rt.close()
    click.echo(key)


@main.group("ops")
def ops_group() -> None:
    """Operations staff accounts."""


@ops_group.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(OPS_ROLES), required=True,
              help="admin: everything; marketing: segments, reports, campaigns; desk: the service desk "
                   "(members, points adjustments, gift hand-over); viewer: reads health, presence and reports")
@click.option("--password-stdin", is_flag=True, help="read the password from the first line of stdin")
def ops_create_user(username: str, role: str, password_stdin: bool) -> None:
    """Create an ops user; a generated password is printed once, as the last line."""
    from mallapp.db import make_engine, make_sessionmaker, utcnow
    from mallapp.domain import auth, ops
    from mallapp.errors import MallError
    from mallapp.runtime import database_url

    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else auth.generate_password()
    # Only the database is needed: no Redis (the embedded one would start a server for nothing).
    engine = make_engine(database_url(_settings()))
    try:
        with make_sessionmaker(engine).begin() as session:
            user = ops.create_user(session, username, role, password, utcnow())
            user_id, role = user.id, user.role
    except MallError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        engine.dispose()
    if password_stdin:
        click.echo(f"ops user {user_id} {username.strip()!r} ({role}) created")
    else:
        click.echo(f"ops user {user_id} {username.strip()!r} ({role}) created; its password (shown once):")
        click.echo(password)


@main.group()
def jobs() -> None:
    """The clock's jobs (mallapp clock runs them on schedule)."""


@jobs.command("list")
def jobs_list() -> None:
    """Each job: its schedule, misfire grace, what it does, and its last run."""
    from mallapp.processes import clock as scheduler
    from mallapp.runtime import build_runtime

    rt = build_runtime(_settings())
    try:
        last = scheduler.last_runs(rt.redis)
    finally:
        rt.close()
    for job in scheduler.JOBS:
        click.echo(f"{job.name:<24} {job.describe():<32} grace {job.misfire_grace_s}s  lock {job.lock_ttl_s:g}s  "
                   f"{job.summary}")
        run = last.get(job.name)
        click.echo(f"{'':<24} last run: " + ("never" if run is None else
                   f"{run['outcome']} at {run['started_at']}, {run['count']} in {run['seconds']}s"
                   + (f" ({run['error']})" if run["error"] else "")))


@jobs.command("run")
@click.argument("name")
def jobs_run(name: str) -> None:
    """Run job NAME once now (skipped if a clock is running it this moment).

    A run killed mid-way leaves its lock for at most its short TTL (it is renewed only while the run
    lives); after that, this finishes what the killed run left.
    """
    from mallapp import logs
    from mallapp.processes import clock as scheduler
    from mallapp.runtime import build_runtime

    try:
        job = scheduler.find(name)
    except KeyError:
        names = ", ".join(j.name for j in scheduler.JOBS)
        raise click.ClickException(f"no job {name!r}; the jobs are: {names}") from None
    settings = _settings()
    logs.configure(settings.log_format, settings.log_level)
    rt = build_runtime(settings)
    try:
        result = scheduler.run_job(rt, job)
        left_ms = rt.redis.pttl(scheduler.lock_key(job.name)) if result.outcome == "skipped" else -1
    finally:
        rt.close()
    click.echo(f"{result.job}: {result.outcome}, {result.count} in {result.seconds:.2f}s"
               + (f" ({result.error})" if result.error else ""))
    if result.outcome == "skipped":
        click.echo(f"another run holds its lock; it lapses in {max(left_ms, 0) / 1000:.0f}s unless that run "
                   f"renews it (it does while alive, every {job.lock_ttl_s / 3:.0f}s)")
    if result.outcome in ("failed", "lost"):  # lost: stopped mid-way; the next run finishes it
        sys.exit(1)


@main.group("segments")
def segments_group() -> None:
    """The member segmentation (the clock runs it nightly as member-segments)."""


@segments_group.command("run")
def segments_run() -> None:
    """Run the segmentation now, in this process, and print the run as JSON (status, parameters, counts)."""
    import json

    from mallapp import logs
    from mallapp.domain import member_reports, segments
    from mallapp.runtime import build_runtime

    settings = _settings()
    logs.configure(settings.log_format, settings.log_level)
    rt = build_runtime(settings)
    started = time.perf_counter()
    try:
        now = rt.now()
        with rt.sessions.begin() as session:
            run_id = segments.start(session, settings, now, trigger="cli").id
        try:
            with rt.sessions.begin() as session:
                row = segments.run(session, settings, now, trigger="cli", run_id=run_id)
                member_reports.precompute(session, settings, row.month, now)
                out = {"id": row.id, "status": row.status, "month": row.month.isoformat(),
                       "as_of": row.as_of.isoformat(), "members": row.members, "counts": row.counts,
                       "parameters": row.parameters}
        except Exception as exc:
            with rt.sessions.begin() as session:
                segments.fail(session, run_id, rt.now(), f"{type(exc).__name__}: {exc}")
            raise click.ClickException(f"segment run {run_id} failed: {type(exc).__name__}: {exc}") from None
    finally:
        rt.close()
    out["seconds"] = round(time.perf_counter() - started, 3)
    click.echo(json.dumps(out, ensure_ascii=False, sort_keys=True))


@main.group("dead-letters")
def dead_letters_group() -> None:
    """Stream entries the consumers set aside after failing them --max-deliveries times."""


def _dead_letters_runtime():
    from mallapp.runtime import build_runtime

    return build_runtime(_settings())


def _known_stream(rt, stream: str) -> str:
    from mallapp.domain import dead_letters
    from mallapp.errors import MallError

    try:
        return dead_letters.known_stream(rt.settings, stream)
    except MallError as exc:
        raise click.ClickException(exc.message) from None


@dead_letters_group.command("list")
@click.argument("stream", required=False)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 500), help="the newest, per stream")
def dead_letters_list(stream: str | None, limit: int) -> None:
    """The entries set aside from STREAM (default: every consumer's stream), newest first."""
    from mallapp.domain import dead_letters

    rt = _dead_letters_runtime()
    try:
        names = [_known_stream(rt, stream)] if stream else dead_letters.consumer_streams(rt.settings)
        for name in names:
            click.echo(f"{name}: {dead_letters.count(rt.redis, name)} set aside")
            for d in dead_letters.listing(rt.redis, name, limit):
                at = d.at.isoformat(timespec="seconds") if d.at else "?"
                click.echo(f"  {d.id}  was {d.original_id}  group {d.group}  {d.deliveries} deliveries  {at}")
                click.echo(f"    error: {d.error}")
                click.echo(f"    fields: {d.fields}")
    finally:
        rt.close()


@dead_letters_group.command("replay")
@click.argument("stream")
@click.option("--id", "ids", multiple=True, help="a dead-letter id to put back (repeatable); default: all")
def dead_letters_replay(stream: str, ids: tuple[str, ...]) -> None:
    """Put STREAM's dead letters back on it for its group to read again (once the cause is fixed)."""
    from mallapp.domain import dead_letters

    rt = _dead_letters_runtime()
    try:
        replayed = dead_letters.replay(rt.redis, _known_stream(rt, stream), list(ids) or None)
    finally:
        rt.close()
    click.echo(f"{stream}: {replayed} put back")


def _process_command(process) -> None:
    @main.command(process.name, help=process.summary, add_help_option=False,
                  context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def command(args: tuple[str, ...]) -> None:
        runner.run(process, args)


for _process in PROCESSES:
    _process_command(_process)


@main.command("procfile")
def procfile_command() -> None:
    """Print the Procfile: the release step, the web server and every process."""
    click.echo(procfile(), nl=False)


def _port_in_use(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails because something already listens there."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers will bind (SO_REUSEADDR): a port left in TIME_WAIT is free, one listened on is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def _check_ports(host: str, ports: list[tuple[int, str]]) -> None:
    """Exit with one line naming the first port taken and the flag that moves it, before anything starts."""
    seen: dict[int, str] = {}
    for port, flag in ports:
        if port in seen:
            click.echo(f"mallapp demo: port {port} is given to both {seen[port]} and {flag}; "
                       f"choose another with {flag}", err=True)
            sys.exit(1)
        seen[port] = flag
        if _port_in_use(host, port):
            click.echo(f"mallapp demo: port {port} is in use; choose another with {flag}", err=True)
            sys.exit(1)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
@click.option("--emulator-port", default=8011, show_default=True, type=int)
@click.option("--carpark-port", default=8012, show_default=True, type=int, help="the car-park emulator's port")
@click.option("--live-port", default=8001, show_default=True, type=int, help="the live channel's WebSocket port")
@click.option("--beacon-traffic/--no-beacon-traffic", default=True, show_default=True,
              help="replay demo shoppers' walks through gateway listeners")
@click.option("--car-traffic/--no-car-traffic", default=True, show_default=True,
              help="drive demo cars in and out of the car park; drivers pay by plate")
def demo(host: str, port: int, workers: int, emulator_port: int, carpark_port: int, live_port: int,
         beacon_traffic: bool, car_traffic: bool) -> None:
    """Run the whole system on the embedded default: SQLite, embedded Redis, the WeChat and car-park emulators,
    the demo mall."""
    from mallapp import logs
    from mallapp.devtools import demo as demo_mall
    from mallapp.devtools import demo_graph, demo_parking
    from mallapp.devtools.carpark_emulator import CarParkEmulator
    from mallapp.devtools.cars import CarTraffic
    from mallapp.devtools.servers import stop_process
    from mallapp.devtools.wechat_emulator import WeChatEmulator
    from mallapp.domain.parking.tariff import parse_tariff
    from mallapp.runtime import build_runtime, start_embedded_redis

    # The demo's settings (config/demo.toml) under any overlay of the caller's; every process started
    # here inherits them.
    env = dict(os.environ)
    env["MALL_CONFIG"] = os.pathsep.join(f for f in (str(DEMO_SETTINGS_FILE), os.environ.get("MALL_CONFIG")) if f)
    settings = _settings(env)
    # Every port free before anything starts: a taken one is one line, and nothing is left running.
    ports = [(port, "--port"), (live_port, "--live-port")]
    if not settings.wechat.secret or "MALL_WECHAT_API_BASE" not in os.environ:
        ports.append((emulator_port, "--emulator-port"))
    if not settings.carpark.api_base:
        ports.append((carpark_port, "--carpark-port"))
    _check_ports(host, ports)
    if not settings.redis_url:
        redis = start_embedded_redis(settings)
        env["MALL_REDIS_URL"] = f"unix://{redis.socket_file}"
    emulator = None
    if not settings.wechat.secret or "MALL_WECHAT_API_BASE" not in os.environ:
        emulator = WeChatEmulator(settings.wechat.appid, demo_mall.EMULATOR_SECRET, port=emulator_port)
        emulator.start()
        env.update(MALL_WECHAT_API_BASE=emulator.base_url, MALL_WECHAT_SECRET=demo_mall.EMULATOR_SECRET)
        if not settings.wechatpay.mchid:
            # WeChat Pay against the same emulator, with dev keys kept under var/; it notifies this demo's API.
            from mallapp.devtools import wechatpay_keys

            env.update(wechatpay_keys.demo_environment(
                emulator, settings.var_path / "wechatpay-dev",
                notify_url=f"http://127.0.0.1:{port}/api/v1/parking/wechatpay/notify"))
    carpark = None
    if not settings.carpark.api_base:
        # The car park's system, emulated: it bills with the demo car park's own tariff and posts its
        # signed entry and exit notifications to this demo's webhook.
        carpark = CarParkEmulator(demo_parking.DEMO_CARPARK_APP_ID, demo_parking.DEMO_CARPARK_SECRET, port=carpark_port,
                                  park_code=demo_parking.DEMO_PARK_CODE,
                                  levels={code: spaces for code, _, _, spaces in demo_parking.DEMO_LEVELS},
                                  webhook_url=f"http://127.0.0.1:{port}/api/v1/parking/carpark/notify",
                                  tariff=parse_tariff(demo_parking.DEMO_TARIFF), tz=settings.mall.tz)
        carpark.start()
        env.update(MALL_CARPARK_API_BASE=carpark.base_url, MALL_CARPARK_APP_ID=demo_parking.DEMO_CARPARK_APP_ID,
                   MALL_CARPARK_SECRET=demo_parking.DEMO_CARPARK_SECRET)
    env.setdefault("MALL_LOG_FORMAT", "text")
    logs.configure(env["MALL_LOG_FORMAT"], settings.log_level)

    from mallapp import schema
    from mallapp.runtime import database_url

    schema.upgrade(database_url(settings))
    rt = build_runtime(load_settings(environ=env))
    try:
        lines = demo_mall.seed(rt)
        lines.append(demo_parking.seed_parking(rt))
        lines.append(demo_graph.seed_graph(rt))  # after the stores and the bays it names
        if emulator is not None:
            demo_mall.grant_recorded_quotas(rt, emulator)
    finally:
        rt.close()

    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"{host}:{port}",
         # gunicorn's own lines (start-up, workers) in mallapp's format, with its UTC timestamp
         "--logger-class", "mallapp.api.gunicorn_logging.Logger", "mallapp:create_app()"],
        env=env)
    base = f"http://{host}:{port}"
    # Every process of the Procfile, as production runs them (the live channel on the demo's port),
    # and demo shoppers' walks through the gateway listener (beacons/, on bleak's replay backend).
    demo_args = {"live": ["--host", host, "--port", str(live_port)]}
    children = [subprocess.Popen([sys.executable, "-m", "mallapp", p.name, *demo_args.get(p.name, [])], env=env)
                for p in PROCESSES]
    if beacon_traffic:
        children.insert(0, subprocess.Popen([sys.executable, "-m", "mallapp.devtools.walks", "--backend-url",
                                             f"http://127.0.0.1:{port}"], env=env))
    traffic = None
    if car_traffic and carpark is not None and emulator is not None and "MALL_WECHATPAY_MCHID" in env:
        traffic = CarTraffic(carpark, emulator, f"http://127.0.0.1:{port}",
                             levels={code: spaces for code, _, _, spaces in demo_parking.DEMO_LEVELS},
                             member_plate=demo_parking.DEMO_PLATE[1])
        traffic.start()
    click.echo("")
    click.echo(f"mallapp is running at {base}")
    click.echo(f"  API page:        {base}/api/v1/docs")
    click.echo(f"  consoles:        {base}/console/  (operations {base}/console/ops/, merchant {base}/console/merchant/, "
               f"till {base}/console/till/, host {base}/console/host/)")
    click.echo(f"  health:          {base}/healthz")
    click.echo(f"  live channel:    ws://{host}:{live_port}{settings.live.path}  (a member token in "
               "Authorization: Bearer; messages arrive as JSON frames)")
    if emulator is not None:
        click.echo(f"  WeChat emulator: {emulator.base_url}  (a wx.login code: "
                   f"curl -X POST {emulator.base_url}/__emulator/login)")
        if "MALL_WECHATPAY_MCHID" in env and not settings.wechatpay.mchid:
            click.echo(f"  WeChat Pay:      emulated by it (merchant {env['MALL_WECHATPAY_MCHID']}); the payer pays: "
                       f"curl -X POST {emulator.base_url}/__emulator/wechatpay/pay -d '{{\"out_trade_no\": \"...\"}}'")
    if carpark is not None:
        click.echo(f"  car-park emulator: {carpark.base_url}  (a car comes in: curl -X POST "
                   f"{carpark.base_url}/__emulator/drive-in -d '{{\"plate\": \"沪B12345\", \"bay\": \"B1-C007\"}}')")
    if traffic is not None:
        click.echo(f"  car traffic:     demo cars come and go and their drivers pay by plate; "
                   f"{demo_parking.DEMO_PLATE[1]} stays in {CarTraffic.member_bay} (--no-car-traffic to stop it)")
    for line in lines:
        click.echo(f"  {line}")
    click.echo(f"  live presence:   curl -H 'Authorization: Bearer <ops token>' {base}/api/v1/ops/presence"
               "  (POST /api/v1/ops/auth with the demo ops user for a token)")
    if beacon_traffic:
        click.echo("  beacon traffic:  demo shoppers walk past the gateways every few minutes "
                   "(--no-beacon-traffic to stop it)")
    click.echo("Ctrl-C stops everything.")
    stop = {"now": False}

    def _stop(*_args) -> None:
        stop["now"] = True

    signal.signal(signal.SIGTERM, _stop)
    try:
        while not stop["now"] and web.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        if traffic is not None:
            traffic.stop()
        for child in children:
            stop_process(child)
        stop_process(web)
        if emulator is not None:
            emulator.stop()
        if carpark is not None:
            carpark.stop()
    sys.exit(0 if stop["now"] or web.returncode in (0, None, -signal.SIGTERM) else web.returncode)


@main.group("clv")
def clv_group() -> None:
    """Customer lifetime value: BG/NBD and Gamma-Gamma (docs/lifetime-value.md)."""


@clv_group.command("fit")
@click.option("--transactions", "path", required=True, type=click.Path(dir_okay=False),
              help="a CSV with a header naming the customer id, date and amount columns (customer_id, date, "
                   "amount, or the other names in docs/lifetime-value.md), or a CDNOW file "
                   "(id [sample] YYYYMMDD quantity amount)")
@click.option("--calibration-end", help="YYYY-MM-DD: the summaries' end (default: the last purchase's day)")
@click.option("--unit", type=click.Choice(["weeks", "days"]), default="weeks", show_default=True)
def clv_fit(path: str, calibration_end: str | None, unit: str) -> None:
    """Fit BG/NBD and Gamma-Gamma to a file of purchases; print the parameters as one JSON object."""
    import json
    import warnings

    from mallapp.domain import clv
    from mallapp.domain.clv_summary import read_transactions
    from mallapp.errors import MallError

    try:
        summary = clv.summarise(read_transactions(path), calibration_end=calibration_end, unit=unit)
        started = time.perf_counter()
        bg = clv.fit_bgnbd(summary.frequency, summary.recency, summary.T)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", clv.ZeroSpendWarning)
            gg = clv.fit_gamma_gamma(summary.frequency, summary.monetary)
        seconds = time.perf_counter() - started
    except MallError as exc:
        raise click.ClickException(f"{exc.message} ({exc.code})") from None
    except (OSError, ValueError, MemoryError) as exc:  # anything the readers did not foresee: still one line
        raise click.ClickException(f"cannot fit {path}: {exc}") from None
    for warning in caught:
        click.echo(f"warning: {warning.message}", err=True)
    click.echo(json.dumps({
        "bgnbd": {"r": bg.r, "alpha": bg.alpha, "a": bg.a, "b": bg.b, "log_likelihood": bg.log_likelihood},
        "gamma_gamma": {"p": gg.p, "q": gg.q, "gamma": gg.gamma},
        "customers": int(summary.ids.size),
        "repeat_customers": int((summary.frequency > 0).sum()),
        "fit_seconds": round(seconds, 4),
    }))


@clv_group.command("evaluate")
@click.option("--transactions", "path", required=True, type=click.Path(dir_okay=False),
              help="the purchases, as for `mallapp clv fit` (a CSV with a header, or a CDNOW file)")
@click.option("--calibration-end", help="YYYY-MM-DD: the end of the calibration period; the holdout runs from the "
                                       "next day to the last purchase's day (default: the middle of the data)")
@click.option("--unit", type=click.Choice(["weeks", "days"]), default="weeks", show_default=True)
@click.option("--folds", type=click.IntRange(2, 50), default=5, show_default=True, help="customer folds (outer and inner)")
@click.option("--seed", type=int, default=0, show_default=True, help="the folds' random seed")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (fields in docs/lifetime-value.md)")
def clv_evaluate(path: str, calibration_end: str | None, unit: str, folds: int, seed: int, as_json: bool) -> None:
    """How well BG/NBD and Gamma-Gamma predict held-out customers' holdout period, against baselines, and the
    next-purchase-due rule's k chosen by nested cross-validation (docs/lifetime-value.md)."""
    import json
    import warnings

    from mallapp.domain import clv_evaluate as evaluation
    from mallapp.domain.clv import ZeroSpendWarning
    from mallapp.domain.clv_summary import read_transactions
    from mallapp.errors import MallError

    try:
        rows = read_transactions(path)
        started = time.perf_counter()
        ids, days, amounts = zip(*rows, strict=True)
        data = evaluation.split_in_time(ids, days, amounts, calibration_end=calibration_end, unit=unit)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ZeroSpendWarning)
            out = evaluation.evaluate(data, folds=folds, seed=seed)
        out["seconds"] = round(time.perf_counter() - started, 3)
    except MallError as exc:
        raise click.ClickException(f"{exc.message} ({exc.code})") from None
    except (OSError, ValueError, MemoryError) as exc:
        raise click.ClickException(f"cannot evaluate {path}: {exc}") from None
    if as_json:
        click.echo(json.dumps(out))
        return
    for line in evaluation.table(out):
        click.echo(line)

if __name__ == "__main__":
    main()
