"""The keyring a running broker uses, reloadable from its file without a restart."""

from __future__ import annotations

import os

from broker.crypto.keyring import Keyring


class KeyringFile:
    """Holds the current `Keyring`; `reload()` swaps it atomically (SIGHUP handler).

    Callers take `holder.current` (or pass `holder.get` as a provider) per operation, so a
    promoted key is used by the next write without rebuilding anything.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.current = Keyring.load(path)

    def get(self) -> Keyring:
        return self.current

    def reload(self) -> Keyring:
        """Load the file again; on error the old keyring stays in use and the error is raised."""
        self.current = Keyring.load(self.path)
        return self.current
