"""The router: the one retry loop in front of every model request.

A request is routed by its task type (set by the loop: `plan`, `act`, …, plus
`[router.routes]`) to a group of deployments. Inside the group it retries on
another deployment after a 429, a timeout, a 5xx or a connection failure,
backing off (a server's Retry-After wins, up to a cap); a conversation too
long for the model goes to the group's `context_fallback`; a 4xx is returned
at once. When a group is exhausted its `fallbacks` are tried in order. Every
failed attempt counts towards the deployment's cool-down, wherever in the
chain it happened.

Selection is a round-robin pointer that skips cooled-down deployments, so
its cost does not grow with the number of deployments unless most of them
are cooling down.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from luminaguard.config import RouterSettings
from luminaguard.errors import (
    AllAttemptsFailed,
    BadRequest,
    ConfigError,
    ContextTooLong,
    ProviderError,
    RateLimited,
)
from luminaguard.messages import AssistantTurn, Message, ToolSpec
from luminaguard.protocols import Provider

Factory = Callable[[str], Provider]


@dataclass(eq=False)
class Deployment:
    spec: str
    factory: Factory
    fails: deque[float] = field(default_factory=deque)
    cooldown_until: float = 0.0
    _provider: Provider | None = None

    @property
    def provider(self) -> Provider:
        if self._provider is None:
            self._provider = self.factory(self.spec)
        return self._provider


@dataclass
class Group:
    name: str
    deployments: list[Deployment]
    fallbacks: list[str]
    context_fallback: str | None
    next: int = 0


class Router:
    name = "router"

    def __init__(
        self,
        settings: RouterSettings,
        factory: Factory,
        *,
        metrics: Any | None = None,
        prices: dict[str, tuple[float, float]] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        before_attempt: Callable[[str], None] | None = None,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
        waiting_after_s: float = 3.0,
    ) -> None:
        if not settings.groups:
            raise ConfigError("the router needs at least one group in [router.groups]")
        self.settings = settings
        self.metrics = metrics
        self.prices = prices or {}
        self.sleep = sleep
        self.clock = clock
        # Called with a deployment's spec before each request to it: the run
        # counts model calls per provider there (its limits may raise).
        self.before_attempt = before_attempt
        # Told of a request that has been waiting ``waiting_after_s`` and of each
        # failed attempt (what failed, what comes next): a long wait is shown.
        self.notify = notify or (lambda event, data: None)
        self.waiting_after_s = waiting_after_s
        shared: dict[str, Deployment] = {}
        self.groups: dict[str, Group] = {}
        for name, g in settings.groups.items():
            # One Deployment per spec, shared by every group that lists it, so
            # its failures and cool-down count wherever they happen.
            deps = [shared.setdefault(spec, Deployment(spec, factory)) for spec in g.models]
            self.groups[name] = Group(name, deps, list(g.fallbacks), g.context_fallback)
        for name, group in self.groups.items():
            for target in [
                *group.fallbacks,
                *([group.context_fallback] if group.context_fallback else []),
            ]:
                if target not in self.groups:
                    raise ConfigError(
                        f"router group {name!r} falls back to unknown group {target!r}"
                    )
        for task, target in settings.routes.items():
            if target not in self.groups:
                raise ConfigError(f"router route {task!r} names unknown group {target!r}")
        self.default = settings.default_group or next(iter(self.groups))
        if self.default not in self.groups:
            raise ConfigError(f"router default_group {self.default!r} is not a group")

    @classmethod
    def single(
        cls, spec: str, factory: Factory, base: RouterSettings | None = None, **options: Any
    ) -> Router:
        """A group of one model, with ``base``'s retries, back-off and cool-down."""
        from luminaguard.config import RouterGroup

        one = {
            "groups": {"default": RouterGroup(models=[spec])},
            "routes": {},
            "default_group": None,
        }
        settings = (base or RouterSettings()).model_copy(update=one)
        return cls(settings, factory, **options)

    def select(self, group: Group) -> Deployment | None:
        now = self.clock()
        n = len(group.deployments)
        for i in range(n):
            d = group.deployments[(group.next + i) % n]
            if d.cooldown_until <= now:
                group.next = (group.next + i + 1) % n
                return d
        return None

    def _failed(self, d: Deployment) -> None:
        now = self.clock()
        window = self.settings.cooldown_s
        d.fails.append(now)
        while d.fails and d.fails[0] < now - window:
            d.fails.popleft()
        if len(d.fails) >= self.settings.allowed_fails:
            d.cooldown_until = now + window
            d.fails.clear()

    def _backoff(self, attempt: int, exc: ProviderError) -> float:
        delay = float(self.settings.backoff_s * (2**attempt))
        if isinstance(exc, RateLimited) and exc.retry_after_s is not None:
            delay = max(delay, exc.retry_after_s)
        return min(delay, self.settings.max_backoff_s)

    async def complete(
        self,
        messages: Sequence[Message],
        tools: Sequence[ToolSpec],
        *,
        task_type: str = "act",
        on_text: Callable[[str], None] | None = None,
        max_tokens: int | None = None,
    ) -> AssistantTurn:
        first = self.settings.routes.get(task_type, self.default)
        queue: deque[str] = deque([first])
        tried: set[str] = set()
        errors: list[str] = []
        while queue:
            name = queue.popleft()
            if name in tried:
                continue
            tried.add(name)
            group = self.groups[name]
            for attempt in range(self.settings.retries + 1):
                d = self.select(group)
                if d is None:
                    errors.append(f"{name}: every deployment is cooling down")
                    break
                if self.before_attempt is not None:
                    self.before_attempt(d.spec)
                request_id = uuid.uuid4().hex
                started = self.clock()
                attempt_of = f"attempt {attempt + 1}/{self.settings.retries + 1}"
                waiting = asyncio.get_running_loop().call_later(
                    self.waiting_after_s,
                    self.notify,
                    "model_waiting",
                    {"spec": d.spec, "attempt": attempt_of, "after_s": self.waiting_after_s},
                )
                relay = None if on_text is None else _cancelling(waiting, on_text)
                try:
                    turn = await d.provider.complete(
                        messages,
                        tools,
                        task_type=task_type,
                        on_text=relay,
                        **({"max_tokens": max_tokens} if max_tokens is not None else {}),
                    )
                except ContextTooLong as exc:
                    self._failed(d)
                    self._record(d, task_type, started, None, exc, request_id)
                    errors.append(f"{d.spec}: {exc}")
                    if group.context_fallback:
                        queue.appendleft(group.context_fallback)
                    break
                except BadRequest as exc:
                    self._record(d, task_type, started, None, exc, request_id)
                    raise
                except ProviderError as exc:
                    self._failed(d)
                    self._record(d, task_type, started, None, exc, request_id)
                    errors.append(f"{d.spec}: {exc}")
                    again = attempt < self.settings.retries
                    delay = self._backoff(attempt, exc) if again else 0.0
                    self.notify(
                        "model_retry",
                        {
                            "spec": d.spec,
                            "attempt": attempt_of,
                            "error": str(exc),
                            "next": f"retrying in {delay:.1f} s" if again else "giving up on it",
                        },
                    )
                    if again:
                        await self.sleep(delay)
                    continue
                finally:
                    waiting.cancel()
                cost = self._cost(d.spec, turn)
                turn = replace(turn, provider=d.spec, request_id=request_id, cost_usd=cost)
                self._record(d, task_type, started, turn, None, request_id)
                return turn
            queue.extend(group.fallbacks)
        raise AllAttemptsFailed("every attempt failed: " + _counted(errors[-6:]))

    def _cost(self, spec: str, turn: AssistantTurn) -> float:
        price = self.prices.get(spec)
        if price is None:
            return 0.0
        return (
            turn.usage.input_tokens * price[0] + turn.usage.output_tokens * price[1]
        ) / 1_000_000

    def _record(
        self,
        d: Deployment,
        task_type: str,
        started: float,
        turn: AssistantTurn | None,
        exc: Exception | None,
        request_id: str,
    ) -> None:
        if self.metrics is None:
            return
        self.metrics.record(
            request_id=request_id,
            spec=d.spec,
            task_type=task_type,
            duration_s=self.clock() - started,
            turn=turn,
            error_type=type(exc).__name__ if exc is not None else None,
        )


def _cancelling(
    waiting: asyncio.TimerHandle, on_text: Callable[[str], None]
) -> Callable[[str], None]:
    """``on_text``, which first cancels the "still waiting" notice: it answers."""

    def relay(text: str) -> None:
        waiting.cancel()
        on_text(text)

    return relay


def _counted(errors: list[str]) -> str:
    """Errors in order, a run of the same one said once with its count."""
    out: list[tuple[str, int]] = []
    for e in errors:
        if out and out[-1][0] == e:
            out[-1] = (e, out[-1][1] + 1)
        else:
            out.append((e, 1))
    return "; ".join(e if n == 1 else f"{e} ({n} times)" for e, n in out)
