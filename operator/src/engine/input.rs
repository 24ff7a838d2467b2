//! The Rego input as a regorus value, built straight from any `Serialize` type.
//!
//! The pipeline used to go context -> `serde_json::Value` -> a second pass to count the JSON
//! text's size -> `regorus::Value`; those conversions cost about as much per workload as the
//! built-in library's evaluation itself (BENCHMARKS.md, "Whole pipeline"). [`Input::new`] is a
//! serde `Serializer` that builds the regorus value in one pass and counts, on the way, the
//! exact number of bytes `serde_json::to_writer` would write, so the input size limit keeps
//! meaning "bytes of JSON" and a document over it is refused as soon as it is reached.
//!
//! The value is the same one `regorus::Value`'s `Deserialize` gives for the JSON text: objects
//! and arrays alike, non-negative integers as unsigned numbers (as serde_json reads them),
//! non-finite floats as `null` (as serde_json writes them).

use std::collections::BTreeMap;
use std::fmt;

use regorus::Value;
use serde::ser::{self, Serialize};

use super::EngineError;

/// An input document, ready to evaluate, and the size of its JSON text.
#[derive(Debug, Clone)]
pub struct Input {
    value: Value,
    json_bytes: usize,
}

impl Input {
    /// Convert `doc`, refusing it once its JSON text would pass `limit` bytes.
    pub fn new<T: Serialize + ?Sized>(doc: &T, limit: usize) -> Result<Input, EngineError> {
        let mut counter = Counter { bytes: 0, limit };
        match doc.serialize(ToValue { counter: &mut counter }) {
            Ok(value) => Ok(Input { value, json_bytes: counter.bytes }),
            Err(Error::TooLarge) => Err(EngineError::InputTooLarge { size: counter.bytes, limit }),
            Err(Error::Custom(message)) => Err(EngineError::Eval(message)),
        }
    }

    /// The same document with one more top-level field (the engine adds `params` this way, so
    /// the policy's parameters are converted once, not once per workload). `self` must be an
    /// object without `key`; `key` must need no JSON escaping.
    pub fn with_field(mut self, key: &str, field: &Input) -> Result<Input, EngineError> {
        let object = self.value.as_object_mut().map_err(|e| EngineError::Eval(format!("input: {e}")))?;
        let was_empty = object.is_empty();
        if object.insert(Value::from(key), field.value.clone()).is_some() {
            return Err(EngineError::Eval(format!("input: the document already has a field {key}")));
        }
        // Inserting thawed the object into its mutable form; freeze it again for fast lookups.
        let object = std::mem::replace(object, regorus::value::Object::new());
        self.value = object.into_value();
        // `{...}` becomes `{...,"key":field}`; an empty `{}` gets no comma.
        self.json_bytes += usize::from(!was_empty) + key.len() + 3 + field.json_bytes;
        Ok(self)
    }

    /// Size of the document's JSON text, in bytes.
    pub fn json_bytes(&self) -> usize {
        self.json_bytes
    }

    pub fn value(&self) -> &Value {
        &self.value
    }

    pub fn into_value(self) -> Value {
        self.value
    }
}

/// Why a document could not be converted.
#[derive(Debug)]
enum Error {
    /// The JSON text passed the limit.
    TooLarge,
    /// The type's `Serialize` said so (or a map had a key that is not a string).
    Custom(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TooLarge => f.write_str("input too large"),
            Error::Custom(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl ser::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Error::Custom(msg.to_string())
    }
}

/// Bytes of JSON text so far, against the limit.
struct Counter {
    bytes: usize,
    limit: usize,
}

impl Counter {
    fn add(&mut self, n: usize) -> Result<(), Error> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limit { Err(Error::TooLarge) } else { Ok(()) }
    }

    /// A string as serde_json writes it: quoted, with `"`, `\` and control characters escaped.
    fn string(&mut self, s: &str) -> Result<(), Error> {
        let escapes: usize = s
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' | b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' => 1,
                0..=0x1f => 5,
                _ => 0,
            })
            .sum();
        self.add(s.len() + escapes + 2)
    }

    /// The `{"variant":` and `}` around an enum variant's data (serde_json's external tagging).
    fn variant_tag(&mut self, variant: &str) -> Result<(), Error> {
        self.add(3)?; // braces and colon
        self.string(variant)
    }

    /// A number or other scalar, as serde_json writes it.
    fn scalar<T: Serialize>(&mut self, v: T) -> Result<(), Error> {
        let mut w = ByteWriter(0);
        serde_json::to_writer(&mut w, &v).map_err(|e| Error::Custom(e.to_string()))?;
        self.add(w.0)
    }
}

struct ByteWriter(usize);

impl std::io::Write for ByteWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decimal digits of `n`, plus one for a minus sign.
fn int_len(n: i128) -> usize {
    let mut len = usize::from(n < 0) + 1;
    let mut rest = n.unsigned_abs() / 10;
    while rest > 0 {
        len += 1;
        rest /= 10;
    }
    len
}

/// The serializer: each call converts one value.
struct ToValue<'a> {
    counter: &'a mut Counter,
}

impl<'a> ToValue<'a> {
    fn int(self, n: i128) -> Result<Value, Error> {
        self.counter.add(int_len(n))?;
        // Keep the number kind regorus gives the JSON text: non-negative integers unsigned,
        // and integers past 64 bits as floats.
        Ok(match (u64::try_from(n), i64::try_from(n)) {
            (Ok(u), _) => Value::from(u),
            (_, Ok(i)) => Value::from(i),
            _ => Value::from(n as f64),
        })
    }

    fn string(self, s: &str) -> Result<Value, Error> {
        self.counter.string(s)?;
        Ok(Value::from(s))
    }

    fn null(self) -> Result<Value, Error> {
        self.counter.add(4)?;
        Ok(Value::Null)
    }

    /// `{"variant":value}`, as serde_json writes enum variants with data.
    fn variant<T: Serialize + ?Sized>(self, variant: &'static str, value: &T) -> Result<Value, Error> {
        self.counter.variant_tag(variant)?;
        let inner = value.serialize(ToValue { counter: self.counter })?;
        Ok(Value::from(BTreeMap::from([(Value::from(variant), inner)])))
    }
}

impl<'a> ser::Serializer for ToValue<'a> {
    type Ok = Value;
    type Error = Error;
    type SerializeSeq = Seq<'a>;
    type SerializeTuple = Seq<'a>;
    type SerializeTupleStruct = Seq<'a>;
    type SerializeTupleVariant = Seq<'a>;
    type SerializeMap = Map<'a>;
    type SerializeStruct = Map<'a>;
    type SerializeStructVariant = Map<'a>;

    fn serialize_bool(self, v: bool) -> Result<Value, Error> {
        self.counter.add(if v { 4 } else { 5 })?;
        Ok(Value::from(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_i64(self, v: i64) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_i128(self, v: i128) -> Result<Value, Error> {
        self.int(v)
    }
    fn serialize_u8(self, v: u8) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_u64(self, v: u64) -> Result<Value, Error> {
        self.int(v.into())
    }
    fn serialize_u128(self, v: u128) -> Result<Value, Error> {
        match i128::try_from(v) {
            Ok(n) => self.int(n),
            Err(_) => {
                self.counter.scalar(v)?;
                Ok(Value::from(v as f64))
            }
        }
    }
    fn serialize_f32(self, v: f32) -> Result<Value, Error> {
        if !v.is_finite() {
            return self.null();
        }
        // As JSON text an f32 is its shortest decimal form, which reads back as that f64.
        let text = serde_json::to_string(&v).map_err(|e| Error::Custom(e.to_string()))?;
        self.counter.add(text.len())?;
        Ok(Value::from(text.parse::<f64>().unwrap_or(f64::from(v))))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, Error> {
        if !v.is_finite() {
            return self.null();
        }
        self.counter.scalar(v)?;
        Ok(Value::from(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, Error> {
        self.string(v.encode_utf8(&mut [0; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<Value, Error> {
        self.string(v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, Error> {
        let mut seq = ser::Serializer::serialize_seq(self, Some(v.len()))?;
        for b in v {
            ser::SerializeSeq::serialize_element(&mut seq, b)?;
        }
        ser::SerializeSeq::end(seq)
    }
    fn serialize_none(self) -> Result<Value, Error> {
        self.null()
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Value, Error> {
        self.null()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Value, Error> {
        self.null()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> Result<Value, Error> {
        self.string(variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> Result<Value, Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<Value, Error> {
        self.variant(variant, value)
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Seq<'a>, Error> {
        self.counter.add(2)?;
        Ok(Seq { counter: self.counter, items: Vec::with_capacity(len.unwrap_or(0)), variant: None })
    }
    fn serialize_tuple(self, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Seq<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Seq<'a>, Error> {
        self.counter.variant_tag(variant)?;
        let mut seq = self.serialize_seq(Some(len))?;
        seq.variant = Some(variant);
        Ok(seq)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Map<'a>, Error> {
        self.counter.add(2)?;
        Ok(Map { counter: self.counter, entries: BTreeMap::new(), key: None, variant: None })
    }
    fn serialize_struct(self, _name: &'static str, len: usize) -> Result<Map<'a>, Error> {
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Map<'a>, Error> {
        self.counter.variant_tag(variant)?;
        let mut map = self.serialize_map(Some(len))?;
        map.variant = Some(variant);
        Ok(map)
    }
}

/// Wraps `value` as `{"variant": value}` when it is an enum variant's data.
fn wrap(variant: Option<&'static str>, value: Value) -> Value {
    match variant {
        Some(v) => Value::from(BTreeMap::from([(Value::from(v), value)])),
        None => value,
    }
}

/// An array being built.
struct Seq<'a> {
    counter: &'a mut Counter,
    items: Vec<Value>,
    variant: Option<&'static str>,
}

impl Seq<'_> {
    fn push<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        if !self.items.is_empty() {
            self.counter.add(1)?;
        }
        let v = value.serialize(ToValue { counter: self.counter })?;
        self.items.push(v);
        Ok(())
    }

    fn finish(self) -> Result<Value, Error> {
        Ok(wrap(self.variant, Value::from(self.items)))
    }
}

/// serde's four sequence traits differ only in their element method's name: each pushes.
macro_rules! sequence_impl {
    ($($trait:ident :: $element:ident),+) => {$(
        impl ser::$trait for Seq<'_> {
            type Ok = Value;
            type Error = Error;
            fn $element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.push(value)
            }
            fn end(self) -> Result<Value, Error> {
                self.finish()
            }
        }
    )+};
}

sequence_impl!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

/// An object being built.
struct Map<'a> {
    counter: &'a mut Counter,
    /// A repeated key keeps its last value, as when JSON text is read back. (Measured: an
    /// insert per field costs less than collecting and sorting, and less than caching the
    /// field-name strings, which a hash lookup per field outweighed.)
    entries: BTreeMap<Value, Value>,
    /// The key `serialize_key` gave, waiting for its value.
    key: Option<Value>,
    variant: Option<&'static str>,
}

impl Map<'_> {
    fn entry<T: Serialize + ?Sized>(&mut self, key: Value, value: &T) -> Result<(), Error> {
        let v = value.serialize(ToValue { counter: self.counter })?;
        self.entries.insert(key, v);
        Ok(())
    }

    /// The comma before every entry but the first, and the colon after the key.
    fn separators(&mut self) -> Result<(), Error> {
        let comma = usize::from(!self.entries.is_empty() || self.key.is_some());
        self.counter.add(comma + 1)
    }

    fn finish(self) -> Result<Value, Error> {
        Ok(wrap(self.variant, Value::from(self.entries)))
    }
}

impl ser::SerializeMap for Map<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.separators()?;
        // JSON keys are strings; serde_json also writes integer keys as strings.
        let key = match key.serialize(ToValue { counter: &mut Counter { bytes: 0, limit: usize::MAX } })? {
            Value::String(s) => s,
            v @ (Value::Number(_) | Value::Bool(_)) => v.to_string().into(),
            other => return Err(Error::Custom(format!("a map key must be a string, not {other}"))),
        };
        self.counter.string(&key)?;
        self.key = Some(Value::String(key));
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        let key = self.key.take().ok_or_else(|| Error::Custom("a map value without a key".to_owned()))?;
        self.entry(key, value)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Map<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        self.separators()?;
        self.counter.string(key)?;
        self.entry(Value::from(key), value)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Map<'_> {
    type Ok = Value;
    type Error = Error;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        ser::SerializeStruct::serialize_field(self, key, value)
    }
    fn end(self) -> Result<Value, Error> {
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;
    use serde_json::json;

    use super::*;

    /// The value and size must be those of the JSON text, read back by regorus.
    fn assert_same_as_json<T: Serialize>(doc: &T) {
        let text = serde_json::to_string(doc).expect("serializes to JSON");
        let input = Input::new(doc, usize::MAX).expect("converts");
        assert_eq!(input.json_bytes(), text.len(), "size of {text}");
        let read = Value::from_json_str(&text).expect("regorus reads the JSON");
        assert_eq!(input.value(), &read, "value of {text}");
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { side: f64, label: Option<String> },
    }

    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Doc {
        name: &'static str,
        count: i64,
        ratio: f32,
        missing: Option<u8>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        shapes: Vec<Shape>,
        by_number: BTreeMap<u16, bool>,
        empty_list: Vec<u8>,
        empty_map: BTreeMap<String, u8>,
        letter: char,
        unit: (),
    }

    #[test]
    fn scalars_and_containers_match_their_json() {
        for doc in [
            json!(null),
            json!(true),
            json!(false),
            json!(0),
            json!(-1),
            json!(i64::MIN),
            json!(u64::MAX),
            json!(1.5),
            json!(-0.25e-10),
            json!(""),
            json!("plain"),
            json!("quote \" backslash \\ slash / tab \t newline \n return \r bell \u{7} nul \u{0} del \u{7f}"),
            json!("unicode: é 日本 🦀"),
            json!([]),
            json!({}),
            json!([1, "two", [3, {"four": 4}], null]),
            json!({"b": 1, "a": {"nested": [true, false]}, "": "empty key", "k\"ey": "escaped key"}),
        ] {
            assert_same_as_json(&doc);
        }
    }

    #[test]
    fn rust_types_match_their_json() {
        let doc = Doc {
            name: "crm-db",
            count: 42,
            ratio: 0.1,
            missing: None,
            skipped: None,
            shapes: vec![
                Shape::Unit,
                Shape::Newtype(7),
                Shape::Tuple(-3, "x".to_owned()),
                Shape::Struct { side: 2.5, label: Some("sq".to_owned()) },
            ],
            by_number: BTreeMap::from([(1, true), (20, false)]),
            empty_list: vec![],
            empty_map: BTreeMap::new(),
            letter: 'ß',
            unit: (),
        };
        assert_same_as_json(&doc);
        assert_same_as_json(&vec![Some(u128::from(u64::MAX)), None]);
        assert_same_as_json(&[i128::from(i64::MIN), 0]);
        // Past 64 bits, a float as regorus reads it (correctly rounded; serde_json's own float
        // parser may be one unit off in the last place, so this is not compared to the text).
        let big = Input::new(&(1u128 << 100), usize::MAX).expect("converts");
        assert_eq!(big.value(), &Value::from(2f64.powi(100)));
        assert_eq!(big.json_bytes(), (1u128 << 100).to_string().len());
        assert_same_as_json(&(1u8, "tuple", [0.5f64; 2]));
    }

    /// A map that repeats a key (a type's `Serialize` may do that; JSON text allows it).
    struct Repeats;

    impl Serialize for Repeats {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_map([("b", 1), ("a", 2), ("b", 3)])
        }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value_as_when_the_json_is_read() {
        assert_same_as_json(&Repeats);
        let input = Input::new(&Repeats, usize::MAX).expect("converts");
        assert_eq!(input.value()["b"], Value::from(3u64));
    }

    #[test]
    fn non_finite_floats_become_null_as_in_json() {
        for f in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            assert_same_as_json(&json!({ "f": f }));
            assert_same_as_json(&vec![f]);
        }
    }

    #[test]
    fn a_document_over_the_limit_is_refused_with_its_size_so_far() {
        let doc = json!({"items": vec!["0123456789"; 1000]});
        let size = serde_json::to_string(&doc).expect("json").len();
        assert!(Input::new(&doc, size).is_ok(), "exactly at the limit is accepted");
        match Input::new(&doc, 100) {
            Err(EngineError::InputTooLarge { size, limit }) => {
                assert_eq!(limit, 100);
                assert!(size > 100 && size < 120, "stopped soon after the limit, at {size}");
            }
            other => panic!("expected InputTooLarge, got {other:?}"),
        }
    }

    #[test]
    fn a_field_added_later_counts_as_if_it_had_been_there() {
        let params = Input::new(&json!({"backups": {"maxIntervalHours": 24}}), usize::MAX).expect("params");
        for base in [json!({"workload": {"name": "w"}}), json!({})] {
            let mut expected = base.clone();
            expected["params"] = json!({"backups": {"maxIntervalHours": 24}});
            let input = Input::new(&base, usize::MAX).expect("base").with_field("params", &params).expect("added");
            let text = serde_json::to_string(&expected).expect("json");
            assert_eq!(input.json_bytes(), text.len());
            assert_eq!(input.value(), &Value::from_json_str(&text).expect("reads"));
        }
        let twice = Input::new(&json!({"params": 1}), usize::MAX).expect("base").with_field("params", &params);
        assert!(matches!(twice, Err(EngineError::Eval(m)) if m.contains("already has a field params")));
        let not_object = Input::new(&json!([1]), usize::MAX).expect("array").with_field("params", &params);
        assert!(matches!(not_object, Err(EngineError::Eval(_))));
    }
}
