"""The keyring a running broker uses, reloadable from its file without a restart."""

from __future__ import annotations

import os

from broker.crypto.keyring import Keyring
from broker.errors import ConfigError


class KeyringFile:
    """Holds the current `Keyring`; `reload()` swaps it atomically (SIGHUP handler).

    Callers take `holder.current` (or pass `holder.get` as a provider) per operation, so a
    promoted key is used by the next write without rebuilding anything.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = path
        self.current = Keyring.load(path)
        self.stamp = self._stamp()
        self.last_error: str | None = None

    def get(self) -> Keyring:
        return self.current

    def reload(self) -> Keyring:
        """Load the file again; on error the old keyring stays in use and the error is raised."""
        stamp = self._stamp()
        try:
            self.current = Keyring.load(self.path)
        except ConfigError as exc:
            self.last_error = str(exc)
            raise
        self.stamp, self.last_error = stamp, None
        return self.current

    def changed(self) -> bool:
        """Whether the file looks different from the one last loaded (mtime, size, inode)."""
        return self._stamp() != self.stamp

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)
