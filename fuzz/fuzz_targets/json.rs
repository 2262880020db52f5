//! Fuzzes the browser's JSON codec (`cyclepool_shared::json`) against serde_json, which the
//! portal reads and writes with: the two must agree on every body the web client exchanges.
//!
//! Each input is read as every type the client reads, by both: what the codec reads, serde must
//! read to the same value (the codec is never more lenient), and what serde reads, written as
//! serde writes it, the codec must read back to the same value (it reads what the portal
//! writes). Whatever was read, the codec must write as serde writes it, byte for byte: log
//! events are hashed and a job's policy signed in that form.

#![no_main]

use std::fmt::Debug;

use cyclepool_shared::distributor::{Category, DeclarationSignature, JoinGroup};
use cyclepool_shared::json::{self, FromJson, ToJson};
use cyclepool_shared::manifest::{
    Endorsement, JobPolicy, Manifest, PortalKey, PortalKeys, RevokedKey, SignedManifest,
};
use cyclepool_shared::protocol::{
    Exchange, Lease, LeaseProof, LeaseRef, LeaseRequest, LeaseResponse, Report, ReportKind,
    ReportResponse, ResultSubmission, SubmitStatus,
};
use cyclepool_shared::transparency::{LogEntry, LogEvent, LogHead, LogPage};
use cyclepool_shared::{ErrorBody, ErrorCode, ErrorDetail, JobId, LeaseId, Sha256Digest};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Reads `text` as a `T` both ways and checks that they agree.
fn read<T>(text: &str) -> Option<T>
where
    T: FromJson + Serialize + DeserializeOwned + PartialEq + Debug,
{
    let theirs = serde_json::from_str::<T>(text);
    let ours = json::from_str::<T>(text);
    match (&theirs, &ours) {
        (Ok(theirs), Ok(ours)) => assert_eq!(ours, theirs, "{text}"),
        // The codec is never more lenient than serde.
        (Err(err), Ok(ours)) => {
            panic!("the codec reads {ours:?} from {text}, serde refuses: {err}")
        }
        // serde also takes forms the portal never writes (a struct as an array, a repeated
        // name it ignores): what matters is that the codec reads what the portal writes.
        (Ok(_), Err(_)) | (Err(_), Err(_)) => {}
    }
    if let Ok(value) = &theirs {
        let written = serde_json::to_string(value).expect("a value encodes");
        let read = json::from_str::<T>(&written)
            .unwrap_or_else(|err| panic!("the codec refuses {written}, as serde writes it: {err}"));
        assert_eq!(&read, value, "{written}");
    }
    ours.ok()
}

/// Checks that the codec writes `value` as serde writes it.
fn written<T: ToJson + Serialize + Debug>(value: &T) {
    let theirs = serde_json::to_string(value).expect("a value encodes");
    assert_eq!(json::to_string(value), theirs, "{value:?}");
}

/// Both: read, then written.
fn both<T>(text: &str)
where
    T: FromJson + ToJson + DeserializeOwned + Serialize + PartialEq + Debug,
{
    if let Some(value) = read::<T>(text) {
        written(&value);
    }
}

/// Values the codec only writes: whatever serde reads from the input.
fn written_if_read<T: ToJson + Serialize + DeserializeOwned + Debug>(text: &str) {
    if let Ok(value) = serde_json::from_str::<T>(text) {
        written(&value);
    }
}

fuzz_target!(|bytes: &[u8]| {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(value) = json::parse(text) {
        // What parses writes back as text that parses to the same tree.
        let again = json::parse(&json::to_string(&value)).expect("written JSON parses");
        assert_eq!(again, value);
    }

    // What the web client reads.
    read::<Manifest>(text);
    read::<SignedManifest>(text);
    read::<LogEntry>(text);
    read::<LogPage>(text);
    read::<LeaseResponse>(text);
    read::<ReportResponse>(text);
    read::<JobId>(text);
    read::<LeaseId>(text);
    read::<Sha256Digest>(text);
    // ... and also writes.
    both::<JobPolicy>(text);
    both::<PortalKeys>(text);
    both::<PortalKey>(text);
    both::<Endorsement>(text);
    both::<RevokedKey>(text);
    both::<LogEvent>(text);
    both::<LogHead>(text);
    both::<Lease>(text);
    both::<ResultSubmission>(text);
    both::<ErrorBody>(text);
    both::<ErrorDetail>(text);
    both::<DeclarationSignature>(text);
    both::<Category>(text);
    both::<SubmitStatus>(text);
    both::<ReportKind>(text);
    // An unknown code reads as `Unknown` both ways, which writes back as `unknown`.
    read::<ErrorCode>(text);
    // What it only writes.
    written_if_read::<LeaseRequest>(text);
    written_if_read::<LeaseProof>(text);
    written_if_read::<Exchange>(text);
    written_if_read::<Report>(text);
    written_if_read::<LeaseRef>(text);
    written_if_read::<JoinGroup>(text);
    if let Ok(number) = serde_json::from_str::<f64>(text) {
        written(&number);
    }
    if let Ok(string) = serde_json::from_str::<String>(text) {
        written(&string);
    }
});
