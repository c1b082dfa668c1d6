//! Shops registered with koppel as the backend of a Shopware app (table `app_registrations`):
//! per tenant and connection the shop's id and address, the shop secret that signs its calls
//! and the API credentials it handed over. The secret and the credentials are sealed with
//! ChaCha20-Poly1305 under a key derived (HKDF-SHA256) from the app secret in `koppel.toml`
//! and bound to the tenant, the connection and the column, so a copy of the database alone
//! opens neither, and one row's sealed value does not open as another's.

use std::collections::BTreeMap;

use rand::RngCore;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf;

use super::{Result, Store, StoreError, now_ms};

const SALT: &[u8] = b"koppel app registration v1";

/// Seals and opens the secrets of one tenant's connection.
pub struct Sealer {
    key: LessSafeKey,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<key>)")
    }
}

impl Sealer {
    /// The sealer for `tenant`'s `connection`, keyed by the app secret.
    pub fn new(app_secret: &str, tenant: &str, connection: &str) -> Sealer {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(app_secret.as_bytes());
        let info = [tenant.as_bytes(), b"\0", connection.as_bytes()];
        // 32 bytes from HKDF-SHA256 cannot fail (the limit is 255 × 32).
        let key = match prk.expand(&info, &CHACHA20_POLY1305) {
            Ok(okm) => UnboundKey::from(okm),
            Err(_) => unreachable!("HKDF-SHA256 gives 32 bytes"),
        };
        Sealer {
            key: LessSafeKey::new(key),
        }
    }

    /// A random nonce, then the ciphertext with its tag.
    fn seal(&self, column: &str, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut sealed = plain.to_vec();
        if self
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(column.as_bytes()),
                &mut sealed,
            )
            .is_err()
        {
            unreachable!("sealing fails only past 256 GiB");
        }
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    fn open(&self, column: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buffer = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(column.as_bytes()), &mut buffer)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// A shop's registration, opened.
#[derive(Clone)]
pub struct AppRegistration {
    pub shop_id: String,
    pub shop_url: String,
    /// Signs the shop's calls (the confirmation and every event).
    pub shop_secret: String,
    /// The connection config the shop handed over at its confirmation (none before).
    pub credentials: Option<BTreeMap<String, String>>,
    pub registered_at: i64,
    pub confirmed_at: Option<i64>,
}

impl std::fmt::Debug for AppRegistration {
    /// The secret and credentials show as set, never their values.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppRegistration")
            .field("shop_id", &self.shop_id)
            .field("shop_url", &self.shop_url)
            .field("shop_secret", &"<set>")
            .field(
                "credentials",
                &self
                    .credentials
                    .as_ref()
                    .map(|c| c.keys().collect::<Vec<_>>()),
            )
            .field("registered_at", &self.registered_at)
            .field("confirmed_at", &self.confirmed_at)
            .finish()
    }
}

type Row = (String, String, Vec<u8>, Option<Vec<u8>>, i64, Option<i64>);

fn unreadable(connection: &str) -> StoreError {
    StoreError::Corrupt(format!(
        "the Shopware app registration of connection `{connection}` cannot be opened with the app secret in koppel.toml (was it changed?); reinstall the app in the shop"
    ))
}

impl Store {
    /// Keeps a shop's registration (replacing the connection's earlier one, credentials
    /// included: a new registration is a new installation with a new integration).
    pub async fn register_app(
        &self,
        tenant: &str,
        connection: &str,
        sealer: &Sealer,
        shop_id: &str,
        shop_url: &str,
        shop_secret: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_registrations
               (tenant, connection, shop_id, shop_url, shop_secret, credentials, registered_at, confirmed_at)
             VALUES (?, ?, ?, ?, ?, NULL, ?, NULL)
             ON CONFLICT (tenant, connection) DO UPDATE SET
               shop_id = excluded.shop_id, shop_url = excluded.shop_url,
               shop_secret = excluded.shop_secret, credentials = NULL,
               registered_at = excluded.registered_at, confirmed_at = NULL",
        )
        .bind(tenant)
        .bind(connection)
        .bind(shop_id)
        .bind(shop_url)
        .bind(sealer.seal("shop_secret", shop_secret.as_bytes()))
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Keeps the credentials the shop `shop_id` handed over; false when that shop is not the
    /// one registered for the connection.
    pub async fn confirm_app(
        &self,
        tenant: &str,
        connection: &str,
        sealer: &Sealer,
        shop_id: &str,
        credentials: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let plain = serde_json::to_vec(credentials)
            .map_err(|e| StoreError::Corrupt(format!("credentials: {e}")))?;
        let done = sqlx::query(
            "UPDATE app_registrations SET credentials = ?, confirmed_at = ?
             WHERE tenant = ? AND connection = ? AND shop_id = ?",
        )
        .bind(sealer.seal("credentials", &plain))
        .bind(now_ms())
        .bind(tenant)
        .bind(connection)
        .bind(shop_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The connection's registration, opened with `sealer`.
    pub async fn app_registration(
        &self,
        tenant: &str,
        connection: &str,
        sealer: &Sealer,
    ) -> Result<Option<AppRegistration>> {
        let row: Option<Row> = sqlx::query_as(
            "SELECT shop_id, shop_url, shop_secret, credentials, registered_at, confirmed_at
             FROM app_registrations WHERE tenant = ? AND connection = ?",
        )
        .bind(tenant)
        .bind(connection)
        .fetch_optional(self.pool())
        .await?;
        let Some((shop_id, shop_url, secret, credentials, registered_at, confirmed_at)) = row
        else {
            return Ok(None);
        };
        let shop_secret = sealer
            .open("shop_secret", &secret)
            .and_then(|s| String::from_utf8(s).ok())
            .ok_or_else(|| unreadable(connection))?;
        let credentials = match credentials {
            Some(sealed) => Some(
                sealer
                    .open("credentials", &sealed)
                    .and_then(|plain| serde_json::from_slice(&plain).ok())
                    .ok_or_else(|| unreadable(connection))?,
            ),
            None => None,
        };
        Ok(Some(AppRegistration {
            shop_id,
            shop_url,
            shop_secret,
            credentials,
            registered_at,
            confirmed_at,
        }))
    }

    /// Forgets the connection's registration (the shop removed the app); true when there
    /// was one from `shop_id`.
    pub async fn forget_app(&self, tenant: &str, connection: &str, shop_id: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM app_registrations WHERE tenant = ? AND connection = ? AND shop_id = ?",
        )
        .bind(tenant)
        .bind(connection)
        .bind(shop_id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn secrets_are_sealed_and_open_only_with_the_app_secret() {
        let store = Store::open_in_memory().await.expect("store");
        let sealer = Sealer::new("app-secret-0123456789abcdef0123456789", "t", "shop");
        store
            .register_app(
                "t",
                "shop",
                &sealer,
                "shop-1",
                "https://shop.example",
                "shh",
            )
            .await
            .expect("register");
        let credentials = BTreeMap::from([
            ("access_key_id".to_owned(), "SWIAKEY".to_owned()),
            ("secret_access_key".to_owned(), "very-secret".to_owned()),
        ]);
        assert!(
            !store
                .confirm_app("t", "shop", &sealer, "other-shop", &credentials)
                .await
                .expect("confirm"),
            "another shop cannot confirm"
        );
        assert!(
            store
                .confirm_app("t", "shop", &sealer, "shop-1", &credentials)
                .await
                .expect("confirm")
        );
        let opened = store
            .app_registration("t", "shop", &sealer)
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(opened.shop_secret, "shh");
        assert_eq!(opened.credentials.as_ref(), Some(&credentials));
        assert!(!format!("{opened:?}").contains("very-secret"));

        // The database holds neither secret in clear.
        let raw: Vec<(Vec<u8>, Vec<u8>)> =
            sqlx::query_as("SELECT shop_secret, credentials FROM app_registrations")
                .fetch_all(store.pool())
                .await
                .expect("raw");
        let bytes = [raw[0].0.clone(), raw[0].1.clone()].concat();
        assert!(!bytes.windows(3).any(|w| w == b"shh"));
        assert!(!bytes.windows(11).any(|w| w == b"very-secret"));

        // Another app secret, tenant or connection opens nothing.
        for other in [
            Sealer::new("another-secret-0123456789abcdef012345", "t", "shop"),
            Sealer::new("app-secret-0123456789abcdef0123456789", "u", "shop"),
        ] {
            let error = store
                .app_registration("t", "shop", &other)
                .await
                .expect_err("sealed");
            assert!(error.to_string().contains("reinstall the app"), "{error}");
        }

        // A new registration drops the old credentials; removing the app forgets it all.
        store
            .register_app(
                "t",
                "shop",
                &sealer,
                "shop-1",
                "https://shop.example",
                "new",
            )
            .await
            .expect("register again");
        let again = store
            .app_registration("t", "shop", &sealer)
            .await
            .expect("read")
            .expect("registered");
        assert_eq!(again.shop_secret, "new");
        assert!(again.credentials.is_none());
        assert!(
            !store
                .forget_app("t", "shop", "other")
                .await
                .expect("forget")
        );
        assert!(
            store
                .forget_app("t", "shop", "shop-1")
                .await
                .expect("forget")
        );
        assert!(
            store
                .app_registration("t", "shop", &sealer)
                .await
                .expect("read")
                .is_none()
        );
    }
}
