"""Settings: every one has a ``TIDINGS_*`` environment variable, the main ones a flag.

A flag given to ``tidings serve`` wins over the environment, which wins
over the default. Values are checked here, once, so a typo in a deploy
fails at start with a clear message instead of misbehaving later.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./data/tidings.db"
# PROTOCOL-v2 §3: uploaded files in a folder beside the default database.
DEFAULT_FILES_URL = "file://./data/files"


class SettingsError(ValueError):
    """A setting has a value the server cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Processes serving the port, each a node of the cluster (tidings/workers.py);
    # "auto" is one per core. More than one needs Redis and a server database.
    workers: int = 1
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    # Every Redis key and channel starts with it: several deployments can share a Redis.
    redis_prefix: str = "tidings:"
    # The Redis URL names one node of a Redis Cluster (docs/operations.md).
    redis_cluster: bool = False
    # With Redis: keep the chat list there too (exact, rebuilt from SQL when
    # lost). Off: every node reads it from SQL, which is exact as well.
    redis_chat_list: bool = True
    service_token: str | None = None
    # Each stored message and membership change is POSTed here, signed with the service token.
    webhook_url: str | None = None
    # Offline push (PROTOCOL-v2 §8). The VAPID key pair is made on first start
    # and kept in the database unless given here (base64url of the 32-byte
    # P-256 private key, or PEM); the subject names who runs the server.
    vapid_private_key: str | None = None
    vapid_subject: str = "mailto:admin@localhost"
    # Push endpoints on loopback or private networks (tests, closed networks).
    push_allow_private: bool = False
    # At most one push per user and conversation this often; the last state
    # of a burst goes out when the time is up.
    push_collapse_seconds: float = 5.0
    push_max_subscriptions: int = 20
    # Messages: the contract's limits.
    max_body_chars: int = 4000
    time_separator_seconds: float = 300.0
    max_group_members: int = 5000
    # PROTOCOL-v2 §4: a sender may recall a message this long after sending it
    # (a group's owner and admins any time), and edit a text this long (0: never).
    recall_seconds: float = 120.0
    edit_seconds: float = 86400.0
    # WebSocket: the contract's timeouts and bounds.
    auth_timeout_seconds: float = 10.0
    idle_timeout_seconds: float = 60.0
    max_frame_bytes: int = 64 * 1024
    # Frames queued for one connection beyond what its socket accepts. One
    # commit can queue up to write_batch_max frames on a connection in one go,
    # so this must be larger; a reader that falls further behind is cut (1013).
    send_queue_frames: int = 4096
    # Where uploaded files' bytes go (tidings.files.url): file://FOLDER (relative
    # to the working directory, like the default database) or s3://BUCKET/PREFIX?endpoint=...
    files_url: str = DEFAULT_FILES_URL
    # PROTOCOL-v2 §3: the largest upload; how long a signed link works; how long
    # a file no message refers to is kept. Uploads per user per minute, per node
    # (0: no limit).
    max_file_bytes: int = 25 * 1024 * 1024
    file_url_ttl: float = 3600.0
    file_orphan_seconds: float = 86400.0
    rate_limit_uploads: float = 60.0
    # The HMAC key of signed file links. Unset (the default): a random key made
    # once and kept in the database (server_secrets), so every node shares it.
    file_url_secret: str | None = None
    # HTTP.
    max_http_body_bytes: int = 256 * 1024
    # Abuse limits. Failed logins per client address per minute (a slow brute
    # force gets `rate_limited`); open sockets per user across all nodes (0: no limit).
    login_failures_per_minute: int = 20
    max_connections_per_user: int = 100
    # Browser WebSockets: origins allowed besides the server's own (comma-separated,
    # "*" for any). Clients that send no Origin (apps, servers) are not affected.
    allowed_origins: str = ""
    # Behind a reverse proxy: take the client address from X-Forwarded-For.
    trust_forwarded_for: bool = False
    # Rate limits in messages per second, 0 turns one off. Generous enough for
    # bots and load tests, low enough that one client cannot flood the writer.
    rate_limit_connection: float = 1000.0
    rate_limit_user: float = 2000.0
    # Storage: SQLite's synchronous pragma; FULL makes an ack survive power loss,
    # NORMAL survives a crash of the process but not of the machine.
    sqlite_synchronous: str = "FULL"
    # The largest group commit; 0: by database (``largest_batch``).
    write_batch_max: int = 0
    # PostgreSQL: hash partitions of the messages table, set when it is created.
    pg_partitions: int = 16
    # Message search through a text index kept beside the send path (SQLite:
    # FTS5 in a file of its own; PostgreSQL: pg_trgm). Off: every search scans
    # the caller's conversations, and the indexer's CPU goes to sends instead
    # (docs/benchmarks.md, stop 19: private msgs/s ~0.75 on one core with it).
    search_index: bool = True
    # Issue 23 §3: each node moves messages older than this (seconds; "180d",
    # "12h", "30m" or a number of seconds) into Parquet files in the blob store
    # every ``archive_every_seconds``; 0 (the default) archives only when
    # ``tidings archive`` runs. Reads go through the archive either way.
    archive_after_seconds: float = 0.0
    archive_every_seconds: float = 3600.0
    log_level: str = "INFO"
    # "text" for people, "json" for log pipelines: one JSON object per line.
    log_format: str = "text"
    # Password hashing cost (argon2id); the defaults are argon2-cffi's (RFC 9106 low-memory).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``TIDINGS_*`` variables, then ``overrides`` (flags) that are not None."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in fields(cls):
            raw = env.get(f"TIDINGS_{item.name.upper()}")
            if raw is not None and raw != "":
                parse = _PARSERS.get(item.name)
                values[item.name] = (
                    parse(raw)
                    if parse is not None
                    else _coerce(item.name, raw, cls.__dataclass_fields__[item.name].type)
                )
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        settings.check()
        return settings

    def with_(self, **changes: Any) -> Settings:
        settings = replace(self, **changes)
        settings.check()
        return settings

    @property
    def largest_batch(self) -> int:
        """The largest group commit: ``write_batch_max``, or by database. On
        PostgreSQL and MySQL a batch costs mostly its round trips and the event
        loop's turns between them, whatever its size: 3000 over 1000 gave about
        1.15x the closed-loop msgs/s on both and kept up with an open 10,000/s
        on PostgreSQL. On SQLite (one thread, no round trips) it gained nothing
        and made a rare long stall longer (docs/benchmarks.md, stop 38)."""
        if self.write_batch_max:
            return self.write_batch_max
        return 1000 if self.database_url.startswith("sqlite") else 3000

    def check(self) -> None:
        if self.redis_url and "," in self.redis_url and not self.redis_cluster:
            raise SettingsError(
                "TIDINGS_REDIS_URL names several servers only with TIDINGS_REDIS_CLUSTER=true"
            )
        if self.redis_cluster and ("{" in self.redis_prefix or "}" in self.redis_prefix):
            raise SettingsError("TIDINGS_REDIS_PREFIX must not contain { or } on a Redis Cluster")
        if not 0 <= self.port <= 65535:
            raise SettingsError("TIDINGS_PORT must be 0 to 65535 (0: any free port)")
        if self.workers < 1:
            raise SettingsError("TIDINGS_WORKERS must be at least 1, or auto (one per core)")
        positive = (
            "max_body_chars",
            "max_group_members",
            "max_frame_bytes",
            "send_queue_frames",
            "max_http_body_bytes",
            "pg_partitions",
            "argon2_time_cost",
            "argon2_memory_kib",
            "max_file_bytes",
            "file_url_ttl",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise SettingsError(f"TIDINGS_{name.upper()} must be positive")
        if self.webhook_url and not self.service_token:
            raise SettingsError(
                "TIDINGS_WEBHOOK_URL needs TIDINGS_SERVICE_TOKEN: webhooks are signed with it"
            )
        if self.write_batch_max < 0:
            raise SettingsError("TIDINGS_WRITE_BATCH_MAX must be positive, or 0 (by database)")
        if self.send_queue_frames <= self.largest_batch:
            raise SettingsError(
                "TIDINGS_SEND_QUEUE_FRAMES must be larger than TIDINGS_WRITE_BATCH_MAX: "
                "one commit may queue that many frames on a connection at once"
            )
        for name in (
            "rate_limit_connection",
            "rate_limit_user",
            "time_separator_seconds",
            "recall_seconds",
            "edit_seconds",
            "login_failures_per_minute",
            "max_connections_per_user",
            "file_orphan_seconds",
            "rate_limit_uploads",
            "push_collapse_seconds",
            "archive_after_seconds",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"TIDINGS_{name.upper()} must not be negative")
        if self.file_url_secret is not None and len(self.file_url_secret) < 16:
            raise SettingsError("TIDINGS_FILE_URL_SECRET must have at least 16 characters")
        if self.archive_every_seconds <= 0:
            raise SettingsError("TIDINGS_ARCHIVE_EVERY_SECONDS must be positive")
        if self.push_max_subscriptions < 1:
            raise SettingsError("TIDINGS_PUSH_MAX_SUBSCRIPTIONS must be positive")
        if not self.vapid_subject.startswith(("mailto:", "https://")):
            raise SettingsError("TIDINGS_VAPID_SUBJECT must be a mailto: or https: URL (RFC 8292)")
        if not self.files_url.startswith(("file://", "s3://")):
            raise SettingsError("TIDINGS_FILES_URL must start with file:// or s3://")
        if self.log_format not in ("text", "json"):
            raise SettingsError("TIDINGS_LOG_FORMAT must be text or json")
        if self.sqlite_synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise SettingsError("TIDINGS_SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")


def parse_workers(raw: str) -> int:
    """``auto`` (one worker per core, as ``os.cpu_count()`` sees them) or a count."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(
            f"TIDINGS_WORKERS={raw!r} is not a count of processes or auto"
        ) from None


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(raw: str) -> float:
    """Seconds from ``180d``, ``12h``, ``30m``, ``45s``, ``2w`` or a plain number of seconds."""
    text = raw.strip().lower()
    scale = _UNITS.get(text[-1:])
    number = text[:-1] if scale is not None else text
    try:
        value = float(number) * (scale or 1)
    except ValueError:
        raise SettingsError(
            f"{raw!r} is not a duration: a number with s, m, h, d or w (180d, 12h)"
        ) from None
    if value < 0:
        raise SettingsError(f"{raw!r}: a duration must not be negative")
    return value


def _archive_after(raw: str) -> float:
    try:
        return parse_duration(raw)
    except SettingsError as exc:
        raise SettingsError(f"TIDINGS_ARCHIVE_AFTER_SECONDS: {exc}") from None


# Settings whose text is not just their type's: parsed by their own function.
_PARSERS = {"workers": parse_workers, "archive_after_seconds": _archive_after}


def _coerce(name: str, raw: str, kind: object) -> Any:
    text = str(kind)
    try:
        if text.startswith("bool"):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if text.startswith("int"):
            return int(raw)
        if text.startswith("float"):
            return float(raw)
    except ValueError:
        raise SettingsError(f"TIDINGS_{name.upper()}={raw!r} is not a {text}") from None
    return raw
