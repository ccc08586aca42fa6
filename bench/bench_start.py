"""Start-up of a share backend with many shares: time to listening, to up, to repaired; RSS.

    python bench/bench_start.py [--shares N] [--runtime gevent|threading]

Makes N shares directly (rows in the registry, directories under the
LocalShareDriver's root; see tests/share_service/scale.py), then starts a
real `actorsd` over them and reports, from its start: when it listens, when
the registry says the backend is up (heartbeats), when the log says the
start-up repairs are done, and the daemon's peak RSS (VmHWM). A read of the
last share is checked before the daemon is stopped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.share_service.scale import seed_shares, start_and_wait_repaired  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shares", type=int, default=100_000)
    parser.add_argument("--runtime", choices=("gevent", "threading"), default="gevent")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        began = time.monotonic()
        seed_shares(Path(tmp), args.shares)
        print(f"made {args.shares:,} shares in {time.monotonic() - began:.1f}s", flush=True)
        timings = start_and_wait_repaired(Path(tmp), args.runtime, args.shares, timeout=1800)
    print(
        f"{args.runtime}: {args.shares:,} shares: listening after {timings['listening_s']:.1f}s,"
        f" up after {timings['up_s']:.1f}s, repaired after {timings['repaired_s']:.1f}s,"
        f" peak RSS {timings['rss_mb']:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
