//! What an AWS SDK error means for us: worth retrying, or not.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// An SDK error reduced to what the ports need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwsFailure {
    /// Throttling, a 5xx, a timeout or a dropped connection: the same call may succeed later.
    pub transient: bool,
    /// The service's error code (`ThrottlingException`), when it sent one.
    pub code: Option<String>,
    /// Code and message, for logs and recorded errors. AWS messages name resources, never
    /// secret values.
    pub description: String,
}

const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TransactionConflictException",
    "InternalServerError",
    "InternalServiceError",
    "InternalFailure",
    "ServiceUnavailable",
    "KMSThrottlingException",
];

pub(crate) fn classify<E>(error: &SdkError<E, HttpResponse>) -> AwsFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            AwsFailure {
                transient: true,
                code: None,
                description: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(error)),
            }
        }
        SdkError::ServiceError(service) => {
            let code = error.code().map(str::to_string);
            let status = service.raw().status().as_u16();
            let transient = status >= 500
                || status == 429
                || code
                    .as_deref()
                    .is_some_and(|c| TRANSIENT_CODES.contains(&c));
            AwsFailure {
                transient,
                description: format!(
                    "{} (HTTP {status}): {}",
                    code.as_deref().unwrap_or("error"),
                    error.message().unwrap_or("no message")
                ),
                code,
            }
        }
        _ => AwsFailure {
            transient: false,
            code: None,
            description: format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(error)),
        },
    }
}
