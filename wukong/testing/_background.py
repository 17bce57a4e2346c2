"""`async with` for the test helpers that run in the background between `start()` and `stop()`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Self


class Background(ABC):
    """Started on entering `async with`, stopped on leaving it however the block ends."""

    @abstractmethod
    async def start(self) -> None:
        """Return once running and ready to use."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop and release everything `start` took."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
