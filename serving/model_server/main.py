"""`aiqleads-model-server`: the console script; parses flags and runs a `ModelServer`.

Serves until SIGTERM/SIGINT, then stops accepting, drains in-flight requests and exits 0.
Flag or config errors print one line and exit 2, like other `aiqleads` commands.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiqleads.errors import AiqleadsError
from serving.model_server.flags import parse_flags, usage

log = logging.getLogger("aiqleads.model_server")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if any(a in ("-h", "--help", "-help", "--helpfull") for a in argv):
        print(usage())
        return 0
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s model_server: %(message)s"
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        flags = parse_flags(argv)
        # Imported here, not at the top, for start-up speed only: the server loads TensorFlow
        # (seconds), which --help and flag errors do not need.
        from serving.model_server.server import ModelServer

        server = ModelServer(flags)
        server.start()
    except AiqleadsError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, server.stop)
    try:
        loop.run_until_complete(server.serve_rest())
    except OSError as e:
        print(f"error: cannot serve REST on port {flags.rest_api_port}: {e}", file=sys.stderr)
        server.stop()
        server.shutdown()
        return 2
    finally:
        loop.close()
    log.info("shutting down: draining in-flight requests")
    server.shutdown()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
