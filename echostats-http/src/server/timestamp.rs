//! The API's instants, written as EchoStats writes them: RFC 3339 in UTC with a `Z`
//! (`2025-01-15T14:32:00Z`). poem-openapi's own `DateTime<Utc>` writes `+00:00`, and all
//! nine digits of nanoseconds whenever the value has any.

use chrono::{DateTime, SecondsFormat, Utc};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;
use std::borrow::Cow;

/// An instant in a response. Fractional seconds are written only when the value has
/// them, in groups of 3 digits (milliseconds, micro-, nanoseconds), so nothing is lost:
/// a `played_at` handed back as a filter selects the same play.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Now.
    pub fn now() -> Self {
        Timestamp(Utc::now())
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Self {
        Timestamp(t)
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl Type for Timestamp {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    // The same schema as `DateTime<Utc>`: the spec does not change.
    fn name() -> Cow<'static, str> {
        "string_date-time".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema::new_with_format("string", "date-time")))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl ToJSON for Timestamp {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.to_string()))
    }
}

// Response objects derive both directions; any RFC 3339 offset reads back.
impl ParseFromJSON for Timestamp {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(s) => Ok(Timestamp(DateTime::parse_from_rfc3339(&s)?.with_timezone(&Utc))),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn json(t: DateTime<Utc>) -> Value {
        Timestamp(t).to_json().unwrap()
    }

    #[test]
    fn written_in_utc_with_z_and_only_the_digits_the_value_has() {
        let whole = Utc.with_ymd_and_hms(2025, 1, 15, 14, 32, 0).unwrap();
        assert_eq!(json(whole), "2025-01-15T14:32:00Z");
        let millis = whole + chrono::Duration::milliseconds(123);
        assert_eq!(json(millis), "2025-01-15T14:32:00.123Z");
        let nanos = whole + chrono::Duration::nanoseconds(123_456_789);
        assert_eq!(json(nanos), "2025-01-15T14:32:00.123456789Z");
    }

    #[test]
    fn reads_back_exactly_from_any_offset() {
        let t = Utc.with_ymd_and_hms(2025, 1, 15, 14, 32, 0).unwrap() + chrono::Duration::microseconds(5);
        assert_eq!(Timestamp::parse_from_json(Some(json(t))).unwrap(), Timestamp(t));
        let offset = Timestamp::parse_from_json(Some(Value::String("2025-01-15T15:32:00+01:00".into()))).unwrap();
        assert_eq!(offset, Timestamp(Utc.with_ymd_and_hms(2025, 1, 15, 14, 32, 0).unwrap()));
        assert!(Timestamp::parse_from_json(Some(Value::from(3))).is_err());
        assert!(Timestamp::parse_from_json(Some(Value::String("yesterday".into()))).is_err());
    }
}
