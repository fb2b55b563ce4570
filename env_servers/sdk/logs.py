"""Structured logging: one JSON object per line on stderr (or plain text for people)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(time.time(), 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str | None = None, level: str | None = None) -> None:
    """Log format from the argument or GYMWIRE_LOG_FORMAT (json|text), level from GYMWIRE_LOG_LEVEL."""
    fmt = fmt or os.environ.get("GYMWIRE_LOG_FORMAT", "json")
    handler = logging.StreamHandler(sys.stderr)
    plain = logging.Formatter("%(asctime)s %(levelname)s %(message)s")
    handler.setFormatter(JsonFormatter() if fmt == "json" else plain)
    root = logging.getLogger("gymwire")
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("GYMWIRE_LOG_LEVEL", "INFO"))
    root.propagate = False
