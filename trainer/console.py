"""What gymwire's training and evaluation commands print while they work: one line per phase.

A phase (the servers, an evaluation, the warm start, a GRPO step, the report) shows one line that
says what it is doing and its running numbers. On a terminal that line is rewritten in place (`\\r`);
when stdout is a file or a pipe each update is a line of its own, at most one per phase every
`interval` seconds, so a log stays short. A finished phase leaves one summary line. gymwire's log
records go through the console as well, so a warning never lands in the middle of a progress line.

`setup()` is for gymwire's own entry points (the CLI, the demo): besides the console it turns off
the libraries' progress bars, INFO lines and deprecation warnings unless asked to be verbose.
Importing gymwire changes none of that, so a library user keeps their own settings.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import threading
import time
import warnings
from types import TracebackType
from typing import TextIO

__all__ = ["Console", "ConsoleHandler", "Phase", "current", "quiet_libraries", "setup", "use"]

PHASE_WIDTH = 18  # the phase's name is padded to this many characters, so the numbers line up


def duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Console:
    """Where progress goes. `enabled=False`: nothing at all (a library call with progress off).
    `live`: update lines too (on a terminal in place, elsewhere at most one a phase per `interval`);
    with live=False only the summary lines are printed. `tick`: on a terminal, the line in place is
    drawn again every `tick` seconds so that its clock runs while a phase waits (0: never)."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool = True,
        live: bool = True,
        interval: float = 30.0,
        redraw: float = 0.1,
        tick: float = 1.0,
    ) -> None:
        self._stream = stream
        self.enabled = enabled
        self.live = live
        self.interval = interval  # seconds between a phase's update lines when not on a terminal
        self.redraw = redraw  # seconds between redraws of the line in place
        self.tick = tick
        self._shown = ""  # the line in place on the terminal now ("" = none)
        self._live: Phase | None = None  # whose line that is
        self._lock = threading.RLock()
        self._ticking = threading.Event()  # set while a line is in place
        self._ticker: threading.Thread | None = None

    @property
    def stream(self) -> TextIO:
        return self._stream or sys.stdout  # looked up when written: a test may have replaced sys.stdout

    @property
    def tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def phase(self, name: str, total: int | None = None) -> Phase:
        return Phase(self, name, total)

    def print(self, text: str) -> None:
        """A line of its own, above the line in place (which is drawn again below it)."""
        if self.enabled:
            self.above(text, self.stream)

    def above(self, text: str, stream: TextIO) -> None:
        """Write `text` (a log record, a table) to `stream` without tearing the line in place."""
        with self._lock:
            shown = self._shown
            if shown:
                self._write("\r\x1b[K")
                self._shown = ""
            stream.write(text if text.endswith("\n") else text + "\n")
            stream.flush()
            if shown:
                self._draw(shown)

    # -- used by Phase --------------------------------------------------------------------------

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def _draw(self, line: str) -> None:
        width = shutil.get_terminal_size((120, 24)).columns - 1
        if len(line) > width:
            line = line[: max(width - 1, 1)] + "…"
        self._write("\r" + line + "\x1b[K")
        self._shown = line

    def _update(self, phase: Phase) -> None:
        with self._lock:
            self._draw(phase.line())
            self._live = phase
            if self.tick > 0:
                if self._ticker is None:
                    self._ticker = threading.Thread(target=self._tick, name="gymwire-console", daemon=True)
                    self._ticker.start()
                self._ticking.set()

    def _tick(self) -> None:
        while True:
            self._ticking.wait()
            time.sleep(self.tick)
            with self._lock:
                phase = self._live
                if phase is None or not self._shown:
                    self._ticking.clear()
                elif time.monotonic() - phase._drawn >= self.tick:
                    phase._drawn = time.monotonic()
                    self._draw(phase.line())

    def _line(self, line: str) -> None:
        with self._lock:
            self._live = None
            if self._shown:
                self._write("\r\x1b[K")
                self._shown = ""
            self._write(line + "\n")

    def end_line(self) -> None:
        """End the line in place where it is (an error follows: it starts on a fresh line)."""
        with self._lock:
            self._live = None
            if self._shown:
                self._write("\n")
                self._shown = ""


class Phase:
    """One phase's line. `update()` as it goes, `finish()` once: its summary line. As a context
    manager it finishes with the last text shown, or on an error leaves what was shown in place."""

    def __init__(self, console: Console, name: str, total: int | None = None) -> None:
        self.console = console
        self.name = name
        self.total = total
        self.done = 0
        self.text = ""
        self.values: dict[str, float] = {}  # the phase's numbers, for whoever runs it (e.g. a final loss)
        self.started = time.monotonic()
        self._drawn = 0.0  # when the line in place was last drawn
        self._printed = self.started  # when an update line was last printed (not on a terminal)
        self._finished = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def _format(self, text: str, count: bool) -> str:
        numbers = f"{self.done}/{self.total}" if count and self.total is not None else ""
        body = " ".join(p for p in (numbers, text) if p)
        return "  ".join(p for p in (self.name.ljust(PHASE_WIDTH), body, duration(self.elapsed)) if p)

    def update(
        self, text: str | None = None, *, done: int | None = None, advance: int = 0, force: bool = False
    ) -> None:
        """Show `text` (kept when None) and the count (`done`, or `advance` it). On a terminal the line is
        redrawn at most every `redraw` seconds unless `force`; elsewhere a line is printed at most every
        `interval` seconds of the phase (a phase shorter than that leaves only its summary)."""
        if text is not None:
            self.text = text
        if done is not None:
            self.done = done
        self.done += advance
        console = self.console
        if not console.enabled or self._finished or not console.live:
            return
        now = time.monotonic()
        if console.tty:
            if force or now - self._drawn >= console.redraw:
                self._drawn = now
                console._update(self)
        elif now - self._printed >= console.interval:
            self._printed = now
            console._line(self._format(self.text, count=True))

    def line(self) -> str:
        """The line as it stands: name, count, text, elapsed time."""
        return self._format(self.text, count=True)

    def finish(self, summary: str | None = None) -> None:
        """The phase's summary line (default: the last text shown, with the count)."""
        if self._finished:
            return
        self._finished = True
        if self.console.enabled:
            line = self._format(self.text, count=True) if summary is None else self._format(summary, count=False)
            self.console._line(line)

    def abandon(self) -> None:
        """The phase failed: what was shown stays, ended there, and no summary follows."""
        if not self._finished:
            self._finished = True
            self.console.end_line()

    def __enter__(self) -> Phase:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None:
            self.finish()
        else:
            self.abandon()


_current: Console | None = None


def current() -> Console:
    """The process's console: the one `setup()` or `use()` installed, else a plain one on stdout."""
    global _current
    if _current is None:
        _current = Console()
    return _current


def use(console: Console | None) -> None:
    """Make `console` the process's console (None: back to the default)."""
    global _current
    _current = console


def resolve(progress: bool | Console) -> Console:
    """What a `progress` argument means: True: the process's console; False: silence; or a console."""
    if isinstance(progress, Console):
        return progress
    return current() if progress else Console(enabled=False)


class ConsoleHandler(logging.Handler):
    """Log records on stderr, written above the console's line in place."""

    def __init__(self, console: Console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.above(self.format(record), sys.stderr)
        except Exception:
            self.handleError(record)


class _Brief(logging.Formatter):
    """`warning: message` for people; errors keep their traceback."""

    def format(self, record: logging.LogRecord) -> str:
        text = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


# Read by the libraries when they are imported; set only where the user has not set them.
_QUIET_ENV = {
    "VLLM_LOGGING_LEVEL": "ERROR",  # vLLM's INFO and WARNING lines (engine set-up, CPU notices)
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # huggingface_hub's bars, and transformers' ("Loading weights")
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",  # datasets' map/filter bars (TRL's dataset preparation)
    "TRANSFORMERS_VERBOSITY": "error",  # transformers' advice-level warnings
    "TQDM_DISABLE": "1",  # any other library's tqdm bar that does not set `disable` itself
    # torch's C++ warnings (vLLM's CPU backend: "NUMA binding: Using MEMBIND policy..."): read when
    # torch loads, so this holds only where torch was not imported yet (gymwire's CLI imports it late).
    "TORCH_CPP_LOG_LEVEL": "ERROR",
}
_quiet = False


def quiet_libraries() -> None:
    """Turn off the libraries' progress bars, INFO lines and DeprecationWarning/FutureWarning (gymwire's
    own warnings still show). Before vLLM is imported for its logging to follow."""
    global _quiet
    _quiet = True
    for key, value in _QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category, module=r"(?!gymwire(\.|$))")
    # Libraries already imported have read their settings: tell them directly.
    if "transformers" in sys.modules:
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        transformers_logging.set_verbosity_error()
    if "datasets" in sys.modules:
        import datasets

        datasets.disable_progress_bars()
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "vllm" in sys.modules:
        logging.getLogger("vllm").setLevel(logging.ERROR)
    # "Triton not available, find_triton_kernels = []", logged when vLLM loads on a CPU-only machine.
    logging.getLogger("torch._library").setLevel(logging.ERROR)


def libraries_quiet() -> bool:
    """Whether `quiet_libraries()` ran: a backend then also turns off bars it is handed an option for."""
    return _quiet


def setup(*, verbose: bool = False, progress: bool = True) -> Console:
    """For gymwire's commands: the console they print on (progress=False: summary lines only) and
    gymwire's log records through it (warnings and errors; INFO too when verbose, or the level in
    GYMWIRE_LOG_LEVEL). Unless verbose, the libraries are quieted (`quiet_libraries`)."""
    console = Console(live=progress)
    use(console)
    handler = ConsoleHandler(console)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s") if verbose else _Brief())
    logger = logging.getLogger("gymwire")
    logger.handlers[:] = [handler]
    logger.setLevel(os.environ.get("GYMWIRE_LOG_LEVEL") or ("INFO" if verbose else "WARNING"))
    logger.propagate = False
    if not verbose:
        quiet_libraries()
    return console
