"""`make run`: start an embedded service and perform real operations.

A ServiceActor with one DirectoryManager/DirectoryDriver backend rooted in
./state/demo, on the gevent runtime. It creates, lists and deletes real
directories and prints each step and the actor tree.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

from actors import BackendConfig, Service, ServiceConfig


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    root = Path(argv[0] if argv else "state/demo").resolve()
    config = ServiceConfig(
        host="demo-host",
        runtime="gevent",
        enabled_backends=["files"],
        backends={
            "files": BackendConfig(
                manager="actors.examples.files:DirectoryManager",
                driver="actors.examples.files:DirectoryDriver",
                options={"root": str(root)},
            )
        },
    )
    with Service(config) as service:
        print(f"started {service.name}; backend demo-host@files rooted at {root}")
        for name in ("alpha", "beta"):
            item = service.call("files", "create", {"name": name, "content": f"hello {name}\n"})
            print(f"create {name}: {item['path']} ({item['kilobytes']} KiB)")
        listing = service.call("files", "list_items")
        print(f"list_items: {listing['count']} items: {[i['name'] for i in listing['items']]}")
        try:
            service.call("files", "create", {"name": "../escape"})
        except Exception as exc:
            print(f"create ../escape refused: {type(exc).__name__}: {exc}")
        print(f"delete beta: {service.call('files', 'delete', {'name': 'beta'})}")
        stats = service.call("files", "stats")
        print(f"stats: {stats['free_bytes'] // 2**20} MiB free")
        print("actors:")
        for status in service.status():
            print(
                "  "
                + json.dumps(
                    {k: status.get(k) for k in ("name", "kind", "state", "mailbox", "restarts")}
                )
            )
    print("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
