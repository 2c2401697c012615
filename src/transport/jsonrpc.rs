//! JSON-RPC 2.0: every procedure registered under its path, params by name (the input object)
//! or by position (`[input]`).

use std::sync::Arc;

use jsonrpsee::types::{ErrorObjectOwned, Params};
use jsonrpsee::{Extensions, RpcModule};
use serde_json::Value;

use crate::api::error::{ApiError, ZodError};
use crate::api::{EventIngestion, Procedure};
use crate::domain::RequestContext;

/// The module serving every `eventIngestion.*` method.
pub fn rpc_module(service: Arc<EventIngestion>) -> RpcModule<EventIngestion> {
    let mut module = RpcModule::from_arc(service);
    for procedure in Procedure::all() {
        let registered = module.register_async_method(
            procedure.path(),
            move |params, service, extensions| async move {
                call(procedure, &params, &service, &extensions).await
            },
        );
        // Paths are distinct constants; a clash is a programming error caught by every test.
        if let Err(error) = registered {
            panic!("registering {}: {error}", procedure.path());
        }
    }
    module
}

async fn call(
    procedure: Procedure,
    params: &Params<'static>,
    service: &EventIngestion,
    extensions: &Extensions,
) -> Result<Value, ErrorObjectOwned> {
    let context = extensions
        .get::<RequestContext>()
        .cloned()
        .unwrap_or_default();
    let result = match input_from_params(params) {
        Ok(input) => service.call(procedure, &context, input).await,
        Err(error) => {
            error.log(procedure.path());
            Err(error)
        }
    };
    result.map_err(|error| to_error_object(&error, procedure.path()))
}

/// Accepts `{…}` (by name), `[{…}]` (by position), `[]` or no params (no input).
fn input_from_params(params: &Params<'_>) -> Result<Option<Value>, ApiError> {
    let Some(raw) = params.as_str() else {
        return Ok(None);
    };
    let value: Value = serde_json::from_str(raw)
        .map_err(|error| ApiError::bad_request(format!("Invalid params: {error}")))?;
    match value {
        Value::Null => Ok(None),
        Value::Object(_) => Ok(Some(value)),
        Value::Array(mut items) if items.len() <= 1 => Ok(items.pop()),
        Value::Array(items) => {
            let mut errors = ZodError::default();
            errors.form(format!(
                "Expected the input object or [input] as params, got {} positional params",
                items.len()
            ));
            Err(ApiError::validation(errors))
        }
        _ => Err(ApiError::bad_request(
            "Params must be an object or an array",
        )),
    }
}

/// The wire form of an error: tRPC's number, message and data.
pub fn to_error_object(error: &ApiError, path: &str) -> ErrorObjectOwned {
    let wire = error.wire(path);
    ErrorObjectOwned::owned(wire.code, wire.message, Some(wire.data))
}
