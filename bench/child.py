"""Child entry point: `python -m bench.child SCENARIO PARAMS_JSON` runs one measured scenario."""
from __future__ import annotations

import importlib
import json
import sys
import traceback

from .common import Skipped
from .harness import RESULT, SKIP, SKIP_CODE

# scenario name -> "module:function"; each function takes the params dict and returns a dict.
SCENARIOS = {
    "baseline_smtplib": "bench.baselines:rss2email_style",
    "baseline_raw": "bench.baselines:raw_ceiling",
    "fanout_prepare": "bench.fanout:prepare",
    "fanout_run": "bench.fanout:run",
    "poll": "bench.polling:run",
    "latency": "bench.latency:run",
    "digest_prepare": "bench.digest:prepare",
    "digest_run": "bench.digest:run",
    "pages_prepare": "bench.pages:prepare",
    "pages_run": "bench.pages:run",
    "scale_subscribers": "bench.scale_child:subscribers",
    "scale_compaction": "bench.scale_child:compaction",
}


def main(argv: list[str]) -> int:
    """Run the named scenario and print its result line."""
    name, params = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    module, func = SCENARIOS[name].split(":")
    try:
        fn = getattr(importlib.import_module(module), func)
        result = fn(params)
    except Skipped as exc:
        print(SKIP + str(exc), flush=True)
        return SKIP_CODE
    except Exception:
        traceback.print_exc()
        return 1
    print(RESULT + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
