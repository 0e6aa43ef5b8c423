//! One element of a history file, deserialized without judging it yet.
//!
//! Every element is read into [`RawEntry`], a struct holding every field of every
//! supported format as a [`Field`]: absent, null, a value, or a value of the wrong type.
//! Reading never fails on a field's type, so the format of a file can be recognised by
//! its keys alone; the converters in `extended` and `account` then turn wrong types,
//! missing fields and bad values into clear, field-named errors.
//!
//! Fields that identify the listener (`username`, `ip_addr`, `ip_addr_decrypted`,
//! `user_agent_decrypted`) are deliberately not declared: serde skips them without
//! allocating, so they never reach memory as owned strings.

use super::ExportFormat;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;
use std::marker::PhantomData;

/// A field of a raw entry: distinguishes an absent key from `null`, and keeps a
/// description of a value of the wrong type instead of failing on it.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) enum Field<T> {
    /// The key is not in the object.
    #[default]
    Absent,
    /// The key is there with `null`.
    Null,
    /// The key holds a value of the expected type.
    Value(T),
    /// The key holds a value of another type; what was found, for the error message.
    Invalid(String),
}

impl<T: Scalar> Field<T> {
    /// Whether the key is in the object (even with `null`).
    pub(crate) fn is_present(&self) -> bool {
        !matches!(self, Field::Absent)
    }

    /// The value, `None` when absent or null; an error naming `name` for a wrong type.
    pub(crate) fn optional(self, name: &str) -> Result<Option<T>, String> {
        match self {
            Field::Absent | Field::Null => Ok(None),
            Field::Value(v) => Ok(Some(v)),
            Field::Invalid(found) => Err(format!("`{name}` must be {}, found {found}", T::EXPECTED)),
        }
    }

    /// The value; an error naming `name` when absent, null or of the wrong type.
    pub(crate) fn required(self, name: &str) -> Result<T, String> {
        match self {
            Field::Absent => Err(format!("missing `{name}`")),
            Field::Null => Err(format!("`{name}` is null")),
            other => Ok(other.optional(name)?.expect("a value")),
        }
    }
}

impl Field<String> {
    /// Like [`Field::optional`], with empty or blank strings read as `None`.
    pub(crate) fn text(self, name: &str) -> Result<Option<String>, String> {
        Ok(self.optional(name)?.filter(|s| !s.trim().is_empty()))
    }

    /// Whether the field holds a string that is not blank.
    pub(crate) fn is_named(&self) -> bool {
        matches!(self, Field::Value(s) if !s.trim().is_empty())
    }
}

/// A JSON scalar type a [`Field`] can hold.
pub(crate) trait Scalar: Sized {
    /// What is expected, for messages: "a string", "an integer", ...
    const EXPECTED: &'static str;
    /// From a JSON string.
    fn from_str(_: &str) -> Option<Self> {
        None
    }
    /// From a JSON integer that fits an `i64`.
    fn from_i64(_: i64) -> Option<Self> {
        None
    }
    /// From a JSON integer that fits a `u64`.
    fn from_u64(_: u64) -> Option<Self> {
        None
    }
    /// From a JSON number with a fraction or exponent.
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    /// From `true` / `false`.
    fn from_bool(_: bool) -> Option<Self> {
        None
    }
}

impl Scalar for String {
    const EXPECTED: &'static str = "a string";
    fn from_str(s: &str) -> Option<Self> {
        Some(s.to_owned())
    }
}

impl Scalar for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_i64(v: i64) -> Option<Self> {
        Some(v)
    }
    fn from_u64(v: u64) -> Option<Self> {
        i64::try_from(v).ok()
    }
    fn from_f64(v: f64) -> Option<Self> {
        // `1.5e3` style integers: accept whole numbers only.
        (v.fract() == 0.0 && v.abs() < 9.0e18).then_some(v as i64)
    }
}

impl Scalar for bool {
    const EXPECTED: &'static str = "a boolean";
    fn from_bool(v: bool) -> Option<Self> {
        Some(v)
    }
}

fn describe_str(s: &str) -> String {
    const MAX: usize = 40;
    match s.char_indices().nth(MAX) {
        Some((cut, _)) => format!("the string {:?}...", &s[..cut]),
        None => format!("the string {s:?}"),
    }
}

struct FieldVisitor<T>(PhantomData<T>);

impl<'de, T: Scalar> Visitor<'de> for FieldVisitor<T> {
    type Value = Field<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} or null", T::EXPECTED)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Field::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        Field::deserialize(d)
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Self::Value, E> {
        Ok(T::from_str(s).map_or_else(|| Field::Invalid(describe_str(s)), Field::Value))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(T::from_bool(v).map_or_else(|| Field::Invalid(format!("`{v}`")), Field::Value))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(T::from_i64(v).map_or_else(|| Field::Invalid(format!("the number {v}")), Field::Value))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(T::from_u64(v).map_or_else(|| Field::Invalid(format!("the number {v}")), Field::Value))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(T::from_f64(v).map_or_else(|| Field::Invalid(format!("the number {v}")), Field::Value))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Field::Invalid("an array".into()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Field::Invalid("an object".into()))
    }
}

impl<'de, T: Scalar> Deserialize<'de> for Field<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(FieldVisitor(PhantomData))
    }
}

/// Every field of every supported format (unknown keys are skipped).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct RawEntry {
    // Extended streaming history.
    pub ts: Field<String>,
    pub platform: Field<String>,
    pub ms_played: Field<i64>,
    pub conn_country: Field<String>,
    pub master_metadata_track_name: Field<String>,
    pub master_metadata_album_artist_name: Field<String>,
    pub master_metadata_album_album_name: Field<String>,
    pub spotify_track_uri: Field<String>,
    pub episode_name: Field<String>,
    pub episode_show_name: Field<String>,
    pub spotify_episode_uri: Field<String>,
    pub reason_start: Field<String>,
    pub reason_end: Field<String>,
    pub shuffle: Field<bool>,
    pub skipped: Field<bool>,
    pub offline: Field<bool>,
    pub offline_timestamp: Field<i64>,
    pub incognito_mode: Field<bool>,
    pub audiobook_title: Field<String>,
    pub audiobook_uri: Field<String>,
    pub audiobook_chapter_uri: Field<String>,
    pub audiobook_chapter_title: Field<String>,
    // Written by `echostats export` beside Spotify's fields (crate::export).
    pub echostats_origin: Field<String>,
    pub echostats_artist_id: Field<String>,
    pub echostats_context_type: Field<String>,
    pub echostats_context_uri: Field<String>,
    pub echostats_anchor: Field<i64>,
    pub echostats_anchor_minute: Field<bool>,
    // Account data.
    #[serde(rename = "endTime")]
    pub end_time: Field<String>,
    #[serde(rename = "msPlayed")]
    pub ms_played_account: Field<i64>,
    #[serde(rename = "artistName")]
    pub artist_name: Field<String>,
    #[serde(rename = "trackName")]
    pub track_name: Field<String>,
    #[serde(rename = "podcastName")]
    pub podcast_name: Field<String>,
    #[serde(rename = "episodeName")]
    pub account_episode_name: Field<String>,
}

/// The shape of one entry, by its keys only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Has the keys of one format.
    Format(ExportFormat),
    /// `endTime` + `msPlayed` without any name key: account data, music or podcast.
    AccountNameless,
    /// Matches no known format.
    Unknown,
}

impl RawEntry {
    /// Recognises the format of the entry by its keys.
    pub(crate) fn shape(&self) -> Shape {
        if self.ts.is_present() && self.ms_played.is_present() {
            Shape::Format(ExportFormat::ExtendedHistory)
        } else if self.end_time.is_present() && self.ms_played_account.is_present() {
            if self.track_name.is_present() || self.artist_name.is_present() {
                Shape::Format(ExportFormat::AccountMusic)
            } else if self.podcast_name.is_present() || self.account_episode_name.is_present() {
                Shape::Format(ExportFormat::AccountPodcast)
            } else {
                Shape::AccountNameless
            }
        } else {
            Shape::Unknown
        }
    }
}

/// One element of the top-level array: an object, or something else (named).
#[derive(Debug)]
pub(crate) enum Element {
    /// A JSON object, read into the raw entry.
    Object(Box<RawEntry>),
    /// Not an object: "a string", "an array", ...
    Other(&'static str),
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Element, A::Error> {
        RawEntry::deserialize(de::value::MapAccessDeserializer::new(map)).map(|r| Element::Object(Box::new(r)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an array"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Element, E> {
        Ok(Element::Other("a string"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element, E> {
        Ok(Element::Other("a boolean"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element, E> {
        Ok(Element::Other("a number"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other("null"))
    }
    fn visit_none<E: de::Error>(self) -> Result<Element, E> {
        Ok(Element::Other("null"))
    }
}

impl<'de> Deserialize<'de> for Element {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ElementVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(json: &str) -> RawEntry {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn fields_distinguish_absent_null_value_and_wrong_type() {
        let r = raw(r#"{"ts": null, "ms_played": "abc", "shuffle": [1, {"a": 2}], "platform": "ios"}"#);
        assert_eq!(r.ts, Field::Null);
        assert_eq!(r.conn_country, Field::Absent);
        assert_eq!(r.platform, Field::Value("ios".into()));
        assert_eq!(
            r.ms_played.clone().required("ms_played").unwrap_err(),
            "`ms_played` must be an integer, found the string \"abc\""
        );
        assert_eq!(r.shuffle, Field::Invalid("an array".into()));
        assert_eq!(r.ts.required("ts").unwrap_err(), "`ts` is null");
    }

    #[test]
    fn numbers_convert_only_when_whole_and_in_range() {
        let r = raw(r#"{"ms_played": 1.5e3, "offline_timestamp": 18446744073709551615}"#);
        assert_eq!(r.ms_played, Field::Value(1500));
        assert!(matches!(r.offline_timestamp, Field::Invalid(_)));
        let r = raw(r#"{"ms_played": 1.5}"#);
        assert_eq!(r.ms_played, Field::Invalid("the number 1.5".into()));
    }

    #[test]
    fn shapes_are_recognised_by_keys() {
        assert_eq!(raw(r#"{"ts": null, "ms_played": null}"#).shape(), Shape::Format(ExportFormat::ExtendedHistory));
        assert_eq!(
            raw(r#"{"endTime": "x", "msPlayed": 1, "trackName": null}"#).shape(),
            Shape::Format(ExportFormat::AccountMusic)
        );
        assert_eq!(
            raw(r#"{"endTime": "x", "msPlayed": 1, "podcastName": "p"}"#).shape(),
            Shape::Format(ExportFormat::AccountPodcast)
        );
        assert_eq!(raw(r#"{"endTime": "x", "msPlayed": 1}"#).shape(), Shape::AccountNameless);
        assert_eq!(raw(r#"{"artistName": "x", "segment": "y"}"#).shape(), Shape::Unknown);
    }

    #[test]
    fn long_strings_are_shortened_in_messages() {
        let d = describe_str(&"é".repeat(100));
        assert!(d.ends_with("...") && d.chars().count() < 60, "{d}");
    }
}
