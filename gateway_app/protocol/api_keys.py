"""The Kafka API keys the gateway treats specially, named once (kio's api_key_map has their names;
tests/unit/test_kio_adapter.py checks that the two agree). Plain ints: they are compared per frame."""

PRODUCE = 0
FETCH = 1
METADATA = 3
FIND_COORDINATOR = 10
LIST_GROUPS = 16
API_VERSIONS = 18
CREATE_TOPICS = 19
DESCRIBE_CONFIGS = 32
DESCRIBE_LOG_DIRS = 35
DESCRIBE_CLUSTER = 60
LIST_CONFIG_RESOURCES = 74
DESCRIBE_TOPIC_PARTITIONS = 75
SHARE_FETCH = 78
SHARE_ACKNOWLEDGE = 79
