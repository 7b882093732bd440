"""The worker's JSON logs carry the Temporal IDs and the business keys at the top level."""

import io
import json
import logging

from worker import configure_logging


def test_workflow_log_lines_carry_ids_and_business_keys():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure_logging(stream=stream)
        logging.getLogger("temporalio.workflow").info(
            "invoicing the proration",
            extra={
                "temporal_workflow": {"workflow_id": "amendment-A-1", "run_id": "r-1"},
                "o2c": {"process": "amendment", "customer": "cus_1", "contract": "C-1", "status": "running"},
            },
        )
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    line = json.loads(stream.getvalue().strip().splitlines()[-1])
    assert line["event"] == "invoicing the proration" and line["level"] == "info"
    assert (line["workflow_id"], line["run_id"]) == ("amendment-A-1", "r-1")
    assert (line["customer"], line["contract"], line["status"]) == ("cus_1", "C-1", "running")
