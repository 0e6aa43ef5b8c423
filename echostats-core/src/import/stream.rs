//! Streams a JSON document whose top level is an array, one element at a time.
//!
//! The document is read through serde_json's streaming deserializer; a [`SeqAccess`]
//! visitor hands each element to a callback as soon as it is parsed, so memory depends
//! on the largest element, never on the size of the file. Elements are additionally
//! capped in size (a streaming history entry is well under a kilobyte), so a hostile
//! file cannot make one element hold gigabytes either.

use serde::de::{
    self, value, DeserializeOwned, DeserializeSeed, Deserializer, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};
use serde_json::error::Category;
use std::cell::Cell;
use std::fmt;
use std::io::{self, BufReader, Read};
use std::marker::PhantomData;

/// Size of the read buffer in front of the JSON parser.
pub(crate) const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Largest accepted array element, in bytes of JSON text.
pub(crate) const MAX_ELEMENT_BYTES: u64 = 1 << 20;

const UTF8_BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// What the element callback wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Hand over the next element.
    Continue,
    /// Stop reading; the rest of the input is not looked at.
    Stop,
}

/// How a stream ended, when it did not fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// The whole array was read, followed by nothing but white space.
    Finished {
        /// Elements in the array.
        entries: u64,
    },
    /// The callback asked to stop.
    Stopped {
        /// Elements handed over so far.
        entries: u64,
    },
    /// The top-level value is not an array ("an object", "a string", ...); nothing was read
    /// past its first byte.
    NotAnArray(&'static str),
    /// The input holds no JSON value at all (empty, or only white space / a BOM).
    Empty,
}

/// Why a stream failed: the element reached, where, and a message for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamError {
    /// Zero-based index of the element being read (for a truncated file: the last one
    /// reached).
    pub entry: u64,
    /// Line and column (1-based line, serde_json's column), when known.
    pub position: Option<(usize, usize)>,
    /// What was wrong.
    pub reason: String,
}

/// An I/O error whose message is meant for the user as it is (limits exceeded, corrupt
/// zip entries). Other I/O errors are reported as "read error: ...".
#[derive(Debug)]
pub(crate) struct ReadError(pub String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ReadError {}

impl ReadError {
    /// Wraps `message` in an [`io::Error`].
    pub(crate) fn io(message: impl Into<String>) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, ReadError(message.into()))
    }
}

/// The message for an I/O error: a [`ReadError`] as is, others prefixed.
pub(crate) fn io_reason(e: &io::Error) -> String {
    match e.get_ref().and_then(|inner| inner.downcast_ref::<ReadError>()) {
        Some(ReadError(message)) => message.clone(),
        None => format!("read error: {e}"),
    }
}

/// Byte budget of the element being read, shared by the reader and the visitor.
#[derive(Default)]
struct Budget {
    consumed: Cell<u64>,
    limit: Cell<u64>,
    exceeded: Cell<bool>,
}

impl Budget {
    /// Opens the budget of the next element. The reader counts bytes as the buffer is
    /// refilled, ahead of the parser by at most one buffer; allowing one more buffer
    /// makes every element up to `max` bytes pass, and none much larger.
    fn start_element(&self, max: u64) {
        self.limit.set(self.consumed.get().saturating_add(max + READ_BUFFER_BYTES as u64));
    }
}

struct BudgetReader<'b, R> {
    inner: R,
    budget: &'b Budget,
}

impl<R: Read> Read for BudgetReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let b = self.budget;
        if b.consumed.get() > b.limit.get() {
            b.exceeded.set(true);
            return Err(ReadError::io("entry too large"));
        }
        let n = self.inner.read(buf)?;
        b.consumed.set(b.consumed.get() + n as u64);
        Ok(n)
    }
}

#[derive(Default)]
struct State {
    /// Index of the element being read.
    index: u64,
    /// The top-level value was an array.
    in_array: bool,
    /// What the top-level value was instead of an array.
    not_array: Option<&'static str>,
    /// The callback asked to stop.
    stopped: bool,
    /// The callback's error message.
    callback_error: Option<String>,
}

struct TopVisitor<'a, T, F> {
    state: &'a mut State,
    budget: &'a Budget,
    max_element_bytes: u64,
    on_element: &'a mut F,
    element: PhantomData<fn() -> T>,
}

impl<T, F> TopVisitor<'_, T, F> {
    fn not_array<E: de::Error>(self, kind: &'static str) -> Result<(), E> {
        self.state.not_array = Some(kind);
        Err(E::custom(format!("expected an array, found {kind}")))
    }
}

impl<'de, T, F> Visitor<'de> for TopVisitor<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        self.state.in_array = true;
        loop {
            self.budget.start_element(self.max_element_bytes);
            let seed = ElementSeed {
                index: self.state.index,
                on_element: &mut *self.on_element,
                callback_error: &mut self.state.callback_error,
                element: PhantomData,
            };
            match seq.next_element_seed(seed)? {
                None => return Ok(()),
                Some(Flow::Continue) => self.state.index += 1,
                Some(Flow::Stop) => {
                    self.state.index += 1;
                    self.state.stopped = true;
                    return Ok(());
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.not_array("an object")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_array("a string")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_array("a boolean")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_array("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_array("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_array("a number")
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.not_array("null")
    }
}

/// Deserializes one element as `T` and hands it to the callback *inside* the element's
/// own deserialization, so that a callback error gets serde_json's position of the
/// element's end (not of whatever follows it).
struct ElementSeed<'a, T, F> {
    index: u64,
    on_element: &'a mut F,
    callback_error: &'a mut Option<String>,
    element: PhantomData<fn() -> T>,
}

impl<T, F> ElementSeed<'_, T, F>
where
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    fn deliver<E: de::Error>(self, element: Result<T, E>) -> Result<Flow, E> {
        match (self.on_element)(self.index, element?) {
            Ok(flow) => Ok(flow),
            Err(reason) => {
                *self.callback_error = Some(reason.clone());
                Err(E::custom(reason))
            }
        }
    }
}

impl<'de, T, F> DeserializeSeed<'de> for ElementSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    type Value = Flow;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Flow, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T, F> Visitor<'de> for ElementSeed<'_, T, F>
where
    T: DeserializeOwned,
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    type Value = Flow;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Flow, A::Error> {
        self.deliver(T::deserialize(value::MapAccessDeserializer::new(map)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Flow, A::Error> {
        self.deliver(T::deserialize(value::SeqAccessDeserializer::new(seq)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Flow, E> {
        self.deliver(T::deserialize(v.into_deserializer()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Flow, E> {
        self.deliver(T::deserialize(v.into_deserializer()))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Flow, E> {
        self.deliver(T::deserialize(v.into_deserializer()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Flow, E> {
        self.deliver(T::deserialize(v.into_deserializer()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Flow, E> {
        self.deliver(T::deserialize(v.into_deserializer()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Flow, E> {
        self.deliver(T::deserialize(().into_deserializer()))
    }
}

/// Reads the first up-to-`buf.len()` bytes, however the reader splits them.
fn read_prefix(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// serde_json's message without its " at line L column C" suffix.
fn bare_message(err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(bare) => bare.to_owned(),
        None => text,
    }
}

fn describe(err: serde_json::Error, budget: &Budget, max_element_bytes: u64) -> String {
    if budget.exceeded.get() {
        return format!(
            "entry is larger than {} KiB, far more than any streaming history entry: the file is corrupt or not a streaming history file",
            max_element_bytes / 1024
        );
    }
    match err.classify() {
        Category::Io => io_reason(&io::Error::from(err)),
        Category::Eof => format!("unexpected end of file, the JSON is truncated ({})", bare_message(&err)),
        Category::Syntax => match bare_message(&err) {
            m if m == "invalid unicode code point" => {
                "the file is not UTF-8 JSON: it holds a byte sequence that is not valid UTF-8 (was it re-saved in another encoding?)".into()
            }
            m => format!("malformed JSON: {m}"),
        },
        Category::Data => bare_message(&err),
    }
}

/// Streams the top-level array of `reader`, calling `on_element(index, element)` for
/// each element. A leading UTF-8 BOM is skipped. Elements larger than
/// `max_element_bytes` of JSON text fail the stream.
///
/// An error returned by the callback fails the stream at that element, with the
/// callback's message and serde_json's position of the element's end (just after it).
pub(crate) fn for_each_element<R, T, F>(
    mut reader: R,
    max_element_bytes: u64,
    mut on_element: F,
) -> Result<Streamed, StreamError>
where
    R: Read,
    T: DeserializeOwned,
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    let fail_at_start = |reason: String| StreamError { entry: 0, position: None, reason };
    let mut prefix = [0u8; 3];
    let n = read_prefix(&mut reader, &mut prefix).map_err(|e| fail_at_start(io_reason(&e)))?;
    let prefix = &prefix[..n];
    if prefix.starts_with(&[0xFF, 0xFE]) || prefix.starts_with(&[0xFE, 0xFF]) {
        return Err(fail_at_start("the file is UTF-16 encoded; expected UTF-8 JSON".into()));
    }
    let prefix: &[u8] = if prefix == UTF8_BOM { &[] } else { prefix };

    // Real export files are at most ~12 MB: read such a file whole and parse it from
    // memory, which serde_json does several times faster than from a reader. Anything
    // larger is streamed, so memory stays bounded whatever the file size.
    // A read error (corrupt zip entry, size limit) is replayed after the bytes read
    // before it, through the streaming path, so it is reported at the entry it hit.
    let mut head = SLICE_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
    head.clear();
    let read_error = (&mut prefix.chain(&mut reader)).take(SLICE_PARSE_MAX_BYTES + 1).read_to_end(&mut head).err();
    let budget = Budget::default();
    budget.start_element(max_element_bytes);
    if read_error.is_none() && head.len() as u64 <= SLICE_PARSE_MAX_BYTES {
        let streamed = match std::str::from_utf8(&head) {
            // Checked whole (nearly every file), serde_json need not check each string
            // again: that check was a tenth of the parser's time.
            Ok(text) => {
                drive(&mut serde_json::Deserializer::from_str(text), &budget, max_element_bytes, &mut on_element)
            }
            // Parsed as bytes, the first invalid sequence is reported at its entry.
            Err(_) => {
                drive(&mut serde_json::Deserializer::from_slice(&head), &budget, max_element_bytes, &mut on_element)
            }
        };
        SLICE_BUFFER.with(|b| *b.borrow_mut() = head);
        return streamed;
    }
    let input = BufReader::with_capacity(
        READ_BUFFER_BYTES,
        BudgetReader { inner: head.as_slice().chain(FailOnce(read_error)).chain(reader), budget: &budget },
    );
    let mut de = serde_json::Deserializer::from_reader(input);
    let streamed = drive(&mut de, &budget, max_element_bytes, &mut on_element);
    drop(de);
    SLICE_BUFFER.with(|b| *b.borrow_mut() = head);
    streamed
}

/// A reader that returns its error once, then end of file.
struct FailOnce(Option<io::Error>);

impl Read for FailOnce {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

/// Files up to this size are parsed from memory; larger ones are streamed.
pub(crate) const SLICE_PARSE_MAX_BYTES: u64 = 32 * 1024 * 1024;

thread_local! {
    /// The buffer files are read into for parsing from memory, kept for the thread's
    /// next file: an export is dozens of ~12 MB files, and a new buffer for each was
    /// grown by doubling (copying) and faulted in page by page, a third of the parser's
    /// time. At most one per parsing thread, of at most twice the slice limit.
    static SLICE_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn drive<'de, R, T, F>(
    de: &mut serde_json::Deserializer<R>,
    budget: &Budget,
    max_element_bytes: u64,
    on_element: &mut F,
) -> Result<Streamed, StreamError>
where
    R: serde_json::de::Read<'de>,
    T: DeserializeOwned,
    F: FnMut(u64, T) -> Result<Flow, String>,
{
    let mut state = State::default();
    let visitor = TopVisitor { state: &mut state, budget, max_element_bytes, on_element, element: PhantomData };
    let result = (&mut *de).deserialize_any(visitor);
    if state.stopped {
        return Ok(Streamed::Stopped { entries: state.index });
    }
    if let Some(kind) = state.not_array {
        return Ok(Streamed::NotAnArray(kind));
    }
    match result.and_then(|()| de.end()) {
        Ok(()) => Ok(Streamed::Finished { entries: state.index }),
        Err(e) if e.is_eof() && !state.in_array => Ok(Streamed::Empty),
        Err(e) => Err(StreamError {
            entry: state.index,
            position: (e.line() > 0).then(|| (e.line(), e.column())),
            reason: match state.callback_error.take() {
                Some(reason) => reason,
                None => describe(e, budget, max_element_bytes),
            },
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Runs the stream over `input`, collecting elements; stops after `stop_after`.
    fn run(input: &[u8], stop_after: Option<u64>) -> (Vec<Value>, Result<Streamed, StreamError>) {
        let mut seen = Vec::new();
        let result = for_each_element(input, MAX_ELEMENT_BYTES, |i, v: Value| {
            seen.push(v);
            Ok(if Some(i + 1) == stop_after { Flow::Stop } else { Flow::Continue })
        });
        (seen, result)
    }

    #[test]
    fn elements_arrive_in_order() {
        let (seen, r) = run(b" [1, {\"a\": 2}, \"x\"] \n", None);
        assert_eq!(seen, vec![Value::from(1), serde_json::json!({"a": 2}), Value::from("x")]);
        assert_eq!(r, Ok(Streamed::Finished { entries: 3 }));
    }

    #[test]
    fn stop_does_not_read_further() {
        let (seen, r) = run(b"[1, 2, oops", Some(2));
        assert_eq!(seen.len(), 2);
        assert_eq!(r, Ok(Streamed::Stopped { entries: 2 }));
    }

    #[test]
    fn top_level_kinds_and_empty_input() {
        assert_eq!(run(b"{\"tracks\": []}", None).1, Ok(Streamed::NotAnArray("an object")));
        assert_eq!(run(b"\"x\"", None).1, Ok(Streamed::NotAnArray("a string")));
        assert_eq!(run(b"", None).1, Ok(Streamed::Empty));
        assert_eq!(run(b" \n\t", None).1, Ok(Streamed::Empty));
        assert_eq!(run(b"\xEF\xBB\xBF", None).1, Ok(Streamed::Empty));
        assert_eq!(run(b"[]", None).1, Ok(Streamed::Finished { entries: 0 }));
    }

    #[test]
    fn bom_is_skipped_even_when_the_reader_returns_one_byte_at_a_time() {
        struct OneByte<'a>(&'a [u8]);
        impl Read for OneByte<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((first, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = *first;
                self.0 = rest;
                Ok(1)
            }
        }
        let r = for_each_element(OneByte(b"\xEF\xBB\xBF[1,2]"), MAX_ELEMENT_BYTES, |_, _: Value| Ok(Flow::Continue));
        assert_eq!(r, Ok(Streamed::Finished { entries: 2 }));
    }

    #[test]
    fn errors_name_the_entry_and_position() {
        let err = run(b"[1,\n 2,\n 3 x]", None).1.unwrap_err();
        assert_eq!(err.entry, 3, "after the third element");
        assert_eq!(err.position, Some((3, 4)));
        assert!(err.reason.starts_with("malformed JSON"), "{}", err.reason);

        let err = run(b"[1, 2, {\"a\": ", None).1.unwrap_err();
        assert_eq!(err.entry, 2);
        assert!(err.reason.contains("truncated"), "{}", err.reason);

        let err = run(b"[\"caf\xE9\"]", None).1.unwrap_err();
        assert_eq!(err.entry, 0);
        assert!(err.reason.contains("not UTF-8"), "{}", err.reason);

        let err = run(b"\xFF\xFE[\x001\x00]\x00", None).1.unwrap_err();
        assert!(err.reason.contains("UTF-16"), "{}", err.reason);

        let err = run(b"[1] [2]", None).1.unwrap_err();
        assert!(err.reason.contains("trailing characters"), "{}", err.reason);
    }

    #[test]
    fn callback_errors_carry_their_message_and_a_position() {
        let r = for_each_element(&b"[{},\n{\"a\": 1},\n{}]"[..], MAX_ELEMENT_BYTES, |i, _: Value| {
            if i == 1 {
                Err("bad entry".to_string())
            } else {
                Ok(Flow::Continue)
            }
        });
        let err = r.unwrap_err();
        assert_eq!((err.entry, err.reason.as_str()), (1, "bad entry"));
        assert_eq!(err.position, Some((2, 8)), "just after the element's closing brace");
    }

    #[test]
    fn oversized_elements_fail_without_being_buffered_whole() {
        // Only files too large to parse from memory are streamed, and only there can
        // one element grow memory: the check applies to those.
        let mut input = b"[1, \"".to_vec();
        input.resize(input.len() + SLICE_PARSE_MAX_BYTES as usize + 1, b'a');
        input.extend_from_slice(b"\"]");
        let r = for_each_element(&input[..], 1024, |_, _: Value| Ok(Flow::Continue));
        let err = r.unwrap_err();
        assert_eq!(err.entry, 1);
        assert!(err.reason.contains("larger than 1 KiB"), "{}", err.reason);
        // Many small elements are fine: the budget is per element.
        let many = format!("[{}0]", "12345678,".repeat(100_000));
        let r = for_each_element(many.as_bytes(), 1024, |_, _: Value| Ok(Flow::Continue));
        assert_eq!(r, Ok(Streamed::Finished { entries: 100_001 }));
    }

    #[test]
    fn read_errors_are_reported_with_their_message() {
        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(ReadError::io("corrupt zip entry: Invalid checksum"))
            }
        }
        let r =
            for_each_element(Read::chain(&b"[1, "[..], Failing), MAX_ELEMENT_BYTES, |_, _: Value| Ok(Flow::Continue));
        assert_eq!(r.unwrap_err().reason, "corrupt zip entry: Invalid checksum");
    }
}
