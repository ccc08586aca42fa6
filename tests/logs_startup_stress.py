"""Start and stop a gevent service many times while native threads log (issue #21).

Run in a fresh interpreter (gevent patches first): `python tests/logs_startup_stress.py
STATE_DIR STARTS`. Alembic (at DEBUG, from the registry's worker thread) and a
native thread of our own log all the time; every start, call and stop has a
deadline; a hub that hangs outright is caught by faulthandler's watchdog (exit 1
with every thread's stack). Prints one JSON line: {"starts": N, "hangs": H, "records": R}.
"""

from gevent import monkey

monkey.patch_all()

import faulthandler  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gevent  # noqa: E402

from actors import Service, ServiceConfig  # noqa: E402
from actors.logs import configure_logging  # noqa: E402

STEP_DEADLINE = 20.0


def main() -> int:
    state, starts = Path(sys.argv[1]), int(sys.argv[2])
    out = (state / "log.txt").open("w")
    handler = configure_logging("DEBUG", "text", stream=out)
    start_thread = monkey.get_original("_thread", "start_new_thread")
    stop_noise = [False]
    noise = logging.getLogger("stress.native")

    pause = monkey.get_original("time", "sleep")

    def native_noise() -> None:  # a real thread, logging all the time
        n = 0
        while not stop_noise[0]:
            noise.info("native line %d", n)
            n += 1
            if n % 20 == 0:
                pause(0.001)  # pacing, so the service gets the GIL too

    for _ in range(2):
        start_thread(native_noise, ())
    hangs = 0
    for i in range(starts):
        config = ServiceConfig(
            host="h",
            runtime="gevent",
            state_dir=state / f"s{i}",
            enabled_backends=["b"],
            backends={
                "b": {
                    "manager": "actors.manager_actor:ManagerActor",
                    "driver": "actors.drivers.fake:FakeDriver",
                }
            },
        )
        service = Service(config)

        def one_start(service: Service = service) -> None:
            service.start()
            service.call("b", "ping", {}, timeout=STEP_DEADLINE)
            service.stop()

        # A hub blocked on a native lock cannot time the join out: a C-level
        # watchdog dumps every thread's stack and exits 1 instead.
        faulthandler.dump_traceback_later(2 * STEP_DEADLINE, exit=True)
        worker = gevent.spawn(one_start)
        worker.join(timeout=STEP_DEADLINE)
        if not worker.ready():
            hangs += 1
            worker.kill(block=False)
        elif worker.exception is not None:
            raise worker.exception
    faulthandler.cancel_dump_traceback_later()
    stop_noise[0] = True
    handler.close()
    out.close()
    records = sum(1 for _ in (state / "log.txt").open())
    print(json.dumps({"starts": starts, "hangs": hangs, "records": records}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
