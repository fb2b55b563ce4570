"""Trainer subcommands of `gymwire`: train, eval, report, masks, demo. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gymwire.trainer.policy import Policy


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train with GRPO over the stages of a run config (YAML)")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--run-dir", help="override run_dir (a run resumes from its folder)")
    p.add_argument(
        "--cpu-scale",
        action="store_true",
        help="the same stages with tiny numbers and the default model (a smoke run on a CPU)",
    )
    _console_options(p)
    p.set_defaults(run=train)

    p = sub.add_parser(
        "plan",
        help="GPU memory of a run config (weights, gradients, AdamW, reference, activations, logits, vLLM); "
        "exit 1 when it does not fit",
    )
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--gpus", type=int, help="GPUs the update runs on (default: the config's hardware section)")
    p.add_argument("--gpu-memory", help="per GPU, e.g. 80GiB or 141GB (default: the config's hardware section)")
    p.add_argument("--model-config", type=Path, help="the model's config.json (default: its folder, cache or table)")
    p.set_defaults(run=plan)

    p = sub.add_parser("eval", help="evaluate a policy on environment servers (avg@k, pass@k, turns, tokens)")
    p.add_argument(
        "--policy",
        required=True,
        help="oracle | random | a model for transformers (folder, 'smollm2', hub id in the local "
        "cache) | vllm:MODEL | openai:http://host:port/v1[#model]",
    )
    p.add_argument("--env", action="append", required=True, metavar="ADDRESS", help="server address, repeatable")
    p.add_argument("--split", default="test")
    p.add_argument("--difficulty", default="")
    p.add_argument("--category", default="")
    p.add_argument("-k", type=int, default=8, help="samples per task")
    p.add_argument("--tasks-per-env", type=int, default=16, help="per env and tier (0 = all)")
    p.add_argument("--max-turns", type=int, default=0)
    p.add_argument("--show-valid-actions", action="store_true")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="results folder (an interrupted eval resumes from it)")
    p.add_argument(
        "--keep-tokens",
        action="store_true",
        help="store token ids, loss masks and logprobs in trajectories.jsonl (see `gymwire masks`)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads for a local model")
    p.add_argument("--token", default=os.environ.get("GYMWIRE_TOKEN"), help="bearer token (or $GYMWIRE_TOKEN)")
    _console_options(p, summary="only the summary line")
    p.set_defaults(run=evaluate)

    p = sub.add_parser("report", help="write the Markdown report (tables and plots) of a run folder")
    p.add_argument("run_dir", type=Path)
    p.add_argument(
        "--judge",
        metavar="URL[#MODEL]",
        help="also ask an OpenAI-compatible server (http://host:port/v1) for a failure category per "
        "failed episode; MODEL defaults to the first it serves",
    )
    p.add_argument("--judge-concurrency", type=int, default=4)
    p.set_defaults(run=report)

    p = sub.add_parser("masks", help="show an episode's tokens with the ones the model sampled (loss mask 1) marked")
    p.add_argument(
        "trajectories",
        type=Path,
        help="a JSONL of trajectories: a run's rollouts/stage-S-step-N.jsonl, or an eval's "
        "trajectories.jsonl written with --keep-tokens",
    )
    p.add_argument("--episode", type=int, default=0, help="line of the file (0-based)")
    p.add_argument("--model", default="smollm2", help="whose tokenizer decodes the ids")
    p.add_argument("--plain", action="store_true", help="bracket the sampled tokens instead of colouring them")
    p.set_defaults(run=masks)

    p = sub.add_parser(
        "demo",
        help="the main job: a local TextCraft server, warm start, evaluate, GRPO, evaluate again, "
        "report the gain with its paired 95%% interval (CPU, default model)",
    )
    p.add_argument("--run-dir", default="runs/demo")
    p.add_argument("--steps", type=int, default=5, help="GRPO steps")
    _console_options(p)
    p.set_defaults(run=demo)


def _console_options(p: argparse.ArgumentParser, summary: str = "one summary line per phase") -> None:
    """The options `_console` reads."""
    p.add_argument("--no-progress", action="store_true", help=f"{summary}, no running updates")
    p.add_argument("--verbose", action="store_true", help="also the libraries' log lines, progress bars and warnings")


def _console(args: argparse.Namespace) -> None:
    """The command's console, before anything heavy is imported (vLLM reads its logging settings then)."""
    from gymwire.trainer.console import setup

    setup(verbose=args.verbose, progress=not args.no_progress)


def train(args: argparse.Namespace) -> int:
    _console(args)
    from gymwire.trainer.config import load_config, scale_for_cpu
    from gymwire.trainer.train import train as run

    config = load_config(args.config)
    if args.cpu_scale:
        config = scale_for_cpu(config)
    if args.run_dir:
        config.run_dir = args.run_dir
    # Before any model loads: a config that cannot fit its GPUs fails here, not an hour in.
    from gymwire.trainer.memory_plan import check_before_training

    check_before_training(config, what=str(args.config))
    state = run(config)
    print(f"run {state.phase}; report: {Path(config.run_dir) / 'report' / 'report.md'}")
    return 0


def plan(args: argparse.Namespace) -> int:
    from gymwire.trainer.config import load_config
    from gymwire.trainer.memory_plan import plan as memory_plan

    config = load_config(args.config)
    result = memory_plan(config, gpus=args.gpus, gpu_memory=args.gpu_memory, model_config=args.model_config)
    print(result.table())
    return 0 if result.fits else 1


def make_policy(spec: str, threads: int = 0) -> Policy | None:
    """A policy backend from a command-line spec; None for the reference agents."""
    if spec in ("oracle", "random"):
        return None
    if spec.startswith("openai:"):
        from gymwire.trainer.policy.openai import OpenAIPolicy

        # Built directly: make_policy's second argument is the URL, so it cannot also take the served model's name.
        url, _, served = spec.removeprefix("openai:").partition("#")
        return OpenAIPolicy(url, model=served or None)
    from gymwire.trainer.policy import make_policy as build

    if threads:
        from gymwire.trainer.model import set_threads

        set_threads(threads)
    backend, sep, model = spec.partition(":")
    if sep and backend == "vllm":
        return build("vllm", model)
    return build("hf", spec)


def evaluate(args: argparse.Namespace) -> int:
    _console(args)
    from gymwire.client import ChannelOptions, EnvPool
    from gymwire.trainer.evaluate import EvalSpec
    from gymwire.trainer.evaluate import evaluate as run_eval
    from gymwire.trainer.rollout import EnvConfig, RolloutConfig, RolloutEngine

    spec = EvalSpec(
        split=args.split,
        difficulty=args.difficulty,
        category=args.category,
        tasks_per_env=args.tasks_per_env,
        k=args.k,
        seed=args.seed,
    )

    async def main() -> str:
        async with EnvPool(args.env, ChannelOptions(token=args.token)) as pool:
            settings = {env: EnvConfig(args.max_turns, args.show_valid_actions) for env in pool.env_names}
            policy = make_policy(args.policy, args.threads)
            agent = (
                args.policy
                if policy is None
                else RolloutEngine(
                    pool,
                    policy,
                    RolloutConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature),
                    settings,
                )
            )
            try:
                result = await run_eval(
                    pool,
                    agent,
                    spec,
                    out_dir=args.out,
                    env_settings=settings,
                    desc=f"eval {args.policy}",
                    store_tokens=args.keep_tokens,
                    agent_name=args.policy,
                )
            finally:
                if policy is not None:
                    aclose = getattr(policy, "aclose", None)  # HTTP sessions belong to this event loop
                    if aclose is not None:
                        await aclose()
                    policy.close()
            return result.markdown(f"{args.policy} on {args.split}")

    print(asyncio.run(main()))
    if args.out:
        print(f"results: {args.out / 'results.json'}, trajectories: {args.out / 'trajectories.jsonl'}")
    return 0


def report(args: argparse.Namespace) -> int:
    from gymwire.trainer.judge import Judge
    from gymwire.trainer.report import write_report

    judge = Judge.from_spec(args.judge, max_concurrency=args.judge_concurrency) if args.judge else None
    print(write_report(args.run_dir, judge))
    return 0


def masks(args: argparse.Namespace) -> int:
    import sys

    from transformers import AutoTokenizer

    from gymwire.trainer.masks import describe
    from gymwire.trainer.model import resolve_model
    from gymwire.trainer.records import read_trajectories

    episodes = [t for _, t in read_trajectories(args.trajectories)]
    if not 0 <= args.episode < len(episodes):
        raise SystemExit(f"{args.trajectories} holds {len(episodes)} episodes; --episode {args.episode} is not one")
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(args.model)))
    color = not args.plain and sys.stdout.isatty()
    print(describe(episodes[args.episode], tokenizer, color=color))
    return 0


def demo(args: argparse.Namespace) -> int:
    _console(args)
    from gymwire.trainer.demo import run_demo

    page = run_demo(Path(args.run_dir), steps=args.steps)
    print(report_digest(page.read_text()))
    print(f"report: {page}")
    return 0


def report_digest(markdown: str) -> str:
    """The report's headline and its table of success per evaluation: what a run's last screen shows."""
    lines = markdown.splitlines()
    keep = [line for line in lines if line.startswith("**")][:1]
    for i, line in enumerate(lines):
        if line.startswith("## Success per evaluation"):
            table = [t for t in lines[i + 1 :] if t.strip()]
            end = next((j for j, t in enumerate(table) if not t.startswith("|")), len(table))
            keep += ["", line.removeprefix("## "), *table[:end]]
            break
    return "\n".join(keep) if keep else markdown


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
