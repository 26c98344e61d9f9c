//! The users table's stream on moto, read as Lambda's event source mapping would hand it to
//! the events function, and the events the function put on the bus, read from the queue a
//! rule sends them to.

use aws_lambda_events::event::dynamodb::Event;
use aws_sdk_dynamodbstreams::types::{AttributeValue, ShardIteratorType};
use serde_json::{json, Map, Value};

/// An attribute in DynamoDB's JSON (`{"S": "…"}`), as stream events carry it.
fn attribute(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::M(map) => json!({ "M": image(map) }),
        AttributeValue::L(list) => json!({ "L": list.iter().map(attribute).collect::<Vec<_>>() }),
        AttributeValue::Ss(set) => json!({ "SS": set }),
        AttributeValue::Ns(set) => json!({ "NS": set }),
        other => panic!("an attribute the tests do not write: {other:?}"),
    }
}

fn image(map: &std::collections::HashMap<String, AttributeValue>) -> Map<String, Value> {
    map.iter().map(|(k, v)| (k.clone(), attribute(v))).collect()
}

/// Reads the stream of `table` from its start, records after the first `skip`.
pub struct StreamReader {
    client: aws_sdk_dynamodbstreams::Client,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    read: usize,
}

impl StreamReader {
    pub fn new(sdk: &aws_config::SdkConfig, table: &str) -> Self {
        Self {
            client: aws_sdk_dynamodbstreams::Client::new(sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(sdk),
            table: table.to_string(),
            read: 0,
        }
    }

    /// The records written since the last call, as one event.
    pub async fn next_event(&mut self) -> Event {
        let arn = self
            .dynamodb
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .expect("describe table")
            .table()
            .and_then(|t| t.latest_stream_arn())
            .expect("the users table has a stream")
            .to_string();
        let stream = self
            .client
            .describe_stream()
            .stream_arn(&arn)
            .send()
            .await
            .expect("describe stream");
        let mut records = Vec::new();
        for shard in stream
            .stream_description()
            .map(|d| d.shards())
            .unwrap_or_default()
        {
            let mut iterator = self
                .client
                .get_shard_iterator()
                .stream_arn(&arn)
                .shard_id(shard.shard_id().unwrap_or_default())
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .expect("shard iterator")
                .shard_iterator()
                .map(str::to_string);
            while let Some(current) = iterator.take() {
                let page = self
                    .client
                    .get_records()
                    .shard_iterator(current)
                    .send()
                    .await
                    .expect("records");
                if page.records().is_empty() {
                    break;
                }
                for record in page.records() {
                    let change = record.dynamodb().expect("a stream record");
                    let mut body = json!({
                        "Keys": change.keys().map(image).unwrap_or_default(),
                        "SequenceNumber": change.sequence_number(),
                        "SizeBytes": change.size_bytes().unwrap_or(0),
                        "StreamViewType": "NEW_AND_OLD_IMAGES",
                        "ApproximateCreationDateTime": change
                            .approximate_creation_date_time()
                            .map_or(0.0, |t| t.as_secs_f64()),
                    });
                    if let Some(new) = change.new_image() {
                        body["NewImage"] = Value::Object(image(new));
                    }
                    if let Some(old) = change.old_image() {
                        body["OldImage"] = Value::Object(image(old));
                    }
                    records.push(json!({
                        "eventID": record.event_id(),
                        "eventName": record.event_name().map(|n| n.as_str()),
                        "eventSource": "aws:dynamodb",
                        "eventVersion": "1.1",
                        "awsRegion": "us-east-1",
                        "eventSourceARN": arn,
                        "dynamodb": body,
                    }));
                }
                iterator = page.next_shard_iterator().map(str::to_string);
            }
        }
        let fresh: Vec<Value> = records.split_off(self.read.min(records.len()));
        self.read += fresh.len();
        serde_json::from_value(json!({ "Records": fresh })).expect("a DynamoDB stream event")
    }
}
