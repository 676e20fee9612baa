"""The Lua scripts under flashgate/lua/: source and SHA1, called with EVALSHA, reloaded on NOSCRIPT."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib.resources.abc import Traversable
from typing import Any

from redis.exceptions import NoScriptError

from flashgate.names import ADMIT_SCRIPT, LUA_DIR, OUTBOX_ACK_SCRIPT, OUTBOX_CLAIM_SCRIPT
from gate.redis_batch import RoundTrips

SCRIPT_NAMES = (ADMIT_SCRIPT, OUTBOX_ACK_SCRIPT, OUTBOX_CLAIM_SCRIPT)


class Scripts:
    """Read once at start-up; `call` runs a script in the current tick's pipeline."""

    def __init__(self, lua_dir: Traversable = LUA_DIR) -> None:
        self.source = {name: (lua_dir / f"{name}.lua").read_text() for name in SCRIPT_NAMES}
        self.sha = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in self.source.items()}  # noqa: S324

    async def call(self, batcher: RoundTrips, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """EVALSHA; on NOSCRIPT (Redis restarted or flushed) load the script and run it once more.

        NOSCRIPT means the script did not run, so running it again cannot admit twice. On a
        cluster the script is loaded on the node that said so (`route`): each node has its own cache.
        """
        try:
            return await batcher.call("EVALSHA", self.sha[name], len(keys), *keys, *args)
        except NoScriptError:
            await batcher.call("SCRIPT", "LOAD", self.source[name], route=keys[0])
            return await batcher.call("EVALSHA", self.sha[name], len(keys), *keys, *args)
