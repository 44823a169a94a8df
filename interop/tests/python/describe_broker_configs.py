"""kafka-python's describe_configs of one broker, driven by the interop tests.

Usage: describe_broker_configs.py BOOTSTRAP BROKER_ID FILTER

Prints one JSON object: {config name: {"value", "config_source", "read_only", ...}} as
KafkaAdminClient.describe_configs returns it for ConfigResource(BROKER, BROKER_ID) with
synonyms and the given config_filter ("all", "modified", "static", ...).
"""

import json
import sys

from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient


def main():
    bootstrap, broker_id, config_filter = sys.argv[1:4]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        result = admin.describe_configs(
            [ConfigResource(ConfigResourceType.BROKER, broker_id)],
            include_synonyms=True,
            config_filter=config_filter,
        )
    finally:
        admin.close()
    print(json.dumps(result.get("broker", {}).get(broker_id, {}), default=str))


if __name__ == "__main__":
    main()
