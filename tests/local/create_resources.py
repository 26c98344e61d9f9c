"""Creates makesync's tables and queue on a local moto server, as the SAM template does in AWS.

Usage: python tests/local/create_resources.py http://127.0.0.1:5599
Prints the environment the functions need, as `export` lines. Only talks to 127.0.0.1.
"""

import sys
import boto3

endpoint = sys.argv[1]
if not endpoint.startswith(("http://127.0.0.1:", "http://localhost:")):
    sys.exit(f"refusing to create resources anywhere but on 127.0.0.1: {endpoint}")
session = dict(endpoint_url=endpoint, region_name="us-east-1",
               aws_access_key_id="testing", aws_secret_access_key="testing")
dynamodb = boto3.client("dynamodb", **session)
sqs = boto3.client("sqs", **session)


def table(name, sort_key=None):
    keys = [{"AttributeName": "connectionId", "KeyType": "HASH"}]
    attributes = [{"AttributeName": "connectionId", "AttributeType": "S"}]
    if sort_key:
        keys.append({"AttributeName": sort_key[0], "KeyType": "RANGE"})
        attributes.append({"AttributeName": sort_key[0], "AttributeType": sort_key[1]})
    if name not in dynamodb.list_tables()["TableNames"]:
        dynamodb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=attributes,
                              BillingMode="PAY_PER_REQUEST")


table("makesync-connections")
table("makesync-users", ("userId", "N"))
table("makesync-sync-runs", ("runId", "S"))
queue_url = sqs.create_queue(QueueName="makesync-sync")["QueueUrl"]
print(f"export MAKESYNC_QUEUE_URL={queue_url}")
