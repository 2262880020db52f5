//! A small JSON codec for the browser's side of the protocol, with no serde in it.
//!
//! serde's derived readers compile a copy of the parser's plumbing into every type (and a
//! second reader, from arrays, into every struct); in the web client that was two fifths of
//! the module's code. Here the parser is compiled once, into a tree of [`Json`] values, and
//! each type reads its fields from the tree ([`FromJson`]) or writes itself into a string
//! ([`ToJson`]). The wire format is the one serde writes and reads on the server: the tests
//! hold every type's encoding byte for byte to serde_json's, and the canonical encodings that
//! are signed or hashed (a job's policy, a log event) are written by this module on both sides.

use std::fmt::Write as _;

/// How deeply arrays and objects may nest (serde_json's limit too).
const MAX_DEPTH: usize = 128;

/// A parsed JSON value. Numbers keep their text, so that a `u64` and an `f64` are each read
/// exactly (the latter correctly rounded, as serde_json's `float_roundtrip` reads it).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    /// Members in document order.
    Object(Vec<(String, Json)>),
}

/// Why a text or value was refused: a message naming the problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError(pub String);

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JsonError {}

fn error<T>(message: impl Into<String>) -> Result<T, JsonError> {
    Err(JsonError(message.into()))
}

/// A type read from a parsed value.
pub trait FromJson: Sized {
    fn from_json(value: &Json) -> Result<Self, JsonError>;
}

/// A type written as JSON text.
pub trait ToJson {
    fn write_json(&self, out: &mut String);
}

/// Parses `text` and reads it as a `T`.
pub fn from_str<T: FromJson>(text: &str) -> Result<T, JsonError> {
    T::from_json(&parse(text)?)
}

/// `value` as JSON text.
pub fn to_string<T: ToJson + ?Sized>(value: &T) -> String {
    let mut out = String::new();
    value.write_json(&mut out);
    out
}

/// Parses one JSON text (RFC 8259: one value, optional whitespace around it).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut parser = Parser {
        bytes: text.as_bytes(),
        at: 0,
    };
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != parser.bytes.len() {
        return parser.fail("trailing characters");
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn fail<T>(&self, what: &str) -> Result<T, JsonError> {
        error(format!("{what} at byte {}", self.at))
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.at).copied()
    }

    fn expect_word(&mut self, word: &[u8], value: Json) -> Result<Json, JsonError> {
        if self.bytes[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(value)
        } else {
            self.fail("expected a value")
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return self.fail("nested too deeply");
        }
        match self.peek() {
            None => self.fail("unexpected end of input"),
            Some(b'n') => self.expect_word(b"null", Json::Null),
            Some(b't') => self.expect_word(b"true", Json::Bool(true)),
            Some(b'f') => self.expect_word(b"false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::String),
            Some(b'[') => {
                self.at += 1;
                let mut items = Vec::new();
                if self.peek() == Some(b']') {
                    self.at += 1;
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b']') => {
                            self.at += 1;
                            return Ok(Json::Array(items));
                        }
                        _ => return self.fail("expected `,` or `]`"),
                    }
                }
            }
            Some(b'{') => {
                self.at += 1;
                let mut members = Vec::new();
                if self.peek() == Some(b'}') {
                    self.at += 1;
                    return Ok(Json::Object(members));
                }
                loop {
                    if self.peek() != Some(b'"') {
                        return self.fail("expected a member name");
                    }
                    let name = self.string()?;
                    if self.peek() != Some(b':') {
                        return self.fail("expected `:`");
                    }
                    self.at += 1;
                    members.push((name, self.value(depth + 1)?));
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b'}') => {
                            self.at += 1;
                            return Ok(Json::Object(members));
                        }
                        _ => return self.fail("expected `,` or `}`"),
                    }
                }
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => self.fail("expected a value"),
        }
    }

    /// A number, checked against JSON's grammar and kept as text.
    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.at;
        let digits = |parser: &mut Self| {
            let from = parser.at;
            while let Some(b'0'..=b'9') = parser.bytes.get(parser.at) {
                parser.at += 1;
            }
            parser.at - from
        };
        if self.bytes.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        match digits(self) {
            0 => return self.fail("expected a digit"),
            n if n > 1 && self.bytes[int_start] == b'0' => {
                return self.fail("a number may not start with 0");
            }
            _ => {}
        }
        if self.bytes.get(self.at) == Some(&b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return self.fail("expected a digit after the decimal point");
            }
        }
        if let Some(b'e' | b'E') = self.bytes.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.bytes.get(self.at) {
                self.at += 1;
            }
            if digits(self) == 0 {
                return self.fail("expected a digit in the exponent");
            }
        }
        // Only ASCII digits, signs, `.` and `e` were consumed.
        let text = String::from_utf8_lossy(&self.bytes[start..self.at]).into_owned();
        Ok(Json::Number(text))
    }

    /// A string, its escapes decoded; the opening quote is at `self.at`.
    fn string(&mut self) -> Result<String, JsonError> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            let start = self.at;
            while let Some(&byte) = self.bytes.get(self.at) {
                if byte == b'"' || byte == b'\\' || byte < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.extend_from_slice(&self.bytes[start..self.at]);
            match self.bytes.get(self.at) {
                None => return self.fail("unterminated string"),
                Some(b'"') => {
                    self.at += 1;
                    // The input is a `str` and escapes decode to whole characters.
                    return String::from_utf8(out).or_else(|_| self.fail("invalid UTF-8"));
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = match self.bytes.get(self.at) {
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.at += 1;
                            let unit = self.hex4()?;
                            let code = match unit {
                                0xD800..=0xDBFF => {
                                    if !self.bytes[self.at..].starts_with(b"\\u") {
                                        return self.fail("lone leading surrogate");
                                    }
                                    self.at += 2;
                                    let low = self.hex4()?;
                                    if !(0xDC00..=0xDFFF).contains(&low) {
                                        return self.fail("invalid trailing surrogate");
                                    }
                                    0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                                }
                                0xDC00..=0xDFFF => return self.fail("lone trailing surrogate"),
                                unit => unit,
                            };
                            let Some(ch) = char::from_u32(code) else {
                                return self.fail("invalid escape");
                            };
                            let mut buffer = [0; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
                            continue;
                        }
                        _ => return self.fail("invalid escape"),
                    };
                    self.at += 1;
                    out.push(escaped as u8);
                }
                Some(_) => return self.fail("control character in string"),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let Some(digits) = self.bytes.get(self.at..self.at + 4) else {
            return self.fail("unterminated escape");
        };
        let mut value = 0;
        for &digit in digits {
            let Some(nibble) = (digit as char).to_digit(16) else {
                return self.fail("invalid \\u escape");
            };
            value = value * 16 + nibble;
        }
        self.at += 4;
        Ok(value)
    }
}

impl Json {
    /// The value's kind, for messages.
    fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Number(_) => "a number",
            Json::String(_) => "a string",
            Json::Array(_) => "an array",
            Json::Object(_) => "an object",
        }
    }

    /// The members of an object, for reading a `what` (named in messages).
    pub fn fields(&self, what: &'static str) -> Result<Fields<'_>, JsonError> {
        let Json::Object(members) = self else {
            return error(format!("{what}: expected an object, found {}", self.kind()));
        };
        for (index, (name, _)) in members.iter().enumerate() {
            if members[..index].iter().any(|(other, _)| other == name) {
                return error(format!("{what}: duplicate field `{name}`"));
            }
        }
        Ok(Fields { members, what })
    }

    /// The text of a string.
    pub fn as_str(&self) -> Result<&str, JsonError> {
        match self {
            Json::String(text) => Ok(text),
            other => error(format!("expected a string, found {}", other.kind())),
        }
    }

    /// The elements of an array.
    pub fn as_array(&self) -> Result<&[Json], JsonError> {
        match self {
            Json::Array(items) => Ok(items),
            other => error(format!("expected an array, found {}", other.kind())),
        }
    }
}

/// An object's members, read by name.
#[derive(Debug)]
pub struct Fields<'a> {
    members: &'a [(String, Json)],
    what: &'static str,
}

impl<'a> Fields<'a> {
    /// The member named `name`, if present (null included).
    pub fn get(&self, name: &str) -> Option<&'a Json> {
        self.members
            .iter()
            .find(|(member, _)| member == name)
            .map(|(_, value)| value)
    }

    fn read<T: FromJson>(&self, name: &str, value: &Json) -> Result<T, JsonError> {
        T::from_json(value).map_err(|err| self.in_field(name, err))
    }

    /// `err` as found in member `name`. Kept apart from the generic readers, which would
    /// otherwise each carry a copy of the formatting.
    #[inline(never)]
    fn in_field(&self, name: &str, JsonError(message): JsonError) -> JsonError {
        JsonError(format!("{}.{name}: {message}", self.what))
    }

    #[inline(never)]
    fn missing(&self, name: &str) -> JsonError {
        JsonError(format!("{}: missing field `{name}`", self.what))
    }

    /// A required member.
    pub fn req<T: FromJson>(&self, name: &str) -> Result<T, JsonError> {
        match self.get(name) {
            Some(value) => self.read(name, value),
            None => Err(self.missing(name)),
        }
    }

    /// A required member read by `read` (for a form other than the type's own, as base64).
    pub fn req_with<T>(
        &self,
        name: &str,
        read: impl FnOnce(&'a Json) -> Result<T, JsonError>,
    ) -> Result<T, JsonError> {
        match self.get(name) {
            Some(value) => read(value).map_err(|err| self.in_field(name, err)),
            None => Err(self.missing(name)),
        }
    }

    /// An optional member: absent or null is `None`.
    pub fn opt<T: FromJson>(&self, name: &str) -> Result<Option<T>, JsonError> {
        match self.get(name) {
            None | Some(Json::Null) => Ok(None),
            Some(value) => self.read(name, value).map(Some),
        }
    }

    /// A member that defaults when absent (as serde's `#[serde(default)]`: null is not absent).
    pub fn or_default<T: FromJson + Default>(&self, name: &str) -> Result<T, JsonError> {
        self.or_else(name, T::default)
    }

    /// A member with the value `default()` when absent.
    pub fn or_else<T: FromJson>(
        &self,
        name: &str,
        default: impl FnOnce() -> T,
    ) -> Result<T, JsonError> {
        match self.get(name) {
            Some(value) => self.read(name, value),
            None => Ok(default()),
        }
    }

    /// Refuses members not in `known` (serde's `deny_unknown_fields`).
    pub fn only(&self, known: &[&str]) -> Result<(), JsonError> {
        match self
            .members
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            Some((name, _)) => error(format!("{}: unknown field `{name}`", self.what)),
            None => Ok(()),
        }
    }
}

impl FromJson for bool {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        match value {
            Json::Bool(value) => Ok(*value),
            other => error(format!("expected a boolean, found {}", other.kind())),
        }
    }
}

impl FromJson for String {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        value.as_str().map(str::to_owned)
    }
}

/// An integer: a number written without fraction or exponent, in range.
fn integer<T: std::str::FromStr>(value: &Json, what: &str) -> Result<T, JsonError> {
    match value {
        Json::Number(text) if !text.contains(['.', 'e', 'E']) => text
            .parse()
            .or_else(|_| error(format!("{text} is out of range for {what}"))),
        other => error(format!("expected {what}, found {}", other.kind())),
    }
}

impl FromJson for u64 {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        integer(value, "an unsigned integer")
    }
}

impl FromJson for u32 {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        integer(value, "an unsigned 32-bit integer")
    }
}

impl FromJson for f64 {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        match value {
            // Rust's parsing is correctly rounded, as serde_json's `float_roundtrip`.
            Json::Number(text) => text
                .parse::<f64>()
                .ok()
                .filter(|value| value.is_finite())
                .map_or_else(|| error(format!("{text} is out of range")), Ok),
            other => error(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl<T: FromJson> FromJson for Vec<T> {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        value
            .as_array()?
            .iter()
            .enumerate()
            .map(|(index, item)| {
                T::from_json(item)
                    .map_err(|JsonError(message)| JsonError(format!("[{index}]: {message}")))
            })
            .collect()
    }
}

impl<T: FromJson> FromJson for Option<T> {
    fn from_json(value: &Json) -> Result<Self, JsonError> {
        match value {
            Json::Null => Ok(None),
            value => T::from_json(value).map(Some),
        }
    }
}

/// Bytes as standard base64, the protocol's form for inputs and outputs.
pub struct Base64<'a>(pub &'a [u8]);

impl ToJson for Base64<'_> {
    fn write_json(&self, out: &mut String) {
        out.push('"');
        for chunk in self.0.chunks(3) {
            let bits = chunk.iter().enumerate().fold(0u32, |bits, (index, byte)| {
                bits | u32::from(*byte) << (16 - 8 * index)
            });
            for index in 0..4 {
                if index <= chunk.len() {
                    let sextet = (bits >> (18 - 6 * index)) & 0x3f;
                    out.push(char::from(BASE64_ALPHABET[sextet as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out.push('"');
    }
}

/// Standard base64's alphabet (RFC 4648, section 4).
const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Each byte's value in [`BASE64_ALPHABET`], or [`NOT_BASE64`].
const BASE64_SEXTETS: [u8; 256] = {
    let mut sextets = [NOT_BASE64; 256];
    let mut index = 0;
    while index < 64 {
        sextets[BASE64_ALPHABET[index] as usize] = index as u8;
        index += 1;
    }
    sextets
};

const NOT_BASE64: u8 = 0xff;

/// Reads bytes written as standard base64, padded, in its one canonical form (what the base64
/// crate's `STANDARD` engine, which the portal uses, accepts): written by hand because that
/// crate's general engine was 2 % of the browser's module.
pub fn base64(value: &Json) -> Result<Vec<u8>, JsonError> {
    let text = value.as_str()?.as_bytes();
    if text.len() % 4 != 0 {
        return error("invalid base64: its length is not a multiple of 4");
    }
    let mut bytes = Vec::with_capacity(text.len() / 4 * 3);
    for (index, quad) in text.chunks(4).enumerate() {
        let last = index == text.len() / 4 - 1;
        let padding = quad.iter().rev().take_while(|byte| **byte == b'=').count();
        if padding > 2 || (padding > 0 && !last) {
            return error("invalid base64: padding inside the text");
        }
        let mut bits = 0u32;
        for &byte in &quad[..4 - padding] {
            let sextet = BASE64_SEXTETS[usize::from(byte)];
            if sextet == NOT_BASE64 {
                return error(format!("invalid base64: byte {byte:#04x}"));
            }
            bits = bits << 6 | u32::from(sextet);
        }
        bits <<= 6 * padding;
        // Padding stands for bits that must be zero: anything else is not the canonical form.
        if bits & ((1 << (8 * padding)) - 1) != 0 {
            return error("invalid base64: trailing bits are not zero");
        }
        let decoded = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        bytes.extend_from_slice(&decoded[..3 - padding]);
    }
    Ok(bytes)
}

impl ToJson for Json {
    fn write_json(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(value) => value.write_json(out),
            Json::Number(text) => out.push_str(text),
            Json::String(text) => text.write_json(out),
            Json::Array(items) => items.write_json(out),
            Json::Object(members) => {
                let mut object = Object::new(out);
                for (name, value) in members {
                    object.field(name, value);
                }
                object.end();
            }
        }
    }
}

impl ToJson for bool {
    fn write_json(&self, out: &mut String) {
        out.push_str(if *self { "true" } else { "false" });
    }
}

impl ToJson for u64 {
    fn write_json(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl ToJson for u32 {
    fn write_json(&self, out: &mut String) {
        u64::from(*self).write_json(out);
    }
}

impl ToJson for f64 {
    /// As serde_json writes a float, with the same writer (zmij): the shortest digits that
    /// read back to the same value (`0.1`, `1.0`, `1e-7`, `1.5e+300`); not finite is null.
    fn write_json(&self, out: &mut String) {
        if self.is_finite() {
            out.push_str(zmij::Buffer::new().format_finite(*self));
        } else {
            out.push_str("null");
        }
    }
}

impl ToJson for str {
    /// Escaped as serde_json escapes: `"` and `\`, the short escapes, other control
    /// characters as `\u00XX`; everything else as it is.
    fn write_json(&self, out: &mut String) {
        out.push('"');
        let mut start = 0;
        for (index, byte) in self.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            out.push_str(&self[start..index]);
            if escape.is_empty() {
                let _ = write!(out, "\\u{byte:04x}");
            } else {
                out.push_str(escape);
            }
            start = index + 1;
        }
        out.push_str(&self[start..]);
        out.push('"');
    }
}

impl ToJson for String {
    fn write_json(&self, out: &mut String) {
        self.as_str().write_json(out);
    }
}

impl<T: ToJson + ?Sized> ToJson for &T {
    fn write_json(&self, out: &mut String) {
        (**self).write_json(out);
    }
}

impl<T: ToJson> ToJson for [T] {
    fn write_json(&self, out: &mut String) {
        out.push('[');
        for (index, item) in self.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            item.write_json(out);
        }
        out.push(']');
    }
}

impl<T: ToJson> ToJson for Vec<T> {
    fn write_json(&self, out: &mut String) {
        self.as_slice().write_json(out);
    }
}

impl<T: ToJson> ToJson for Option<T> {
    fn write_json(&self, out: &mut String) {
        match self {
            Some(value) => value.write_json(out),
            None => out.push_str("null"),
        }
    }
}

/// Writes an object's members in order: `Object::new(out).field("a", &1).end()`.
pub struct Object<'a> {
    out: &'a mut String,
    empty: bool,
}

impl<'a> Object<'a> {
    pub fn new(out: &'a mut String) -> Self {
        out.push('{');
        Self { out, empty: true }
    }

    /// Writes a member.
    pub fn field<T: ToJson + ?Sized>(&mut self, name: &str, value: &T) -> &mut Self {
        self.name(name);
        value.write_json(self.out);
        self
    }

    /// A member's separator and name, apart from the generic part of [`Object::field`].
    #[inline(never)]
    fn name(&mut self, name: &str) {
        if !self.empty {
            self.out.push(',');
        }
        self.empty = false;
        name.write_json(self.out);
        self.out.push(':');
    }

    /// Writes a member unless it is `None` (serde's `skip_serializing_if = "Option::is_none"`).
    pub fn some<T: ToJson>(&mut self, name: &str, value: &Option<T>) -> &mut Self {
        if let Some(value) = value {
            self.field(name, value);
        }
        self
    }

    /// Writes a member unless it is empty (`skip_serializing_if = "Vec::is_empty"`).
    pub fn nonempty<T: ToJson>(&mut self, name: &str, value: &[T]) -> &mut Self {
        if !value.is_empty() {
            self.field(name, value);
        }
        self
    }

    pub fn end(&mut self) {
        self.out.push('}');
    }
}

/// Implements [`FromJson`] and [`ToJson`] for a unit-only enum written as snake_case strings.
#[macro_export]
macro_rules! json_names {
    ($type:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $crate::json::ToJson for $type {
            fn write_json(&self, out: &mut String) {
                let name = match self { $(Self::$variant => $name),+ };
                $crate::json::ToJson::write_json(name, out);
            }
        }

        impl $crate::json::FromJson for $type {
            fn from_json(value: &$crate::json::Json) -> Result<Self, $crate::json::JsonError> {
                match value.as_str()? {
                    $($name => Ok(Self::$variant),)+
                    other => Err($crate::json::JsonError(format!(
                        "unknown variant `{other}`"
                    ))),
                }
            }
        }
    };
}

/// Implements [`FromJson`] and [`ToJson`] for a newtype over a `u64` written as a number.
#[macro_export]
macro_rules! json_number_id {
    ($($type:ident),+) => {$(
        impl $crate::json::ToJson for $type {
            fn write_json(&self, out: &mut String) {
                $crate::json::ToJson::write_json(&self.0, out);
            }
        }

        impl $crate::json::FromJson for $type {
            fn from_json(value: &$crate::json::Json) -> Result<Self, $crate::json::JsonError> {
                <u64 as $crate::json::FromJson>::from_json(value).map($type)
            }
        }
    )+};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_serde_json_writes_them() {
        let mut samples = vec![
            0.0,
            -0.0,
            1.0,
            0.1,
            0.2,
            1e-7,
            1e-5,
            1e-4,
            0.001,
            1e15,
            1e16,
            1e17,
            1e21,
            1e22,
            123456789.0,
            1.5e300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.3333333333333333,
            1234567890123456.0,
            12345678901234567.0,
            0.000012345,
            0.00012345,
            2.5e-5,
        ];
        // Random rates in [0, 1] (a policy's floats), decimals, and any bit pattern.
        let mut any_bits = Vec::new();
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let value = f64::from_bits(state);
            if value.is_finite() {
                any_bits.push(value);
            }
            samples.push((state >> 11) as f64 / (1u64 << 53) as f64);
            samples.push((state % 1_000_000) as f64 / 1000.0);
        }
        for value in samples.into_iter().chain(any_bits) {
            let ours = to_string(&value);
            assert_eq!(ours, serde_json::to_string(&value).unwrap(), "{value:e}");
            let read: f64 = from_str(&ours).unwrap();
            assert_eq!(read.to_bits(), value.to_bits(), "{value:e}");
        }
        assert_eq!(to_string(&f64::NAN), "null");
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut samples: Vec<String> = (0u32..0x80)
            .filter_map(char::from_u32)
            .map(String::from)
            .collect();
        samples.extend(
            [
                "",
                "plain",
                "é ü 漢字 🦀",
                "a\"b\\c/d",
                "\u{7f}\u{80}\u{2028}\u{fffd}",
            ]
            .map(String::from),
        );
        for text in samples {
            let ours = to_string(&text);
            assert_eq!(ours, serde_json::to_string(&text).unwrap(), "{text:?}");
            assert_eq!(from_str::<String>(&ours).unwrap(), text);
        }
    }

    #[test]
    fn parses_what_serde_json_parses_and_refuses_what_it_refuses() {
        let accepted = [
            r#"{"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83e\udd80\n"], "b": {}}"#,
            " [ ] ",
            "0",
            "-0.0e+1",
            r#""\/\b\f\r\t""#,
        ];
        for text in accepted {
            let ours = parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                serde_json::from_str::<serde_json::Value>(&to_string(&ours)).unwrap(),
                theirs,
                "{text}"
            );
        }
        let refused = [
            "",
            " ",
            "nul",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "[1 2]",
            "{\"a\" 1}",
            "{1:2}",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\nb\"",
            "\"unterminated",
            "[1] x",
            "\"\\u12\"",
            "NaN",
            "Infinity",
        ];
        for text in refused {
            assert!(parse(text).is_err(), "{text:?} was accepted");
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
        }
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(parse(&deep).is_err());
        let ok_depth = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&ok_depth).is_ok());
    }

    #[test]
    fn integers_are_exact_and_checked() {
        assert_eq!(from_str::<u64>("18446744073709551615").unwrap(), u64::MAX);
        assert!(from_str::<u64>("18446744073709551616").is_err());
        assert!(from_str::<u64>("-1").is_err());
        assert!(from_str::<u64>("1.0").is_err());
        assert!(from_str::<u64>("1e3").is_err());
        assert!(from_str::<u32>("4294967296").is_err());
        assert!(from_str::<u64>("\"1\"").is_err());
        assert_eq!(from_str::<f64>("3").unwrap(), 3.0);
        assert!(from_str::<f64>("1e400").is_err());
    }

    #[test]
    fn base64_is_the_standard_engines() {
        use base64::Engine as _;
        use base64::engine::general_purpose::STANDARD;

        let mut state = 0x853c_49e6_748f_ea9b_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for length in 0..200 {
            let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            let ours = to_string(&Base64(&bytes));
            assert_eq!(ours, format!("\"{}\"", STANDARD.encode(&bytes)));
            assert_eq!(base64(&parse(&ours).unwrap()).unwrap(), bytes);
        }
        // Texts of the alphabet, padding and a few strangers: accepted exactly when the
        // engine accepts them, to the same bytes.
        let letters = b"AQw+/=9_-";
        for _ in 0..100_000 {
            let length = (next() % 9) as usize;
            let text: String = (0..length)
                .map(|_| char::from(letters[(next() % letters.len() as u64) as usize]))
                .collect();
            let theirs = STANDARD.decode(&text).ok();
            let ours = base64(&Json::String(text.clone())).ok();
            assert_eq!(ours, theirs, "{text:?}");
        }
    }

    #[test]
    fn objects_name_their_problems() {
        let value = parse(r#"{"a": 1, "b": "x"}"#).unwrap();
        let fields = value.fields("thing").unwrap();
        assert_eq!(fields.req::<u64>("a").unwrap(), 1);
        assert_eq!(fields.opt::<u64>("c").unwrap(), None);
        assert_eq!(fields.or_else::<u64>("c", || 7).unwrap(), 7);
        assert_eq!(
            fields.req::<u64>("b").unwrap_err().0,
            "thing.b: expected an unsigned integer, found a string"
        );
        assert_eq!(
            fields.req::<u64>("c").unwrap_err().0,
            "thing: missing field `c`"
        );
        assert_eq!(
            fields.only(&["a"]).unwrap_err().0,
            "thing: unknown field `b`"
        );
        let twice = parse(r#"{"a": 1, "a": 2}"#).unwrap();
        assert!(twice.fields("thing").is_err());
        assert!(parse("[]").unwrap().fields("thing").is_err());
    }
}
