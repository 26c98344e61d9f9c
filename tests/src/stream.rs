//! The users table's stream on moto, read as Lambda's event source mapping would hand it to
//! the events function, and the events the function put on the bus, read from the queue a
//! rule sends them to.

use crate::aws::{moto_sdk_config, AwsTestEnv};
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
                records.extend(page.records().iter().map(|r| lambda_record(r, &arn)));
                iterator = page.next_shard_iterator().map(str::to_string);
            }
        }
        let fresh: Vec<Value> = records.split_off(self.read.min(records.len()));
        self.read += fresh.len();
        serde_json::from_value(json!({ "Records": fresh })).expect("a DynamoDB stream event")
    }
}

/// A stream record as Lambda hands it to the events function.
fn lambda_record(record: &aws_sdk_dynamodbstreams::types::Record, arn: &str) -> Value {
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
    json!({
        "eventID": record.event_id(),
        "eventName": record.event_name().map(|n| n.as_str()),
        "eventSource": "aws:dynamodb",
        "eventVersion": "1.1",
        "awsRegion": "us-east-1",
        "eventSourceARN": arn,
        "dynamodb": body,
    })
}

/// A bus, and a queue that a rule sends every makesync event to.
pub async fn bus_to_queue(env: &AwsTestEnv) -> (String, String) {
    let sdk = moto_sdk_config().await;
    let events = aws_sdk_eventbridge::Client::new(&sdk);
    let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let bus = format!("makesync-events-{suffix}");
    events
        .create_event_bus()
        .name(&bus)
        .send()
        .await
        .expect("bus");
    let queue = crate::aws::create_queue(&env.sqs, &format!("events-{suffix}")).await;
    let arn = env
        .sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("queue ARN")
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn))
        .cloned()
        .expect("queue ARN");
    events
        .put_rule()
        .name(format!("all-{suffix}"))
        .event_bus_name(&bus)
        .event_pattern(r#"{"source": ["makesync"]}"#)
        .send()
        .await
        .expect("rule");
    events
        .put_targets()
        .rule(format!("all-{suffix}"))
        .event_bus_name(&bus)
        .targets(
            aws_sdk_eventbridge::types::Target::builder()
                .id("queue")
                .arn(arn)
                .build()
                .expect("target"),
        )
        .send()
        .await
        .expect("target");
    (bus, queue)
}

/// The events the rule delivered so far: (detail type, detail).
pub async fn delivered(env: &AwsTestEnv, queue: &str) -> Vec<(String, Value)> {
    let mut events = Vec::new();
    loop {
        let output = env
            .sqs
            .receive_message()
            .queue_url(queue)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive");
        if output.messages().is_empty() {
            return events;
        }
        for message in output.messages() {
            let event: Value = serde_json::from_str(message.body().unwrap_or("{}")).unwrap();
            assert_eq!(event["source"], "makesync");
            events.push((
                event["detail-type"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                event["detail"].clone(),
            ));
            env.sqs
                .delete_message()
                .queue_url(queue)
                .receipt_handle(message.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete");
        }
    }
}
