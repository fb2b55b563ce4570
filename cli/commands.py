"""Implementations of the core `gymwire` subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from google.protobuf.json_format import MessageToDict

from gymwire.client import ChannelOptions, EnvClient

if TYPE_CHECKING:
    from gymwire.env_servers.sdk.server import ServerConfig


def _options(args: argparse.Namespace) -> ChannelOptions:
    roots = args.ca.read_bytes() if getattr(args, "ca", None) else None
    return ChannelOptions(token=args.token, tls=args.tls or roots is not None, root_certificates=roots)


def server_config(args: argparse.Namespace) -> ServerConfig:
    """The server `gymwire serve` starts, from its options (whose defaults are ServerConfig's own)."""
    from gymwire.env_servers.sdk.server import ServerConfig
    from gymwire.env_servers.sdk.service import ServiceLimits

    if bool(args.tls_cert) != bool(args.tls_key):
        raise ValueError("--tls-cert and --tls-key go together")
    limits = ServiceLimits(
        max_sessions=args.max_sessions, session_ttl_seconds=args.session_ttl, max_action_bytes=args.max_action_bytes
    )
    return ServerConfig(
        host=args.host,
        port=args.port,
        limits=limits,
        workers=args.workers,
        threads=args.threads,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        auth_token=args.auth_token,
        metrics_port=args.metrics_port,
        grace_seconds=args.grace,
        max_streams=args.max_streams,
        max_connections=args.max_connections,
    )


def serve(args: argparse.Namespace) -> int:
    from gymwire.env_servers.registry import parse_options
    from gymwire.env_servers.sdk.logs import configure_logging
    from gymwire.env_servers.sdk.server import serve as run

    config = server_config(args)
    # `module:Class` is usually the user's own file here: import from the current directory as `python -m`
    # and uvicorn do (the `gymwire` script puts only its own folder on the path). Spawned workers inherit
    # sys.path, so they import it too.
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    if args.log_format:  # worker processes read it from the environment
        os.environ["GYMWIRE_LOG_FORMAT"] = args.log_format
    configure_logging()
    run(args.env, parse_options(args.option), config)
    return 0


def envs(args: argparse.Namespace) -> int:
    from gymwire.env_servers.registry import available

    for name, target in sorted(available().items()):
        print(f"{name:12s} {target}")
    return 0


def info(args: argparse.Namespace) -> int:
    with EnvClient(args.address, _options(args)) as client:
        print(json.dumps(MessageToDict(client.info(), preserving_proto_field_name=True), indent=2))
    return 0


def tasks(args: argparse.Namespace) -> int:
    with EnvClient(args.address, _options(args)) as client:
        for t in client.list_tasks(args.split, args.difficulty, args.category, limit=args.limit):
            meta = " ".join(f"{k}={v}" for k, v in sorted(t.metadata.items()))
            print(f"{t.id}\t{t.split}\t{t.difficulty}\t{t.category}\t{meta}")
    return 0


def play(args: argparse.Namespace) -> int:
    """A person plays one episode, reading exactly the text an agent would read."""
    with EnvClient(args.address, _options(args)) as client:
        env = client.info()
        print(env.instruction, end="\n\n")
        episode = client.reset(
            args.task,
            split=args.split,
            difficulty=args.difficulty,
            seed=args.seed,
            include_valid_actions=args.valid_actions,
            max_turns=args.max_turns,
        )
        print(f"[task {episode.task.id}]\n{episode.observation.text}")
        total = 0.0
        while not episode.done:
            if args.valid_actions:
                print("valid actions:", ", ".join(episode.observation.valid_actions))
            try:
                text = input("> ")
            except EOFError:
                break
            o = episode.step(text)
            total += o.reward
            flag = "" if o.action_valid else "  [invalid action]"
            print(f"{o.text}\n(turn {o.turn}, reward {o.reward:g}{flag})")
        o = episode.observation
        ending = "solved" if o.success else ("turn limit" if o.truncated else "ended" if o.terminated else "stopped")
        print(f"episode {ending}: return {total:g} in {o.turn} turns")
        episode.close()
    return 0


def check(args: argparse.Namespace) -> int:
    from gymwire.env_servers.conformance import format_report, run_suite

    creds = None
    if args.tls or args.ca:
        import grpc

        creds = grpc.ssl_channel_credentials(args.ca.read_bytes() if args.ca else None)
    results = run_suite(
        args.address,
        token=args.token,
        timeout=args.timeout,
        capacity_limit=args.capacity_limit,
        only=args.only,
        credentials=creds,
    )
    print(format_report(args.address, results))
    sys.stdout.flush()
    return 1 if any(r.status == "fail" for r in results) or not results else 0
