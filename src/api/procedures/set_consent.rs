//! `eventIngestion.setConsent`: an opt-in or opt-out for the caller's session and user.

use serde_json::Value;

use super::{Access, Kind, ProcedureSpec, handler, schema_of};
use crate::api::EventIngestion;
use crate::api::error::ApiError;
use crate::api::error::InvalidInput;
use crate::api::types::{SetConsentInput, SetConsentOutput};
use crate::domain::{ConsentSubject, RequestContext};
use crate::pipeline::validation::parse_input;

pub(super) const PROCEDURE: ProcedureSpec = ProcedureSpec {
    path: "eventIngestion.setConsent",
    kind: Kind::Mutation,
    access: Access::Anyone,
    summary: "Opt the caller's session (and signed-in user) in or out of analytics.",
    input_required: true,
    input_schema: schema_of::<SetConsentInput>,
    output_schema: schema_of::<SetConsentOutput>,
    handler: handler!(|service, context, input| service.set_consent(context, input)),
};

impl EventIngestion {
    /// `eventIngestion.setConsent`: record an opt-in or opt-out for the caller's session and,
    /// when signed in, for the user.
    pub async fn set_consent(
        &self,
        context: &RequestContext,
        input: Option<Value>,
    ) -> Result<SetConsentOutput, ApiError> {
        let caller = self.auth.authenticate(context)?;
        let input: SetConsentInput = parse_input(input).map_err(ApiError::validation)?;
        if let Err(errors) = validator::Validate::validate(&input) {
            let mut zod = InvalidInput::default();
            for field in errors.field_errors().keys() {
                zod.field(
                    if *field == "session_id" {
                        "sessionId"
                    } else {
                        field
                    },
                    "Invalid uuid",
                );
            }
            return Err(ApiError::validation(zod));
        }
        let mut subjects = Vec::new();
        if let Some(user) = caller.user_id() {
            subjects.push(ConsentSubject::User(user.to_owned()));
        }
        if let Some(session) = input.session_id {
            subjects.push(ConsentSubject::Session(session.to_ascii_lowercase()));
        }
        if subjects.is_empty() {
            let mut errors = InvalidInput::default();
            errors.field("sessionId", "Required when not signed in");
            return Err(ApiError::validation(errors));
        }
        self.pipeline.set_consent(&subjects, input.granted).await?;
        Ok(SetConsentOutput {
            granted: input.granted,
            subjects,
        })
    }
}
