"""Policy backend on any OpenAI-compatible completions server (vLLM serve and the like).

Used for evaluation against a served model and for server-mode training, where the inference
engine runs as its own process or machine. The prompt is sent as token ids (the completions
endpoint accepts a list of ints), so the server sees exactly the tokens the conversation builder
made; the sampled tokens come back as ids through vLLM's `return_tokens_as_token_ids`, so nothing
is re-tokenised. A server that returns token strings instead works only if they are vocabulary
entries; otherwise the backend refuses rather than guess.

Batching: each request is its own HTTP call, up to `max_concurrency` at once; the server batches
them (vLLM's continuous batching does this better than a client-side window could).

Logprobs: start vLLM with `--logprobs-mode processed_logprobs` so that they come from the
distribution sampled from (temperature, top-p), like the other backends; by default vLLM reports
the raw model distribution.

Weights (`settings.weight_sync`), both through vLLM's development endpoints (server started with
`VLLM_SERVER_DEV_MODE=1`), with generation paused meanwhile (`/pause?mode=wait` ... `/resume`) and
the prefix cache reset afterwards:

* disk (auto for a server on this machine): `POST /collective_rpc` with `reload_weights` from a
  folder the server can read. Weights given as tensors are written to a temporary folder in
  `weights_dir` (default /dev/shm), removed afterwards, also on error.
* nccl (auto for a server elsewhere): vLLM's own NCCL weight transfer to the server's GPUs, see
  nccl_sync.py.

`score` uses vLLM's `prompt_logprobs` extension of the completions API.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from ..model import resolve_model
from ..sequence import end_of_turn_ids
from ..settings import VLLMConfig
from ..types import Generation, SamplingParams
from .base import ContextFull, Policy, WeightsSource, is_folder, save_weights, shm_dir
from .vllm import prompt_scores, require_temperature_one

_RETRY_STATUSES = {429, 502, 503, 504}


def _token_key(key: str) -> int:
    return int(key.split(":", 1)[1]) if key.startswith("token_id:") else int(key)


class ServerError(RuntimeError):
    """The server answered with an error, or with something this backend cannot use."""


class OpenAIPolicy(Policy):
    """Completions over HTTP. `base_url` is the server root (with or without a trailing /v1).

    `model` is the served model name (default: the first one the server lists). `tokenizer` is a
    tokenizer object or a local model folder/name; by default the served model name is resolved
    locally (vLLM serves a model under its path, so this usually just works). `settings` says how
    weights reach the server (`weight_sync`); `nccl_address`/`nccl_port` are where the server's
    workers reach this process for weight_sync: nccl (default: this machine's address on the route
    to the server, a free port).
    """

    def __init__(
        self,
        base_url: str,
        settings: VLLMConfig | None = None,
        *,
        model: str | None = None,
        tokenizer: Any = None,
        api_key: str | None = None,
        max_concurrency: int = 64,
        timeout_s: float = 600.0,
        retries: int = 3,
        stop_token_ids: list[int] | None = None,
        name: str | None = None,
        weights_dir: str | os.PathLike[str] | None = None,
        nccl_address: str | None = None,
        nccl_port: int = 0,
    ) -> None:
        self.settings = settings or VLLMConfig()
        if self.settings.weight_sync == "memory":
            raise ValueError(
                "weight_sync: memory needs the engine in this process (backend vllm); "
                "a server takes weights over nccl or from disk"
            )
        root = base_url.rstrip("/")
        self.base_url = root[: -len("/v1")] if root.endswith("/v1") else root
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        self.model, self.max_model_len = self._served_model(model)
        if tokenizer is None or isinstance(tokenizer, str | os.PathLike):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(tokenizer or self.model)))
        self.tokenizer = tokenizer
        self.name = name or Path(self.model).name
        self.stop_token_ids = list(stop_token_ids) if stop_token_ids else end_of_turn_ids(tokenizer)
        self.max_concurrency = max_concurrency
        self.timeout_s = timeout_s
        self.retries = retries
        self.weights_dir = Path(weights_dir) if weights_dir else None
        self._nccl_endpoint = (nccl_address, nccl_port)
        self._nccl: Any = None  # NCCLWeightSender, built at the first nccl sync
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}

    # ---- HTTP --------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _sync_request(self, method: str, path: str, body: Any = None, timeout: float = 60.0) -> Any:
        """Blocking call for the rare control requests (model list, weight reloads)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method, headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - user-given server URL
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ServerError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from exc
        return json.loads(raw) if raw.strip() else None

    def _served_model(self, wanted: str | None) -> tuple[str, int | None]:
        """The model to ask for (default: the first served) and its context length if the
        server says (vLLM lists max_model_len), to keep requests within it."""
        listing = self._sync_request("GET", "/v1/models")
        models = {m["id"]: m for m in (listing or {}).get("data", [])}
        if not models:
            raise ServerError(f"{self.base_url} serves no model")
        name = wanted or next(iter(models))
        limit = models.get(name, {}).get("max_model_len")
        return name, int(limit) if limit else None

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if loop not in self._sessions:
            for old_loop in [lp for lp in self._sessions if lp.is_closed()]:
                del self._sessions[old_loop]
            session = aiohttp.ClientSession(
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self.max_concurrency),
            )
            self._sessions[loop] = session
        return self._sessions[loop]

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON; retries refused connections and overload answers with a short back-off."""
        session = self._session()
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                async with session.post(self.base_url + path, json=body) as resp:
                    if resp.status == 200:
                        return await resp.json()
                    detail = (await resp.text())[:500]
                    if resp.status not in _RETRY_STATUSES or last:
                        raise ServerError(f"POST {path}: HTTP {resp.status}: {detail}")
            except aiohttp.ClientConnectionError:
                if last:
                    raise
            await asyncio.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    # ---- Policy ------------------------------------------------------------------------------

    async def generate(self, prompt_ids: list[int], params: SamplingParams) -> Generation:
        self.check_request(prompt_ids, params)
        max_tokens = params.max_new_tokens
        if self.max_model_len is not None:
            if len(prompt_ids) >= self.max_model_len:
                raise ContextFull(f"prompt of {len(prompt_ids)} tokens does not fit the server's {self.max_model_len}")
            max_tokens = min(max_tokens, self.max_model_len - len(prompt_ids))
        if max_tokens < 1:
            return Generation(token_ids=[], logprobs=[], text="", finish_reason="length")
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": list(prompt_ids),
            "max_tokens": max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "n": 1,
            "logprobs": 1,
            "return_tokens_as_token_ids": True,
            "stop_token_ids": self.stop_token_ids,
            "skip_special_tokens": True,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        reply = await self._post("/v1/completions", body)
        try:
            choice = reply["choices"][0]
            tokens = choice["logprobs"]["tokens"]
            logprobs = choice["logprobs"]["token_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise ServerError(f"completion without per-token logprobs: {str(reply)[:300]}") from exc
        ids = self._token_ids(tokens)
        return self.make_generation(ids, [float(x) for x in logprobs], max_tokens)

    def _token_ids(self, tokens: list[str]) -> list[int]:
        if all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            return [int(t.split(":", 1)[1]) for t in tokens]
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        unk = self.tokenizer.unk_token_id
        if any(i is None or (i == unk and t != self.tokenizer.unk_token) for i, t in zip(ids, tokens, strict=True)):
            raise ServerError(
                "the server returned token strings that are not vocabulary entries, so the sampled token "
                "ids are unknown; use a server with vLLM's return_tokens_as_token_ids"
            )
        return list(ids)

    def score(self, token_ids: list[int], temperature: float = 1.0) -> list[float]:
        """The server's log p(token_t | tokens_<t) (position 0: 0.0) through vLLM's
        `prompt_logprobs`; like the in-process engine, at temperature 1 only (see VLLMPolicy.score)."""
        require_temperature_one(temperature)
        if not token_ids:
            return []
        if self.max_model_len is not None and len(token_ids) >= self.max_model_len:
            raise ContextFull(f"{len(token_ids)} tokens do not fit the server's {self.max_model_len}")
        reply = self._sync_request(
            "POST",
            "/v1/completions",
            {
                "model": self.model,
                "prompt": list(token_ids),
                "max_tokens": 1,
                "temperature": 0.0,
                "prompt_logprobs": 0,
                "return_tokens_as_token_ids": True,
            },
            timeout=self.timeout_s,
        )
        try:
            rows = reply["choices"][0]["prompt_logprobs"]
        except (KeyError, IndexError, TypeError) as exc:
            raise NotImplementedError(
                f"{self.base_url} does not return prompt_logprobs (vLLM's extension of "
                "the completions API), so sequences cannot be scored"
            ) from exc
        if rows is None:
            raise NotImplementedError(f"{self.base_url} ignored prompt_logprobs; scoring needs a vLLM server")
        # JSON keys are strings: the token id, or "token_id:<id>" with return_tokens_as_token_ids.
        by_id = [None if row is None else {_token_key(k): v["logprob"] for k, v in row.items()} for row in rows]
        return prompt_scores(list(token_ids), by_id)

    @property
    def weight_sync(self) -> str:
        """disk or nccl; auto: disk for a server on this machine, nccl for one elsewhere."""
        if self.settings.weight_sync != "auto":
            return self.settings.weight_sync
        host = urllib.parse.urlparse(self.base_url).hostname or ""
        return "disk" if host in ("localhost", "127.0.0.1", "::1") else "nccl"

    def update_weights(self, source: WeightsSource) -> None:
        """New weights on the server: over NCCL (tensors) or from a folder it can read."""
        self._sync_request("POST", "/pause?mode=wait")
        try:
            if self.weight_sync == "nccl" and not is_folder(source):
                self._send_nccl(source)
            else:
                self._reload_from_disk(source)
        finally:
            self._sync_request("POST", "/resume")
        self._sync_request("POST", "/reset_prefix_cache")

    def _send_nccl(self, source: WeightsSource) -> None:
        if self._nccl is None:
            from .nccl_sync import NCCLWeightSender

            address, port = self._nccl_endpoint
            self._nccl = NCCLWeightSender(
                self._control_request, self.base_url, master_address=address, master_port=port
            )
        self._nccl.send(source)

    def _control_request(self, method: str, path: str, body: Any = None) -> Any:
        return self._sync_request(method, path, body, timeout=self.timeout_s)

    def _reload_from_disk(self, source: WeightsSource) -> None:
        tmp: Path | None = None
        try:
            if is_folder(source):
                folder = Path(source)
            else:
                tmp = Path(tempfile.mkdtemp(prefix="gymwire-weights-", dir=self.weights_dir or shm_dir()))
                save_weights(source, tmp)
                folder = tmp
            self._sync_request(
                "POST",
                "/collective_rpc",
                {"method": "reload_weights", "kwargs": {"weights_path": str(folder)}},
                timeout=self.timeout_s,
            )
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    async def aclose(self) -> None:
        """Close the HTTP session of the running event loop."""
        loop = asyncio.get_running_loop()
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()

    def close(self) -> None:
        """Close the HTTP sessions (from inside a running loop prefer `await aclose()`) and the
        NCCL group, if one was opened."""
        if self._nccl is not None:
            self._nccl.close()
            self._nccl = None
        for loop, session in list(self._sessions.items()):
            self._sessions.pop(loop, None)
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(session.close(), loop)
            else:
                loop.run_until_complete(session.close())
