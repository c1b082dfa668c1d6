//! OAuth 2 for the Admin API (API-NOTES §2): client_credentials with an integration's
//! access key, password and refresh_token grants for an admin user, bearer tokens with a
//! lifetime, and a test hook that expires every token at once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::ids::{base64url, now_millis};

#[derive(Debug)]
struct Token {
    expires: Instant,
    generation: u64,
    /// The access key or user it was issued to.
    subject: String,
}

/// Issued tokens.
#[derive(Debug)]
pub struct Auth {
    pub client_id: String,
    pub client_secret: String,
    pub username: String,
    pub password: String,
    pub ttl: Duration,
    tokens: HashMap<String, Token>,
    refresh: HashMap<String, String>,
    /// Integrations created later (an app's), by access key: their secret.
    integrations: HashMap<String, String>,
    generation: u64,
    issued: u64,
}

impl Auth {
    pub fn new(
        client_id: String,
        client_secret: String,
        username: String,
        password: String,
        ttl: Duration,
    ) -> Auth {
        Auth {
            client_id,
            client_secret,
            username,
            password,
            ttl,
            tokens: HashMap::new(),
            refresh: HashMap::new(),
            integrations: HashMap::new(),
            generation: 0,
            issued: 0,
        }
    }

    /// An integration created later (an app's, at its installation).
    pub fn add_integration(&mut self, access_key: &str, secret: &str) {
        self.integrations
            .insert(access_key.to_owned(), secret.to_owned());
    }

    /// The integration is deleted (its app was removed); its key no longer gets tokens.
    pub fn remove_integration(&mut self, access_key: &str) {
        self.integrations.remove(access_key);
    }

    /// Whom a valid `Authorization` header's token was issued to.
    pub fn subject(&self, header: Option<&str>) -> Option<String> {
        let header = header?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or(header)
            .trim();
        self.tokens.get(token).map(|t| t.subject.clone())
    }

    /// Every token issued so far stops working.
    pub fn expire_all(&mut self) {
        self.generation += 1;
    }

    /// Checks an `Authorization` header value.
    pub fn verify(&mut self, header: Option<&str>) -> Result<(), ApiError> {
        let Some(header) = header else {
            return Err(ApiError::unauthorized("Missing \"Authorization\" header"));
        };
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .unwrap_or(header)
            .trim();
        let now = Instant::now();
        match self.tokens.get(token) {
            Some(t) if t.generation == self.generation && t.expires > now => Ok(()),
            Some(_) => Err(ApiError::unauthorized(
                "Access token could not be verified.",
            )),
            None => Err(ApiError::unauthorized(
                "Access token could not be verified.",
            )),
        }
    }

    /// Handles a token request body; the answer body.
    pub fn grant(&mut self, body: &Value) -> Result<Value, ApiError> {
        let field = |name: &str| body.get(name).and_then(Value::as_str);
        let grant = field("grant_type").ok_or_else(|| ApiError::invalid_request("grant_type"))?;
        match grant {
            "client_credentials" => {
                let id =
                    field("client_id").ok_or_else(|| ApiError::invalid_request("client_id"))?;
                let secret = field("client_secret").unwrap_or_default();
                let known = (id == self.client_id && secret == self.client_secret)
                    || self.integrations.get(id).is_some_and(|s| s == secret);
                if !known {
                    return Err(ApiError::invalid_client());
                }
                Ok(self.issue(id, false))
            }
            "password" => {
                let id =
                    field("client_id").ok_or_else(|| ApiError::invalid_request("client_id"))?;
                if id != "administration" {
                    return Err(ApiError::invalid_client());
                }
                let user =
                    field("username").ok_or_else(|| ApiError::invalid_request("username"))?;
                let password =
                    field("password").ok_or_else(|| ApiError::invalid_request("password"))?;
                if user != self.username || password != self.password {
                    return Err(ApiError::invalid_grant());
                }
                Ok(self.issue(user, true))
            }
            "refresh_token" => {
                let token = field("refresh_token")
                    .ok_or_else(|| ApiError::invalid_request("refresh_token"))?;
                let Some(subject) = self.refresh.remove(token) else {
                    let mut error = ApiError::new(401, "8", "Token has been revoked");
                    error.title = "The refresh token is invalid.".into();
                    return Err(error);
                };
                Ok(self.issue(&subject, true))
            }
            other => Err(ApiError::unsupported_grant(other)),
        }
    }

    fn issue(&mut self, subject: &str, with_refresh: bool) -> Value {
        self.issued += 1;
        let iat = now_millis() / 1000;
        let header = base64url(br#"{"typ":"JWT","alg":"RS256"}"#);
        let claims = json!({
            "aud": if with_refresh { "administration" } else { subject },
            "jti": format!("{:040x}", self.issued.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            "iat": iat,
            "nbf": iat,
            "exp": iat + self.ttl.as_secs() as i64,
            "sub": subject,
            "scopes": ["write"],
        });
        let payload = base64url(claims.to_string().as_bytes());
        let signature =
            base64url(format!("koppel-sim-{}-{}", self.issued, self.generation).as_bytes());
        let token = format!("{header}.{payload}.{signature}");
        self.tokens.insert(
            token.clone(),
            Token {
                expires: Instant::now() + self.ttl,
                generation: self.generation,
                subject: subject.to_owned(),
            },
        );
        let mut answer = json!({
            "token_type": "Bearer",
            "expires_in": self.ttl.as_secs(),
            "access_token": token,
        });
        if with_refresh {
            let refresh = format!(
                "def50200{:032x}",
                self.issued.wrapping_mul(0x2545_f491_4f6c_dd1d)
            );
            self.refresh.insert(refresh.clone(), subject.to_string());
            answer["refresh_token"] = json!(refresh);
        }
        answer
    }
}
