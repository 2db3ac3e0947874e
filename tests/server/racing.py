"""Two commits raced to one branch through two servers (replicas of one store)."""

from __future__ import annotations

import threading
from typing import Callable

from huggingface_hub import CommitOperationAdd
from huggingface_hub.errors import HfHubHTTPError

from gptstore.testing import StoreServer


def race_commits(first: StoreServer, second: StoreServer, repo_id: str, head: str, message: str,
                 operations: Callable[[str], list[CommitOperationAdd]]) -> dict[str, object]:
    """Commit ``operations("a")`` through ``first`` and ``operations("b")`` through ``second`` at
    once, both on parent ``head``: ``{"a"|"b": the new commit id, or the HTTP status refusing it}``."""
    outcomes: dict[str, object] = {}

    def push(name: str, server: StoreServer) -> None:
        try:
            outcomes[name] = server.api("alice").create_commit(
                repo_id, operations(name), commit_message=f"{name} {message}", parent_commit=head).oid
        except HfHubHTTPError as exc:
            outcomes[name] = exc.response.status_code

    threads = [threading.Thread(target=push, args=(name, server)) for name, server in (("a", first), ("b", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
