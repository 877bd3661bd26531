//! API tokens and roles. A token reads `pdg_<id>_<secret>`: the id finds the record, the secret
//! is checked against its argon2id hash (the secret itself is never stored). Verified tokens are
//! cached for a minute by their SHA-256, so argon2's deliberate cost is paid once per token and
//! not on every request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{Grant, MetaStore, Role, TokenRecord};

#[derive(Debug, Clone, Serialize)]
pub struct Principal {
    pub token_id: String,
    pub name: String,
    pub grants: Vec<Grant>,
}

impl Principal {
    fn has(&self, role: Role, namespace: &str) -> bool {
        self.grants.iter().any(|g| {
            g.role == Role::Admin
                || (g.role == role && (g.namespace == "*" || g.namespace == namespace))
        })
    }
    pub fn is_admin(&self) -> bool {
        self.grants.iter().any(|g| g.role == Role::Admin)
    }
    /// Any role on the namespace lets one read it.
    pub fn can_read(&self, namespace: &str) -> bool {
        self.grants
            .iter()
            .any(|g| g.role == Role::Admin || g.namespace == "*" || g.namespace == namespace)
    }
    pub fn can_publish(&self, namespace: &str) -> bool {
        self.has(Role::Publisher, namespace)
    }
    pub fn can_approve(&self, namespace: &str) -> bool {
        self.has(Role::Approver, namespace)
    }
    /// Publishing anywhere (needed for blob uploads, which are not yet tied to a namespace).
    pub fn is_any_publisher(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.role, Role::Publisher | Role::Admin))
    }
    pub fn is_any_approver(&self) -> bool {
        self.grants
            .iter()
            .any(|g| matches!(g.role, Role::Approver | Role::Admin))
    }
}

/// A new random token: `(token, id, secret)`.
pub fn new_token() -> (String, String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 24];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let secret = hex::encode(secret);
    (format!("pdg_{id}_{secret}"), id, secret)
}

pub fn hash_secret(secret: &str) -> String {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).expect("16-byte salt encodes");
    Argon2::default()
        .hash_password(secret.as_bytes(), &salt)
        .expect("argon2 hashing with default parameters cannot fail")
        .to_string()
}

fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("pdg_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty() && secret.len() <= 128).then_some((id, secret))
}

/// Create a token with the given grants; returns the token string (shown once).
pub async fn create_token(
    store: &dyn MetaStore,
    name: &str,
    grants: Vec<Grant>,
    actor: &str,
) -> crate::store::Result<(String, String)> {
    let (token, id, secret) = new_token();
    let hash = tokio::task::spawn_blocking(move || hash_secret(&secret))
        .await
        .map_err(|e| crate::store::StoreError::Other(e.to_string()))?;
    store
        .create_token(
            &TokenRecord {
                id: id.clone(),
                name: name.into(),
                hash,
                revoked: false,
                grants,
            },
            actor,
        )
        .await?;
    Ok((token, id))
}

#[derive(Default)]
pub struct Authenticator {
    cache: Mutex<HashMap<[u8; 32], (Principal, Instant)>>,
}

const CACHE_TTL: Duration = Duration::from_secs(60);

impl Authenticator {
    pub async fn authenticate(&self, store: &dyn MetaStore, token: &str) -> Option<Principal> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some((p, at)) = self.cache.lock().ok()?.get(&key) {
            if at.elapsed() < CACHE_TTL {
                return Some(p.clone());
            }
        }
        let (id, secret) = split(token)?;
        let rec = store.get_token(id).await.ok()??;
        if rec.revoked {
            return None;
        }
        let secret = secret.to_string();
        let hash = rec.hash.clone();
        let ok = tokio::task::spawn_blocking(move || {
            PasswordHash::new(&hash)
                .map(|h| {
                    Argon2::default()
                        .verify_password(secret.as_bytes(), &h)
                        .is_ok()
                })
                .unwrap_or(false)
        })
        .await
        .ok()?;
        if !ok {
            return None;
        }
        let p = Principal {
            token_id: rec.id,
            name: rec.name,
            grants: rec.grants,
        };
        if let Ok(mut c) = self.cache.lock() {
            if c.len() > 10_000 {
                c.clear();
            }
            c.insert(key, (p.clone(), Instant::now()));
        }
        Some(p)
    }

    /// Forget cached verifications (after a revocation).
    pub fn forget_all(&self) {
        if let Ok(mut c) = self.cache.lock() {
            c.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_and_hash_round_trip() {
        let (t, id, secret) = new_token();
        assert_eq!(split(&t), Some((id.as_str(), secret.as_str())));
        let h = hash_secret(&secret);
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(secret.as_bytes(), &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert_eq!(split("pdg_short_x"), None);
        assert_eq!(split("bearer"), None);
    }

    #[test]
    fn roles() {
        let p = Principal {
            token_id: "x".into(),
            name: "p".into(),
            grants: vec![Grant {
                role: Role::Publisher,
                namespace: "acme".into(),
            }],
        };
        assert!(p.can_publish("acme"));
        assert!(!p.can_publish("other"));
        assert!(p.can_read("acme"));
        assert!(!p.can_read("other"));
        assert!(!p.can_approve("acme"));
        let a = Principal {
            token_id: "y".into(),
            name: "a".into(),
            grants: vec![Grant {
                role: Role::Admin,
                namespace: "*".into(),
            }],
        };
        assert!(a.can_publish("any") && a.can_approve("any") && a.is_admin());
    }
}
