//! The SAM template, read as the tests compare the code with it (`infra/template.yaml`).

use serde_yaml::Value;

/// The template, parsed; CloudFormation's short forms (`!GetAtt`, `!Sub`, `!If`) read as
/// tagged values.
pub fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    let text = std::fs::read_to_string(path).expect("infra/template.yaml");
    serde_yaml::from_str(&text).expect("the template is YAML")
}

/// The TTL attribute the template declares on the users table (it must be enabled).
pub fn users_ttl_attribute() -> String {
    let template = template();
    let ttl = &template["Resources"]["UsersTable"]["Properties"]["TimeToLiveSpecification"];
    assert_eq!(ttl["Enabled"].as_bool(), Some(true), "{ttl:?}");
    ttl["AttributeName"]
        .as_str()
        .expect("an attribute name")
        .to_string()
}
