"""The `gymwire` command: serve, inspect, play and check environment servers (and train, evaluate)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from gymwire.cli import commands


def _add_connection(p: argparse.ArgumentParser) -> None:
    p.add_argument("address", help="host:port of a gymwire server")
    p.add_argument("--token", default=os.environ.get("GYMWIRE_TOKEN"), help="bearer token (or $GYMWIRE_TOKEN)")
    p.add_argument("--tls", action="store_true", help="connect with TLS")
    p.add_argument("--ca", type=Path, help="PEM root certificates for --tls")


def build_parser() -> argparse.ArgumentParser:
    from gymwire.env_servers.sdk.server import ServerConfig

    parser = argparse.ArgumentParser(prog="gymwire", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    # The options' defaults are the server's own (ServerConfig, ServiceLimits), never restated here.
    server = ServerConfig()
    p = sub.add_parser("serve", help="serve an environment over gRPC")
    p.add_argument("env", help="registered name (see `gymwire envs`) or module:attribute (from the current folder)")
    p.add_argument(
        "--host",
        default=os.environ.get("GYMWIRE_HOST", server.host),
        help=f"listen address (default $GYMWIRE_HOST, else {server.host}; containers set 0.0.0.0)",
    )
    p.add_argument("--port", type=int, default=server.port, help="default %(default)s")
    p.add_argument(
        "--workers",
        type=int,
        default=server.workers,
        help="processes sharing the port (use the cores; default %(default)s)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=server.threads,
        help="env code in N threads (0: on the event loop until a call takes 50 ms; default %(default)s)",
    )
    p.add_argument("--max-sessions", type=int, default=server.limits.max_sessions, help="default %(default)s")
    p.add_argument(
        "--max-streams",
        type=int,
        default=server.max_streams,
        help="open Session/Multiplex streams; more are RESOURCE_EXHAUSTED (default %(default)s)",
    )
    p.add_argument(
        "--max-connections",
        type=int,
        default=server.max_connections,
        help="open client connections (0: no limit; default %(default)s)",
    )
    p.add_argument(
        "--session-ttl",
        type=float,
        default=server.limits.session_ttl_seconds,
        help="seconds an idle session lives (default %(default)s)",
    )
    p.add_argument("--max-action-bytes", type=int, default=server.limits.max_action_bytes, help="default %(default)s")
    p.add_argument("--tls-cert", type=Path)
    p.add_argument("--tls-key", type=Path)
    p.add_argument(
        "--auth-token",
        default=os.environ.get("GYMWIRE_AUTH_TOKEN"),
        help="require this bearer token (or $GYMWIRE_AUTH_TOKEN)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on this port")
    p.add_argument(
        "--grace", type=float, default=server.grace_seconds, help="drain seconds on SIGTERM (default %(default)s)"
    )
    p.add_argument("--log-format", choices=("json", "text"), default=None)
    p.add_argument(
        "-o",
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="environment option, repeatable (e.g. -o data=/path/to/files)",
    )
    p.set_defaults(run=commands.serve)

    p = sub.add_parser("envs", help="list the registered environments")
    p.set_defaults(run=commands.envs)

    p = sub.add_parser("info", help="show a server's GetInfo")
    _add_connection(p)
    p.set_defaults(run=commands.info)

    p = sub.add_parser("tasks", help="list a server's tasks")
    _add_connection(p)
    p.add_argument("--split", default="")
    p.add_argument("--difficulty", default="")
    p.add_argument("--category", default="")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(run=commands.tasks)

    p = sub.add_parser("play", help="play an episode in the terminal, seeing what the agent sees")
    _add_connection(p)
    p.add_argument("--task", help="task id (default: sampled)")
    p.add_argument("--split", default="")
    p.add_argument("--difficulty", default="")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-actions", action="store_true", help="show the valid actions each turn")
    p.add_argument("--max-turns", type=int, default=0)
    p.set_defaults(run=commands.play)

    p = sub.add_parser("check", help="run the conformance suite against a server (exit 0 = conforms)")
    _add_connection(p)
    p.add_argument("--only", help="run only rules whose name contains this text")
    p.add_argument("--capacity-limit", type=int, default=5000, help="skip the capacity rule above this max_sessions")
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(run=commands.check)
    return parser


def main(argv: list[str] | None = None) -> int:
    from gymwire.cli.extensions import register_extensions

    parser = build_parser()
    register_extensions(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError) as exc:
        print(f"gymwire {args.command}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
