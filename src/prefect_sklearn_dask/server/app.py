"""Prefect's server app as the project serves it: ``prefect server start``'s foreground
server, plus what that command has no option for.

``prefect server start`` calls ``uvicorn.run`` on ``prefect.server.api.server.create_app``;
this module does the same with two additions: https when given a certificate and key
(:mod:`.tls`), and SQLite transactions that take the write lock at BEGIN
(:mod:`.sqlite_writes`), so many flow runs started at once are queued, not refused.
:func:`~prefect_sklearn_dask.server.process.start_server` runs it in the background.

    python -m prefect_sklearn_dask.server.app --host 127.0.0.1 --port 4200
    python -m prefect_sklearn_dask.server.app --host 0.0.0.0 --port 4200 \\
        --tls-cert server.pem --tls-key server.key
"""

from __future__ import annotations

import argparse


def serve(host: str, port: int, cert: str | None = None, key: str | None = None) -> None:
    """Serve the API, UI and services in this process until stopped."""
    import prefect
    import uvicorn
    from prefect.server.api.server import create_app
    from prefect.settings import get_current_settings

    from prefect_sklearn_dask.server.sqlite_writes import lock_at_begin

    settings = get_current_settings().server
    with lock_at_begin():
        uvicorn.run(
            app=create_app(final=True),
            app_dir=str(prefect.__module_path__.parent),
            host=host,
            port=port,
            timeout_keep_alive=settings.api.keepalive_timeout,
            ws_ping_interval=settings.api.websocket_ping_interval,
            ws_ping_timeout=settings.api.websocket_ping_timeout,
            log_level=settings.logging_level.lower(),
            ssl_certfile=cert,
            ssl_keyfile=key,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m prefect_sklearn_dask.server.app")
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    args = parser.parse_args(argv)
    serve(args.host, args.port, args.tls_cert, args.tls_key)


if __name__ == "__main__":
    main()
