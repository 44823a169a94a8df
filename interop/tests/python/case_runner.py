"""What the client case scripts (confluent_cases.py, kafka_python_cases.py) share: the
records every client produces, as common/client.rs `records` describes them, and running
one case, picked by name from the script's `case_*` functions.
"""

import json
import sys
import traceback

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
RECORDS_PER_CODEC = 10
BASE_TIMESTAMP_MS = 1_700_000_000_000
TIMEOUT_S = 15


def record(codec, i):
    return {
        "k": None if i == 3 else f"k{i}",
        "v": f"{codec}-{i}-" + "x" * 100,
        "h": [["i", str(i)], ["codec", codec]],
        "ts": BASE_TIMESTAMP_MS + 1000 * i,
    }


def run_case(scope):
    """Runs `case_<CASE>(BOOTSTRAP)` from `scope` (a script's globals) and prints its result,
    or {"error": ...} when it raised, as one JSON line."""
    cases = {name[len("case_"):]: f for name, f in scope.items() if name.startswith("case_")}
    case, bootstrap = sys.argv[1:3]
    try:
        out = cases[case](bootstrap)
    except Exception as e:
        traceback.print_exc()
        out = {"error": repr(e)}
    print(json.dumps(out), flush=True)
