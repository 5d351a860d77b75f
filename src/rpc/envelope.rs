//! JSON-RPC 2.0 framing: a request body read as one call or a batch of them, each call
//! checked for its shape, and the responses written back. Nothing here knows a method.

use serde_json::{Value, json};

use super::{
    error::{RpcError, codes},
    user_op::kind,
};

/// One call of a request.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Call {
    /// Its id, echoed in the response; `None` for a notification, which gets none.
    pub id: Option<Value>,
    /// The method.
    pub method: String,
    /// Its parameters: an array, or an empty one when absent.
    pub params: Vec<Value>,
}

/// A request body, read.
#[derive(Debug)]
pub(super) enum Incoming {
    /// One call (or one malformed call, answered with its error).
    Single(Result<Call, (Value, RpcError)>),
    /// A batch: each element a call or the error it gets.
    Batch(Vec<Result<Call, (Value, RpcError)>>),
}

/// Reads `body` as a JSON-RPC request: a whole-body error (with the id to answer it
/// under, `null`) when it is not JSON, an empty batch or a batch of more than
/// `max_batch` calls.
pub(super) fn read(body: &[u8], max_batch: usize) -> Result<Incoming, RpcError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        RpcError::new(codes::PARSE_ERROR, format!("the body is not JSON: {error}"))
    })?;
    match value {
        Value::Array(calls) => {
            if calls.is_empty() {
                return Err(RpcError::new(codes::INVALID_REQUEST, "the batch is empty"));
            }
            if calls.len() > max_batch {
                return Err(RpcError::new(
                    codes::INVALID_REQUEST,
                    format!(
                        "the batch has {} calls: at most {max_batch} are taken in one request",
                        calls.len()
                    ),
                )
                .with_data(json!({ "maxBatchCalls": max_batch })));
            }
            Ok(Incoming::Batch(calls.into_iter().map(call).collect()))
        }
        other => Ok(Incoming::Single(call(other))),
    }
}

/// One call's shape checked: an object with `jsonrpc: "2.0"`, a string `method`, `params`
/// an array (or absent), and an id that is a string, a number or null.
fn call(value: Value) -> Result<Call, (Value, RpcError)> {
    let Value::Object(mut object) = value else {
        return Err((
            Value::Null,
            RpcError::new(
                codes::INVALID_REQUEST,
                format!("a call must be a JSON object, got {}", kind(&value)),
            ),
        ));
    };
    let id = object.remove("id");
    let answer_to = match &id {
        Some(id @ (Value::String(_) | Value::Number(_) | Value::Null)) => id.clone(),
        Some(other) => {
            return Err((
                Value::Null,
                RpcError::new(
                    codes::INVALID_REQUEST,
                    format!("id must be a string, a number or null, got {}", kind(other)),
                ),
            ));
        }
        None => Value::Null,
    };
    let invalid = |message: String| {
        (
            answer_to.clone(),
            RpcError::new(codes::INVALID_REQUEST, message),
        )
    };
    match object.get("jsonrpc") {
        Some(Value::String(version)) if version == "2.0" => {}
        _ => return Err(invalid("jsonrpc must be \"2.0\"".to_owned())),
    }
    let method = match object.remove("method") {
        Some(Value::String(method)) => method,
        Some(other) => {
            return Err(invalid(format!(
                "method must be a string, got {}",
                kind(&other)
            )));
        }
        None => return Err(invalid("method is required".to_owned())),
    };
    let params = match object.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(params)) => params,
        Some(other) => {
            return Err(invalid(format!(
                "params must be an array of positional parameters, got {}",
                kind(&other)
            )));
        }
    };
    Ok(Call { id, method, params })
}

/// The response to a call answered with `result`.
pub(super) fn success(id: Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The response to a call answered with `error`.
pub(super) fn failure(id: Value, error: &RpcError) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": error.to_json() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(body: &str) -> Result<Call, (Value, RpcError)> {
        match read(body.as_bytes(), 10).unwrap() {
            Incoming::Single(call) => call,
            Incoming::Batch(_) => panic!("a batch"),
        }
    }

    #[test]
    fn a_call_reads_with_its_id_and_params() {
        let call =
            single(r#"{"jsonrpc":"2.0","id":7,"method":"eth_chainId","params":[]}"#).unwrap();
        assert_eq!(call.id, Some(json!(7)));
        assert_eq!(call.method, "eth_chainId");
        let notification = single(r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#).unwrap();
        assert_eq!(notification.id, None);
    }

    #[test]
    fn malformed_calls_get_the_right_codes() {
        assert_eq!(read(b"{", 10).unwrap_err().code, codes::PARSE_ERROR);
        assert_eq!(read(b"[]", 10).unwrap_err().code, codes::INVALID_REQUEST);
        let batch = format!("[{}]", ["1"; 11].join(","));
        assert!(
            read(batch.as_bytes(), 10)
                .unwrap_err()
                .message
                .contains("11 calls")
        );
        for (body, message) in [
            ("5", "a call must be a JSON object, got a number"),
            (r#"{"id":1,"method":"m"}"#, "jsonrpc must be \"2.0\""),
            (r#"{"jsonrpc":"2.0","id":1}"#, "method is required"),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":5}"#,
                "method must be a string, got a number",
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"m","params":{}}"#,
                "params must be an array",
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"m"}"#,
                "id must be a string",
            ),
        ] {
            let (_, error) = single(body).unwrap_err();
            assert_eq!(error.code, codes::INVALID_REQUEST, "{body}");
            assert!(
                error.message.starts_with(message),
                "{body}: {}",
                error.message
            );
        }
        let (id, _) = single(r#"{"jsonrpc":"1.0","id":"a","method":"m"}"#).unwrap_err();
        assert_eq!(id, json!("a"));
    }
}
