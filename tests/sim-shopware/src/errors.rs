//! Shopware's error body, `{"errors": [{status, code, title, detail, meta, source}]}`, and
//! the errors the simulator answers with (codes and messages from API-NOTES §3 and §13).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ids::Id;

/// Symfony's NotBlank constraint code: a required field is missing.
pub const NOT_BLANK: &str = "c1051bb4-d103-4f74-8988-acbcafc7fdc3";
/// Symfony's Type constraint code: a value has the wrong JSON type.
pub const WRONG_TYPE: &str = "ba785a8c-82cb-4283-967c-3cf342181b40";
/// Symfony's Length constraint code for a value that is too long.
pub const TOO_LONG: &str = "d94b19cc-114f-4f44-9cc4-4138e80a87b9";
/// Symfony's Choice constraint code: a value outside an enum.
pub const BAD_CHOICE: &str = "8e179f1b-97aa-4560-a02f-2a8b42e49df7";

/// One error object (boxed: errors travel in `Result`s everywhere).
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError(Box<ErrorBody>);

/// The members of an error object.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorBody {
    pub status: u16,
    pub code: String,
    pub title: String,
    pub detail: String,
    /// `meta.parameters`.
    pub parameters: Value,
    /// `source.pointer` (validation errors only).
    pub pointer: Option<String>,
    /// Raised while the write runs (a database constraint, a missing privilege), after the
    /// validation of the whole write: it aborts the request alone, without a pointer.
    pub execute: bool,
}

impl std::ops::Deref for ApiError {
    type Target = ErrorBody;

    fn deref(&self) -> &ErrorBody {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ErrorBody {
        &mut self.0
    }
}

impl ApiError {
    pub fn new(status: u16, code: &str, detail: impl Into<String>) -> ApiError {
        ApiError(Box::new(ErrorBody {
            status,
            code: code.to_string(),
            title: status_title(status).to_string(),
            detail: detail.into(),
            parameters: json!([]),
            pointer: None,
            execute: false,
        }))
    }

    /// Marks an error raised while the write runs (see [`ErrorBody::execute`]).
    pub fn executing(mut self) -> ApiError {
        self.execute = true;
        self
    }

    pub fn with_parameters(mut self, parameters: Value) -> ApiError {
        self.parameters = parameters;
        self
    }

    pub fn at(mut self, pointer: impl Into<String>) -> ApiError {
        self.pointer = Some(pointer.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut error = json!({
            "status": self.status.to_string(),
            "code": self.code,
            "title": self.title,
            "detail": self.detail,
            "meta": { "parameters": self.parameters },
        });
        if let Some(pointer) = &self.pointer {
            error["source"] = json!({ "pointer": pointer });
        }
        error
    }

    // --- The errors the simulator uses. ---

    pub fn not_found(entity: &str, id: &str) -> ApiError {
        ApiError::new(
            404,
            "FRAMEWORK__RESOURCE_NOT_FOUND",
            format!("The {entity} resource with the following primary key was not found: id({id})"),
        )
        .with_parameters(json!({ "type": entity, "primaryKey": { "id": id } }))
    }

    pub fn definition_not_found(entity: &str) -> ApiError {
        ApiError::new(
            404,
            "FRAMEWORK__DEFINITION_NOT_FOUND",
            format!("Definition for entity \"{entity}\" does not exist."),
        )
        .with_parameters(json!({ "entityName": entity }))
    }

    pub fn route_not_found(path: &str) -> ApiError {
        ApiError::new(404, "0", format!("No route found for \"{path}\""))
    }

    pub fn method_not_allowed(method: &str, path: &str) -> ApiError {
        ApiError::new(
            405,
            "0",
            format!("No route found for \"{method} {path}\": Method Not Allowed"),
        )
    }

    pub fn malformed_json() -> ApiError {
        ApiError::new(400, "0", "The JSON payload is malformed.")
    }

    pub fn blank(pointer: String) -> ApiError {
        ApiError::new(400, NOT_BLANK, "This value should not be blank.")
            .with_parameters(json!({ "{{ value }}": "null" }))
            .at(pointer)
    }

    /// Symfony's `Length` constraint, as a `StringField` uses it.
    pub fn too_long(pointer: String, value: &str, limit: usize) -> ApiError {
        ApiError::new(
            400,
            TOO_LONG,
            format!("This value is too long. It should have {limit} characters or less."),
        )
        .with_parameters(json!({ "{{ value }}": format!("\"{value}\""), "{{ limit }}": limit }))
        .at(pointer)
    }

    pub fn wrong_type(pointer: String, expected: &str, value: &Value) -> ApiError {
        ApiError::new(
            400,
            WRONG_TYPE,
            format!("This value should be of type {expected}."),
        )
        .with_parameters(json!({ "{{ value }}": value.to_string(), "{{ type }}": expected }))
        .at(pointer)
    }

    pub fn bad_choice(pointer: String, value: &Value) -> ApiError {
        ApiError::new(
            400,
            BAD_CHOICE,
            "The value you selected is not a valid choice.",
        )
        .with_parameters(json!({ "{{ value }}": value.to_string() }))
        .at(pointer)
    }

    pub fn invalid_uuid(pointer: String, value: &Value) -> ApiError {
        let text = value
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| value.to_string());
        ApiError::new(
            400,
            "FRAMEWORK__INVALID_UUID",
            format!("Value is not a valid UUID: {text}"),
        )
        .with_parameters(json!({ "input": text }))
        .at(pointer)
    }

    pub fn constraint(pointer: String, detail: impl Into<String>) -> ApiError {
        ApiError::new(400, "FRAMEWORK__WRITE_CONSTRAINT_VIOLATION", detail).at(pointer)
    }

    pub fn write_protected(pointer: String) -> ApiError {
        ApiError::constraint(pointer, "This field is write-protected.")
    }

    pub fn unexpected_field(pointer: String, field: &str) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__WRITE_UNEXPECTED_FIELD_ERROR",
            format!("Unexpected field: {field}"),
        )
        .with_parameters(json!({ "field": field }))
        .at(pointer)
    }

    pub fn malformed_input(pointer: String) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__WRITE_MALFORMED_INPUT",
            format!("Expected data at {pointer} to be an array."),
        )
        .at(pointer)
    }

    /// The unique key on `product.product_number` refuses a second row with the number:
    /// `ProductExceptionHandler` turns the database's 1062 into this error while the write
    /// runs, so it carries no `source.pointer` (and aborts a 6.5+ sync alone).
    pub fn duplicate_number(number: &str) -> ApiError {
        ApiError::new(
            400,
            "CONTENT__DUPLICATE_PRODUCT_NUMBER",
            format!("Product with number \"{number}\" already exists."),
        )
        .with_parameters(json!({ "number": number }))
        .executing()
    }

    /// `AclWriteValidator`: the integration's role lacks a privilege
    /// (`MissingPrivilegeException`, detail a JSON text, raised before the SQL runs).
    pub fn missing_privilege(privileges: &[String]) -> ApiError {
        ApiError::new(
            403,
            "FRAMEWORK__MISSING_PRIVILEGE_ERROR",
            json!({ "message": "Missing privilege", "missingPrivileges": privileges }).to_string(),
        )
        .executing()
    }

    /// What MySQL says through DBAL when a foreign key or unique key is violated: a 500.
    pub fn integrity(detail: impl Into<String>) -> ApiError {
        ApiError::new(
            500,
            "0",
            format!(
                "An exception occurred while executing a query: SQLSTATE[23000]: Integrity constraint violation: {}",
                detail.into()
            ),
        )
        .executing()
    }

    pub fn foreign_key(table: &str, fk: &str, target: &str) -> ApiError {
        ApiError::integrity(format!(
            "1452 Cannot add or update a child row: a foreign key constraint fails (`shopware`.`{table}`, CONSTRAINT `fk.{table}.{fk}` FOREIGN KEY (`{fk}`) REFERENCES `{target}` (`id`))"
        ))
    }

    pub fn delete_restricted(entity: &str, id: Id, by: &str) -> ApiError {
        ApiError::new(
            409,
            "FRAMEWORK__DELETE_RESTRICTED",
            format!("The delete request for {entity} was denied due to a conflict. The entity is currently in use by: {by}"),
        )
        .with_parameters(json!({ "entity": entity, "usages": [by], "id": id.hex() }))
    }

    pub fn invalid_limit(value: &Value) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__INVALID_LIMIT_QUERY",
            format!("The limit parameter must be a positive integer greater or equals than 1. Given: {value}"),
        )
        .with_parameters(json!({ "limit": value }))
        .at("/limit")
    }

    /// `QueryLimitExceededException`, added at `/limit` by `RequestCriteriaBuilder::addLimit`.
    pub fn limit_exceeded(max: u64, limit: u64) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__QUERY_LIMIT_EXCEEDED",
            format!("The limit must be lower than or equal to MAX_LIMIT(={max}). Given: {limit}"),
        )
        .with_parameters(json!({ "maxLimit": max, "limit": limit }))
        .at("/limit")
    }

    pub fn invalid_page(value: &Value) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__INVALID_PAGE_QUERY",
            format!("The page parameter must be a positive integer. Given: {value}"),
        )
        .with_parameters(json!({ "page": value }))
        .at("/page")
    }

    pub fn unmapped_field(field: &str, entity: &str) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__UNMAPPED_FIELD",
            format!("Field \"{field}\" in entity \"{entity}\" was not found."),
        )
        .with_parameters(json!({ "field": field, "entity": entity }))
    }

    pub fn association_not_found(name: &str) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__ASSOCIATION_NOT_FOUND",
            format!("Can not find association by name {name}"),
        )
        .with_parameters(json!({ "association": name }))
    }

    pub fn invalid_filter(detail: impl Into<String>, pointer: String) -> ApiError {
        ApiError::new(400, "FRAMEWORK__INVALID_FILTER_QUERY", detail).at(pointer)
    }

    pub fn invalid_sync(detail: impl Into<String>) -> ApiError {
        ApiError::new(400, "FRAMEWORK__INVALID_SYNC_OPERATION", detail)
    }

    pub fn unresolved(resolver: &str, value: &Value, pointer: String) -> ApiError {
        ApiError::new(
            400,
            "FRAMEWORK__API_INVALID_SYNC_RESOLVERS",
            format!("Foreign key resolver \"{resolver}\" could not resolve the value {value}."),
        )
        .with_parameters(json!({ "resolver": resolver, "value": value }))
        .at(pointer)
    }

    /// OAuth: missing, expired or unknown access token.
    pub fn unauthorized(detail: &str) -> ApiError {
        let mut error = ApiError::new(401, "9", detail);
        error.title = "The resource owner or authorization server denied the request.".into();
        error
    }

    /// OAuth: wrong client id or secret.
    pub fn invalid_client() -> ApiError {
        let mut error = ApiError::new(401, "4", "Client authentication failed");
        error.title = "Client authentication failed".into();
        error
    }

    /// OAuth: wrong user name or password.
    pub fn invalid_grant() -> ApiError {
        let mut error = ApiError::new(400, "6", "The user credentials were incorrect.");
        error.title = "The user credentials were incorrect.".into();
        error
    }

    pub fn unsupported_grant(grant: &str) -> ApiError {
        let mut error = ApiError::new(
            400,
            "2",
            format!(
                "The authorization grant type \"{grant}\" is not supported by the authorization server."
            ),
        );
        error.title =
            "The authorization grant type is not supported by the authorization server.".into();
        error
    }

    pub fn invalid_request(parameter: &str) -> ApiError {
        let mut error = ApiError::new(400, "3", format!("Check the `{parameter}` parameter"));
        error.title = "The request is missing a required parameter, includes an invalid parameter value, includes a parameter more than once, or is otherwise malformed.".into();
        error
    }

    pub fn illegal_transition(transition: &str, current: Id, possible: &[String]) -> ApiError {
        let list = possible.join(", ");
        ApiError::new(
            400,
            "SYSTEM__ILLEGAL_STATE_TRANSITION",
            format!(
                "Illegal transition \"{transition}\" from state \"{}\". Possible transitions are: {list}",
                current.hex()
            ),
        )
        .with_parameters(json!({
            "transition": transition,
            "currentState": current.hex(),
            "possibleTransitionsString": list,
            "possibleTransitions": possible,
        }))
    }

    pub fn state_machine_invalid_entity(entity: &str) -> ApiError {
        ApiError::new(
            400,
            "SYSTEM__STATE_MACHINE_INVALID_ENTITY_ID",
            format!("Unable to read entity \"{entity}\"."),
        )
        .with_parameters(json!({ "entityName": entity }))
    }
}

/// The reason phrase Shopware puts in `title`.
pub fn status_title(status: u16) -> &'static str {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
}

/// One or more errors, answered together with the first one's status.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    pub fn status(&self) -> u16 {
        self.0.first().map(|e| e.status).unwrap_or(500)
    }

    pub fn body(&self) -> Value {
        json!({ "errors": self.0.iter().map(ApiError::to_json).collect::<Vec<_>>() })
    }
}

impl From<ApiError> for ApiErrors {
    fn from(error: ApiError) -> ApiErrors {
        ApiErrors(vec![error])
    }
}

impl IntoResponse for ApiErrors {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, self.body().to_string()).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        ApiErrors::from(self).into_response()
    }
}
