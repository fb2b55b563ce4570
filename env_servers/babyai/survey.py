"""Measure the oracle per level and tier.

`python -m gymwire.env_servers.babyai.survey [--levels A,B] [--seeds 0:50 | --listed 10:5] [--episodes]`.
Without `--episodes` only minigrid's bot is run, alone, from each initial state; that is fast and
decides the oracle's success (its advice reaches the goal exactly when the bot alone would). With
`--episodes` whole text episodes are played by the oracle's advice, counting turns. The failing seeds
it prints are what `solvable.BOT_FAILURES` records; with `--limits` (and `--episodes`) it also prints
each level's longest episode in the form of `turn_limits.LONGEST_ORACLE_EPISODE`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field

from gymwire.env_servers.babyai.environment import BabyAIEpisode
from gymwire.env_servers.babyai.solvable import bot_solves
from gymwire.env_servers.babyai.tasks import TEST, TRAIN, TaskScheme
from gymwire.env_servers.babyai.turn_limits import level_limit


@dataclass
class EpisodeResult:
    success: bool
    turns: int
    steps: int
    reward: float


def play_oracle(level: str, seed: int, max_turns: int = 200) -> EpisodeResult:
    """Play one text episode by the oracle's advice."""
    episode = BabyAIEpisode(level, seed)
    episode.reset()
    reward, turns = 0.0, 0
    while turns < max_turns:
        action = episode.expert_action()
        if action is None:
            break
        outcome = episode.step(f"Action: {action}")
        turns += 1
        reward += outcome.reward
        if not outcome.action_valid or outcome.terminated:
            break
    return EpisodeResult(episode.succeeded, turns, int(episode.env.step_count), reward)


@dataclass
class LevelReport:
    level: str
    tasks: int = 0
    solved: int = 0
    failed: list[int] = field(default_factory=list)
    turns: list[int] = field(default_factory=list)
    seconds: float = 0.0


def survey_level(level: str, seeds: list[int], episodes: bool) -> LevelReport:
    report = LevelReport(level, tasks=len(seeds))
    start = time.perf_counter()
    for seed in seeds:
        if episodes:
            result = play_oracle(level, seed)
            ok = result.success
            if ok:
                report.turns.append(result.turns)
        else:
            ok = bot_solves(level, seed)
        report.solved += ok
        if not ok:
            report.failed.append(seed)
    report.seconds = time.perf_counter() - start
    turns = f" turns mean {statistics.mean(report.turns):5.1f} max {max(report.turns):3d}" if report.turns else ""
    print(
        f"{level:24s} {report.solved:4d}/{report.tasks} solved{turns}  "
        f"{report.seconds / max(1, report.tasks) * 1000:6.0f} ms/task  failed seeds {report.failed}",
        flush=True,
    )
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", default="", help="comma-separated short names (default: every tiered level)")
    parser.add_argument("--seeds", default="0:20", help="START:STOP seed range")
    parser.add_argument("--listed", default="", help="TRAIN:TEST - instead of --seeds, the first listed seeds")
    parser.add_argument("--episodes", action="store_true", help="play text episodes by the oracle, count turns")
    parser.add_argument("--limits", action="store_true", help="with --episodes: print each level's longest episode")
    args = parser.parse_args(argv)
    scheme = TaskScheme()
    levels = args.levels.split(",") if args.levels else [lv for tier in scheme.tiers.values() for lv in tier]
    reports = []
    for level in levels:
        if args.listed:
            train, test = (int(part) for part in args.listed.split(":"))
            seeds = scheme.seeds(level, TRAIN)[:train] + scheme.seeds(level, TEST)[:test]
        else:
            start, stop = (int(part) for part in args.seeds.split(":"))
            seeds = list(range(start, stop))
        reports.append(survey_level(level, seeds, args.episodes))
    print("failed seeds:", {r.level: r.failed for r in reports if r.failed})
    for tier in sorted({scheme.tier_of(r.level) for r in reports}):
        mine = [r for r in reports if scheme.tier_of(r.level) == tier]
        tasks, solved = sum(r.tasks for r in mine), sum(r.solved for r in mine)
        turns = [t for r in mine for t in r.turns]
        within = (
            f", {sum(t <= 20 for t in turns)} within 20 turns, mean turns {statistics.mean(turns):.1f}" if turns else ""
        )
        print(f"tier {tier}: {solved}/{tasks} solved{within}")
    if args.limits:
        print("LONGEST_ORACLE_EPISODE = {")
        for r in reports:
            if r.turns:
                print(f'    "{r.level}": {max(r.turns)},  # limit {level_limit(max(r.turns))}')
        print("}")


if __name__ == "__main__":
    main()
