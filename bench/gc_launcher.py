"""``cds-service serve`` with the garbage collector tuned: an experiment the benchmark reports
separately (``bash bench/run.sh`` runs it after the main runs; ``--no-gc-experiment`` skips it).

Not how the product starts today. It measures a proposed change to ``cds_service/cli.py``:
after the app (and its knowledge) is built and before gunicorn forks, ``gc.freeze()`` moves the
long-lived objects out of the collector's way (full collections stop walking them, and forked
workers stop touching their pages), and a higher first-generation threshold (10,000 instead of
700) means a 7 MB prefetch (about 300,000 new objects) triggers far fewer collections while it
is parsed. Usage: ``python -m bench.gc_launcher serve --host ... --port ... --workers ...``.
"""

from __future__ import annotations

import gc
import sys

from cds_service import app as app_module
from cds_service import cli

THRESHOLDS = (10_000, 10, 10)  # (50_000, 50, 50) was faster still but let cyclic garbage pile up: RSS 250 MB
_create_app = app_module.create_app


def create_app(*args, **kwargs):  # type: ignore[no-untyped-def]
    app = _create_app(*args, **kwargs)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return app


app_module.create_app = create_app

if __name__ == "__main__":
    sys.exit(cli.main(sys.argv[1:]))
