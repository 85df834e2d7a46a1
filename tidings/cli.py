"""The ``tidings`` command: ``serve``, ``migrate``, ``restored`` and ``bench``.

Each command imports what it runs when it runs: ``serve --workers N`` is a
small supervisor that must not carry the app stack (tidings/workers.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import sys
from collections.abc import Sequence

from tidings import __version__, logs
from tidings.config import Settings, SettingsError, parse_duration, parse_workers
from tidings.errors import TidingsError, missing_extra

log = logging.getLogger("tidings")


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["bench"]:
        # The load generator has options of its own; it parses them itself.
        try:
            from tidings.bench.command import main as bench
        except ModuleNotFoundError as exc:
            print(f"tidings bench: {missing_extra(exc.name or '')}", file=sys.stderr)
            return 1
        return bench(given[1:])
    if given[:1] == ["soak"]:
        try:
            from tidings.soak.command import main as soak
        except ModuleNotFoundError as exc:
            print(f"tidings soak: {missing_extra(exc.name or '')}", file=sys.stderr)
            return 1
        return soak(given[1:])
    if given[:1] in (["user"], ["group"], ["push"], ["stats"]):  # the integration API
        from tidings.admin_cli import main as admin

        return admin(given)
    parser = argparse.ArgumentParser(prog="tidings", description="A self-hosted IM server.")
    parser.add_argument("--version", action="version", version=f"tidings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--host", help="address to listen on (TIDINGS_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (TIDINGS_PORT, 8080)")
    serve.add_argument(
        "--database", dest="database_url", help="SQLAlchemy URL (TIDINGS_DATABASE_URL)"
    )
    serve.add_argument("--redis", dest="redis_url", help="Redis URL (TIDINGS_REDIS_URL)")
    serve.add_argument(
        "--redis-cluster",
        action="store_true",
        default=None,
        help="the Redis URL is a node of a Redis Cluster (TIDINGS_REDIS_CLUSTER)",
    )
    serve.add_argument(
        "--workers",
        type=_workers_flag,
        help="processes on the port, each a node; auto: one per core (TIDINGS_WORKERS, 1)",
    )
    # A worker of `--workers N`: serve on the socket the supervisor bound.
    serve.add_argument("--listen-fd", type=int, help=argparse.SUPPRESS)

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--database", dest="database_url", help="SQLAlchemy URL")

    restored = commands.add_parser(
        "restored",
        help="after restoring the database from a backup: never trust a copy made before it",
    )
    restored.add_argument("--database", dest="database_url", help="SQLAlchemy URL")
    restored.add_argument("--redis", dest="redis_url", help="Redis URL (to report what was lost)")
    restored.add_argument(
        "--redis-cluster", action="store_true", default=None, help="a node of a Redis Cluster"
    )
    restored.add_argument(
        "--sign-out",
        action="store_true",
        help="end every session: clients log in again (and drop what the restore lost)",
    )
    restored.add_argument(
        "--new-identity",
        action="store_true",
        help="the database is a copy for another deployment (staging from production's backup)",
    )

    archive = commands.add_parser(
        "archive",
        help="move old history into Parquet files in the blob store, or bring it back",
        description=(
            "Moves each conversation's messages sent longer ago than --older-than (never its "
            "newest one) into compressed Parquet files in the blob store (TIDINGS_FILES_URL), "
            "with a manifest in SQL. History, replies and catch-up read through them. Safe to "
            "kill at any point and to run on several machines at once: a rerun finishes the job."
        ),
    )
    archive.add_argument("--database", dest="database_url", help="SQLAlchemy URL")
    archive.add_argument("--files", dest="files_url", help="blob store URL (TIDINGS_FILES_URL)")
    archive.add_argument(
        "--older-than",
        type=_duration_flag,
        help="archive messages sent longer ago than this: 180d, 12h, 30m "
        "(default: TIDINGS_ARCHIVE_AFTER_SECONDS)",
    )
    archive.add_argument(
        "--restore", action="store_true", help="bring archived messages back into the database"
    )
    archive.add_argument("--conversation", help="with --restore: only this conversation")
    archive.add_argument(
        "--newer-than",
        type=_duration_flag,
        help="with --restore: only the segments holding messages sent within this (30d)",
    )
    archive.add_argument(
        "--segment-rows", type=int, default=None, help="messages per Parquet file (10000)"
    )
    archive.add_argument(
        "--status", action="store_true", help="print what the archive holds, change nothing"
    )

    commands.add_parser("bench", help="run the benchmarks (tidings bench --help)", add_help=False)
    commands.add_parser("soak", help="run the soak test (tidings soak --help)", add_help=False)
    for name in ("user", "group", "push", "stats"):
        commands.add_parser(name, help=f"the admin API (tidings {name} --help)", add_help=False)

    args = parser.parse_args(given)
    new_identity = bool(vars(args).pop("new_identity", False))
    sign_out = bool(vars(args).pop("sign_out", False))
    listen_fd: int | None = vars(args).pop("listen_fd", None)
    archive_options = {
        name: vars(args).pop(name)
        for name in (
            "older_than",
            "restore",
            "conversation",
            "newer_than",
            "segment_rows",
            "status",
        )
        if name in vars(args)
    }
    flags = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = Settings.from_env(**flags)
    except SettingsError as exc:
        parser.error(str(exc))
    logs.configure(settings.log_level, settings.log_format)
    # Alembic narrates every migration step at INFO; the one start-up line is ours.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, log.getEffectiveLevel()))
    if args.command == "migrate":
        try:
            asyncio.run(_migrate(settings))
        except ModuleNotFoundError as exc:
            log.error("cannot migrate: %s", missing_extra(exc.name or ""))
            return 1
        return 0
    if args.command == "restored":
        try:
            asyncio.run(_restored(settings, new_identity=new_identity, sign_out=sign_out))
        except ModuleNotFoundError as exc:
            log.error("cannot mark the restore: %s", missing_extra(exc.name or ""))
            return 1
        return 0
    if args.command == "archive":
        return _archive_command(parser, settings, **archive_options)
    if listen_fd is None and settings.workers > 1:
        from tidings.workers import refusal, supervise

        refused = refusal(settings)
        if refused is not None:
            parser.error(refused)
        return supervise(settings, flags)
    return _serve(settings, listen_fd)


def _serve(settings: Settings, listen_fd: int | None) -> int:
    """One node; as a worker (``listen_fd``), on its supervisor's socket."""
    from tidings.serve import StartupError, run, serve_forever
    from tidings.workers import CANNOT_START

    listener = None if listen_fd is None else socket.socket(fileno=listen_fd)
    supervisor = None if listener is None else os.getppid()
    try:
        run(
            serve_forever(
                settings, listener=listener, announce=listener is None, supervisor=supervisor
            )
        )
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1 if listener is None else CANNOT_START
    return 0


def _workers_flag(raw: str) -> int:
    try:
        return parse_workers(raw)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc).replace("TIDINGS_WORKERS=", "")) from None


def _duration_flag(raw: str) -> float:
    try:
        return parse_duration(raw)
    except SettingsError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _archive_command(
    parser: argparse.ArgumentParser,
    settings: Settings,
    *,
    older_than: float | None,
    restore: bool,
    conversation: str | None,
    newer_than: float | None,
    segment_rows: int | None,
    status: bool,
) -> int:
    if restore and older_than is not None:
        parser.error("give --older-than or --restore, not both")
    if not restore and (conversation is not None or newer_than is not None):
        parser.error("--conversation and --newer-than go with --restore")
    if segment_rows is not None and segment_rows < 1:
        parser.error("--segment-rows must be positive")
    if not restore and not status and older_than is None and not settings.archive_after_seconds:
        parser.error("say how old: --older-than 180d (or set TIDINGS_ARCHIVE_AFTER_SECONDS)")
    try:
        asyncio.run(
            _archive(
                settings,
                mode="restore" if restore else "status" if status else "archive",
                older_than=settings.archive_after_seconds if older_than is None else older_than,
                conversation=conversation,
                newer_than=newer_than,
                segment_rows=segment_rows,
            )
        )
    except ModuleNotFoundError as exc:
        log.error("cannot archive: %s", missing_extra(exc.name or ""))
        return 1
    except TidingsError as exc:
        log.error("cannot archive: %s", exc.message)
        return 1
    return 0


async def _archive(
    settings: Settings,
    *,
    mode: str,
    older_than: float,
    conversation: str | None,
    newer_than: float | None,
    segment_rows: int | None,
) -> None:
    """``mode``: archive, restore, or status (report only)."""
    from tidings.app import files_location
    from tidings.files.url import open_blob_store
    from tidings.ids import ConversationId
    from tidings.models import now_ms
    from tidings.service.archive import ROWS_PER_SEGMENT, Archiver
    from tidings.store.sql import SqlStore

    store = SqlStore.from_url(
        settings.database_url,
        sqlite_synchronous=settings.sqlite_synchronous,
        pg_partitions=settings.pg_partitions,
        search_index=False,
    )
    await store.open()
    try:
        url, base_dir = files_location(settings)
        blobs = await open_blob_store(url, base_dir)
        try:
            archiver = Archiver(
                store.archive(), blobs, rows_per_segment=segment_rows or ROWS_PER_SEGMENT
            )
            if mode == "archive":
                done = await archiver.run(older_than)
                print(
                    f"archived {done.messages} messages of {done.conversations} conversations "
                    f"into {done.segments} files ({done.bytes} bytes)"
                    + (
                        f"; {done.skipped} ranges changed meanwhile, left for the next run"
                        if done.skipped
                        else ""
                    )
                )
            elif mode == "restore":
                since = None if newer_than is None else now_ms() - int(newer_than * 1000)
                done = await archiver.restore(
                    None if conversation is None else ConversationId(conversation), since
                )
                print(
                    f"restored {done.messages} messages of {done.conversations} conversations "
                    f"from {done.segments} files"
                )
            segments, archived, size = await store.archive().totals()
            print(f"the archive holds {archived} messages in {segments} files ({size} bytes)")
        finally:
            await blobs.close()
    finally:
        await store.close()


async def _migrate(settings: Settings) -> None:
    from tidings.store.engines import create_engines
    from tidings.store.migrate import upgrade

    engines = create_engines(settings.database_url, search_index=False)  # no search here
    try:
        await upgrade(engines.writer, pg_partitions=settings.pg_partitions)
    finally:
        await engines.dispose()
    log.info("schema of %s is up to date", settings.database_url)


async def _restored(settings: Settings, *, new_identity: bool, sign_out: bool) -> None:
    from tidings.app import redis_target
    from tidings.state.restore import restored

    done = await restored(
        settings.database_url,
        redis_target(settings),
        new_identity=new_identity,
        sign_out=sign_out,
        pg_partitions=settings.pg_partitions,
    )
    for lost in done.went_back:
        print(
            f"{lost.conversation}: the database is at seq {lost.database_seq}, clients may have "
            f"seen up to {lost.copy_seq} ({lost.copy_seq - lost.database_seq} messages lost); "
            f"its next message gets seq {lost.copy_seq + 1}"
        )
    if sign_out:
        print(f"{done.signed_out} sessions ended: every client logs in again")
    print(
        f"deployment {done.before.identity} generation {done.before.generation} -> "
        f"{done.after.identity} generation {done.after.generation}: "
        "Redis copies made before are no longer read"
    )


if __name__ == "__main__":
    raise SystemExit(main())
