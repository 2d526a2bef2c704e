"""gunicorn's own log lines (start-up, workers booting and exiting) in mallapp's log format.

``gunicorn --logger-class mallapp.api.gunicorn_logging.Logger`` keeps gunicorn's handlers and levels
and swaps their formatter for :func:`mallapp.logs.formatter` in ``MALL_LOG_FORMAT``'s format, so its
lines carry the same UTC timestamp as the app's (gunicorn's own is in the machine's time zone).
"""

from __future__ import annotations

from gunicorn import glogging

from mallapp import logs
from mallapp.settings import SettingsError, load_settings


class Logger(glogging.Logger):
    def setup(self, cfg) -> None:
        super().setup(cfg)
        try:
            fmt = load_settings().log_format
        except SettingsError:  # the app reports it when a worker boots; gunicorn's lines stay readable
            fmt = "json"
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                if getattr(handler, "_gunicorn", False):
                    handler.setFormatter(logs.formatter(fmt))
