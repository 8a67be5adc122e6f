"""moto_server with Glue's optimistic concurrency: `UpdateTable` with a `VersionId` that is
not the table's current version fails with `ConcurrentModificationException`, as Glue does.

moto (5.2.x) ignores `VersionId`, so two writers that both read version N can both update
the table, the later silently replacing the earlier: a lost commit that real Glue refuses.
refold's Glue adapter relies on Glue's check (see adapters/aws/src/glue/mod.rs); the tests
that run several writers on one table through Glue need the stand-in to make it too.

Usage: the arguments of `moto_server` (`moto_server.py -H 127.0.0.1 -p PORT`).
"""
import sys
import threading

from moto.glue import responses
from moto.glue.exceptions import GlueClientError
from moto.server import main


class ConcurrentModificationException(GlueClientError):
    def __init__(self, message: str):
        super().__init__("ConcurrentModificationException", message)


# One update at a time: the version check and the update are one step, as in Glue.
_LOCK = threading.Lock()
_UPDATE_TABLE = responses.GlueResponse.update_table


def update_table(self):
    version_id = self.parameters.get("VersionId")
    with _LOCK:
        if version_id is not None:
            database = self.parameters.get("DatabaseName")
            name = (self.parameters.get("TableInput") or {}).get("Name")
            table = self.glue_backend.get_table(database, name)
            current = str(table._current_version)
            if str(version_id) != current:
                raise ConcurrentModificationException(
                    f"Table {database}.{name}: version {version_id} is not the current "
                    f"version {current}"
                )
        return _UPDATE_TABLE(self)


responses.GlueResponse.update_table = update_table

if __name__ == "__main__":
    sys.exit(main())
