//! Validated identifiers and digests that travel as hex strings on the wire.
//!
//! Each type parses in one place (`FromStr`, also used by serde), so a malformed value is
//! rejected with a message naming what was expected, before any handler sees it.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::hex;

/// A value on the wire was not what its type requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what}: expected {expected}")]
pub struct ParseIdError {
    what: &'static str,
    expected: &'static str,
}

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $len:literal, $digits:literal, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The number of bytes in this identifier.
            pub const LEN: usize = $len;

            /// Wraps raw bytes (for example fresh bytes from a CSPRNG).
            pub const fn from_bytes(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// The raw bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;

            fn from_str(text: &str) -> Result<Self, Self::Err> {
                hex::decode_array(text).map(Self).ok_or(ParseIdError {
                    what: $what,
                    expected: concat!(stringify!($len), " bytes as ", stringify!($digits), " hex digits"),
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(&self.0))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&hex::encode(&self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl crate::json::ToJson for $name {
            fn write_json(&self, out: &mut String) {
                out.push('"');
                out.push_str(&hex::encode(&self.0));
                out.push('"');
            }
        }

        impl crate::json::FromJson for $name {
            fn from_json(value: &crate::json::Json) -> Result<Self, crate::json::JsonError> {
                value
                    .as_str()?
                    .parse()
                    .map_err(|err: ParseIdError| crate::json::JsonError(err.to_string()))
            }
        }

        // Written by hand: the derive cannot know the wire form is a fixed-length hex string.
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                hex_schema(
                    concat!(
                        $what, ": ", stringify!($len), " bytes as ", stringify!($digits),
                        " hex digits (either case; the server writes lower case)"
                    ),
                    $digits,
                )
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed(stringify!($name))
            }
        }
    };
}

/// The schema of a hex identifier: a string of exactly `digits` hex digits.
#[cfg(feature = "openapi")]
fn hex_schema(
    description: &str,
    digits: usize,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .description(Some(description))
        .pattern(Some(format!("^[0-9a-fA-F]{{{digits}}}$")))
        .min_length(Some(digits))
        .max_length(Some(digits))
        .into()
}

hex_id!(
    /// Names one lease: one unit handed to one volunteer until a deadline. Random, 128 bits.
    LeaseId,
    16,
    32,
    "lease id"
);
hex_id!(
    /// A fresh random value issued with each lease; a result must echo it, and its signature
    /// covers it, which binds the result to that lease.
    Nonce,
    16,
    32,
    "nonce"
);
hex_id!(
    /// A volunteer's identity: the ed25519 public key of the key pair its browser generated
    /// and keeps. Results are signed with the matching secret key, so credit and credibility
    /// attach to whoever holds it.
    VolunteerId,
    32,
    64,
    "volunteer id"
);
hex_id!(
    /// A SHA-256 digest.
    Sha256Digest,
    32,
    64,
    "sha-256 digest"
);

impl Sha256Digest {
    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }
}

hex_id!(
    /// An ed25519 public key.
    PublicKey,
    32,
    64,
    "public key"
);
hex_id!(
    /// An ed25519 signature.
    Signature,
    64,
    128,
    "signature"
);
hex_id!(
    /// Names a public key: the first 8 bytes of the SHA-256 of the key.
    KeyId,
    8,
    16,
    "key id"
);

impl KeyId {
    /// The id of `key`.
    pub fn of(key: &PublicKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

/// A job's number, assigned by the server in creation order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct JobId(pub u64);

crate::json_number_id!(JobId);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input_is_the_known_value() {
        assert_eq!(
            Sha256Digest::of(b"").to_string(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn ids_round_trip_through_json() {
        let id = LeaseId::from_bytes([7; 16]);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"07070707070707070707070707070707\"");
        assert_eq!(serde_json::from_str::<LeaseId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_ids_name_what_was_expected() {
        let err = serde_json::from_str::<LeaseId>("\"abc\"").unwrap_err();
        assert!(
            err.to_string()
                .contains("invalid lease id: expected 16 bytes as 32 hex digits"),
            "{err}"
        );
        assert!(serde_json::from_str::<VolunteerId>("42").is_err());
    }
}
