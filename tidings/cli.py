"""The ``tidings`` command: ``serve``, ``migrate``, ``restored`` and ``bench``."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from tidings import __version__, logs
from tidings.app import backends, build_app
from tidings.config import Settings, SettingsError
from tidings.errors import TidingsError
from tidings.store.engines import create_engines
from tidings.store.migrate import upgrade

log = logging.getLogger("tidings")


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    if given[:1] == ["bench"]:
        # The load generator has options of its own; it parses them itself.
        try:
            from tidings.bench.command import main as bench
        except ModuleNotFoundError as exc:
            print(f"tidings bench: {_missing_extra(exc.name or '')}", file=sys.stderr)
            return 1
        return bench(given[1:])
    if given[:1] == ["soak"]:
        try:
            from tidings.soak.command import main as soak
        except ModuleNotFoundError as exc:
            print(f"tidings soak: {_missing_extra(exc.name or '')}", file=sys.stderr)
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

    migrate = commands.add_parser("migrate", help="bring the database schema up to date")
    migrate.add_argument("--database", dest="database_url", help="SQLAlchemy URL")

    restored = commands.add_parser(
        "restored",
        help="after restoring the database from a backup: never trust a copy made before it",
    )
    restored.add_argument("--database", dest="database_url", help="SQLAlchemy URL")
    restored.add_argument("--redis", dest="redis_url", help="Redis URL (to report what was lost)")
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

    commands.add_parser("bench", help="run the benchmarks (tidings bench --help)", add_help=False)
    commands.add_parser("soak", help="run the soak test (tidings soak --help)", add_help=False)
    for name in ("user", "group", "push", "stats"):
        commands.add_parser(name, help=f"the admin API (tidings {name} --help)", add_help=False)

    args = parser.parse_args(given)
    new_identity = bool(vars(args).pop("new_identity", False))
    sign_out = bool(vars(args).pop("sign_out", False))
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
            log.error("cannot migrate: %s", _missing_extra(exc.name or ""))
            return 1
        return 0
    if args.command == "restored":
        try:
            asyncio.run(_restored(settings, new_identity=new_identity, sign_out=sign_out))
        except ModuleNotFoundError as exc:
            log.error("cannot mark the restore: %s", _missing_extra(exc.name or ""))
            return 1
        return 0
    try:
        _run(serve_forever(settings))
    except StartupError as exc:
        log.error("cannot start: %s", exc)
        return 1
    return 0


class StartupError(Exception):
    """The server could not start (database, Redis or port); the message says which."""


def _run(main_coroutine: object) -> None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency except on Windows
        asyncio.run(main_coroutine)  # type: ignore[arg-type]
    else:
        uvloop.run(main_coroutine)  # type: ignore[arg-type]


async def _migrate(settings: Settings) -> None:
    engines = create_engines(settings.database_url)
    try:
        await upgrade(engines.writer, pg_partitions=settings.pg_partitions)
    finally:
        await engines.dispose()
    log.info("schema of %s is up to date", settings.database_url)


async def _restored(settings: Settings, *, new_identity: bool, sign_out: bool) -> None:
    from tidings.state.restore import restored

    done = await restored(
        settings.database_url,
        settings.redis_url,
        settings.redis_prefix,
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


async def serve_forever(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain: close sockets with 1001, commit, exit."""
    try:
        app = build_app(settings)
    except ModuleNotFoundError as exc:
        raise StartupError(_missing_extra(exc.name or "")) from exc
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=10)
    try:
        await runner.setup()
        site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
        await site.start()
    except (TidingsError, ConnectionError, OSError) as exc:
        await runner.cleanup()
        message = exc.message if isinstance(exc, TidingsError) else str(exc)
        raise StartupError(message) from exc
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = _address(site, settings)
    # What startup made (modules, SQLAlchemy's and aiohttp's tables, the
    # app) lives as long as the process: keep the cyclic collector off it,
    # or every full collection walks it all (docs/benchmarks.md, stop 12).
    gc.freeze()
    log.info("tidings %s listening on %s (%s)", __version__, address, backends(settings))
    print(f"tidings listening on {address}", flush=True)
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()


# A driver or client library that is an optional extra of the package.
_EXTRAS = {"asyncpg": "postgres", "asyncmy": "mysql", "redis": "redis", "psutil": "bench"}


def _missing_extra(module: str) -> str:
    top = module.partition(".")[0]
    extra = _EXTRAS.get(top)
    if extra is None:
        return f"the Python module {module!r} is missing"
    return f"{top} is not installed; it is in the {extra} extra: pip install 'tidings[{extra}]'"


def _address(site: web.TCPSite, settings: Settings) -> str:
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    port = sockets[0].getsockname()[1] if sockets else settings.port
    host = settings.host if ":" not in settings.host else f"[{settings.host}]"
    return f"http://{host}:{port}"


if __name__ == "__main__":
    raise SystemExit(main())
