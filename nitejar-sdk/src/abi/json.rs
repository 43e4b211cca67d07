//! Compact JSON for what crosses the plugin boundary: the same text `serde_json::to_string`
//! writes, faster for long strings.
//!
//! Hook payloads are mostly text (a 4 KB tool input, a prompt, a response). `serde_json` checks
//! every byte of a string for characters to escape one at a time; this writer checks eight at a
//! time and copies runs that need no escape whole — about 5× faster on a 4 KB string, which is most
//! of what encoding a payload costs. Everything else (numbers, structure, key rules) is written
//! exactly as `serde_json` writes it, so either side may read it with `serde_json`.
//!
//! ```
//! use nitejar_sdk::abi::json;
//! let text = json::to_string(&serde_json::json!({"a": "x\"y", "b": [1, 2.5, null]})).unwrap();
//! assert_eq!(text, r#"{"a":"x\"y","b":[1,2.5,null]}"#);
//! ```

use serde::ser::{self, Impossible, Serialize};
use serde_json::Error;

use super::wire::push_u64;

mod read;

pub use read::{from_str, plain_integers};

/// `value` as compact JSON, as `serde_json::to_string` would write it.
pub fn to_string<T: ?Sized + Serialize>(value: &T) -> Result<String, Error> {
    let mut out = String::with_capacity(256);
    append(&mut out, value)?;
    Ok(out)
}

/// Appends `value` as compact JSON to `out`. On an error, `out` may hold part of it.
pub fn append<T: ?Sized + Serialize>(out: &mut String, value: &T) -> Result<(), Error> {
    value.serialize(&mut Writer { out })
}

/// The token `serde_json` gives a `RawValue` when it serialises one.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

struct Writer<'a> {
    out: &'a mut String,
}

/// Finds, in one string's bytes, the bytes that end a run of plain string text: a `"`, a `\\` or
/// a control character (below 0x20). The quote and backslash are found with `memchr` (SIMD where
/// the CPU has it) and the next one is remembered; the span before it is checked for control
/// characters a block at a time with a minimum the compiler vectorises. Linear in the text
/// whatever it holds: no byte is looked at more than a block's length of times.
pub(crate) struct Specials<'a> {
    bytes: &'a [u8],
    /// The next `"` or `\\` at or after the last position asked for (or the end); `None` before
    /// the first question.
    quote: Option<usize>,
}

impl<'a> Specials<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Specials { bytes, quote: None }
    }

    /// The first special byte at or after `from`, or the length of the text.
    pub(crate) fn next(&mut self, from: usize) -> usize {
        let quote = match self.quote {
            Some(q) if q >= from => q,
            _ => {
                let rest = &self.bytes[from..];
                let q = from + memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                self.quote = Some(q);
                q
            }
        };
        from + first_control(&self.bytes[from..quote]).unwrap_or(quote - from)
    }
}

/// The position of the first `"`, `\\` or control character (below 0x20) in `bytes`: what ends a
/// run of plain string text. For keys, names and ids, a few bytes long: eight bytes are looked at
/// at once, as one integer, without setting up a scan.
pub(crate) fn first_special_short(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES * 0x80;
    /// The high bit of each byte of `w` below `n` (at most 0x80), and maybe of bytes after the
    /// first such byte: the lowest bit set is always exact.
    fn below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(ONES * u64::from(n)) & !w & HIGH
    }
    let mut chunks = bytes.chunks_exact(8);
    for (i, chunk) in chunks.by_ref().enumerate() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        // Little-endian whatever the machine: the first byte is the lowest.
        let w = u64::from_le_bytes(word);
        let found = below(w ^ (ONES * u64::from(b'"')), 1)
            | below(w ^ (ONES * u64::from(b'\\')), 1)
            | below(w, 0x20);
        if found != 0 {
            return Some(i * 8 + found.trailing_zeros() as usize / 8);
        }
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| (b == b'"') | (b == b'\\') | (b < 0x20))
        .map(|p| bytes.len() - rest.len() + p)
}

/// The position of the first byte below 0x20 in `bytes`.
fn first_control(bytes: &[u8]) -> Option<usize> {
    const BLOCK: usize = 128;
    let mut at = 0;
    for block in bytes.chunks_exact(BLOCK) {
        if block.iter().fold(u8::MAX, |m, &b| m.min(b)) < 0x20 {
            break;
        }
        at += BLOCK;
    }
    bytes[at..].iter().position(|&b| b < 0x20).map(|p| at + p)
}

/// How `serde_json` writes a byte inside a string.
enum Escape {
    /// As it is.
    No,
    /// As this sequence.
    Short(&'static str),
    /// As `\u00XX`.
    Unicode,
}

fn escape(byte: u8) -> Escape {
    match byte {
        b'"' => Escape::Short("\\\""),
        b'\\' => Escape::Short("\\\\"),
        b'\x08' => Escape::Short("\\b"),
        b'\t' => Escape::Short("\\t"),
        b'\n' => Escape::Short("\\n"),
        b'\x0c' => Escape::Short("\\f"),
        b'\r' => Escape::Short("\\r"),
        0..=0x1f => Escape::Unicode,
        _ => Escape::No,
    }
}

/// Strings up to this long are checked for bytes to escape in one plain pass (written or read).
const SHORT: usize = 32;

fn push_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push('"');
    let bytes = s.as_bytes();
    // Names, keys and ids: a pass over a few bytes costs less than setting up the scan.
    if bytes.len() <= SHORT
        && !bytes.iter().fold(false, |special, &b| {
            special | (b < 0x20) | (b == b'"') | (b == b'\\')
        })
    {
        out.push_str(s);
        out.push('"');
        return;
    }
    // `run` is where the text not yet copied starts; it is always on a character boundary (it
    // follows an ASCII byte or is 0).
    let mut run = 0;
    let mut specials = Specials::new(bytes);
    loop {
        let i = specials.next(run);
        out.push_str(&s[run..i]);
        let Some(&byte) = bytes.get(i) else {
            break;
        };
        match escape(byte) {
            Escape::Short(text) => out.push_str(text),
            Escape::Unicode => {
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(byte >> 4)]));
                out.push(char::from(HEX[usize::from(byte & 0xf)]));
            }
            // `special` stops only at bytes that need escaping.
            Escape::No => out.push(char::from(byte)),
        }
        run = i + 1;
    }
    out.push('"');
}

fn push_i64(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_u64(out, n.unsigned_abs());
}

/// A float as `serde_json` writes it (`null` when not finite).
fn push_float<F: Serialize>(out: &mut String, f: F) -> Result<(), Error> {
    out.push_str(&serde_json::to_string(&f)?);
    Ok(())
}

impl<'a, 'b> ser::Serializer for &'a mut Writer<'b> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out.push_str(if v { "true" } else { "false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.serialize_i64(i64::from(v))
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        push_i64(self.out, v);
        Ok(())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.out.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.serialize_u64(u64::from(v))
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        push_u64(self.out, v);
        Ok(())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.out.push_str(&v.to_string());
        Ok(())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        push_float(self.out, v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        push_float(self.out, v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        push_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        push_str(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        use ser::SerializeSeq;
        let mut seq = self.serialize_seq(Some(v.len()))?;
        for b in v {
            seq.serialize_element(b)?;
        }
        seq.end()
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.out.push_str("null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push('{');
        push_str(self.out, variant);
        self.out.push(':');
        value.serialize(&mut *self)?;
        self.out.push('}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push('[');
        Ok(Compound::new(self, "]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push('{');
        push_str(self.out, variant);
        self.out.push_str(":[");
        Ok(Compound::new(self, "]}"))
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Error> {
        self.out.push('{');
        Ok(Compound::new(self, "}"))
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Error> {
        if name == RAW_VALUE_TOKEN {
            return Ok(Compound {
                writer: self,
                first: true,
                close: "",
                raw: true,
            });
        }
        self.serialize_map(Some(len))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Error> {
        self.out.push('{');
        push_str(self.out, variant);
        self.out.push_str(":{");
        Ok(Compound::new(self, "}}"))
    }
}

/// A sequence, map or struct being written.
struct Compound<'a, 'b> {
    writer: &'a mut Writer<'b>,
    first: bool,
    close: &'static str,
    /// A `serde_json::value::RawValue`: its one field is JSON text, written as it is.
    raw: bool,
}

impl<'a, 'b> Compound<'a, 'b> {
    fn new(writer: &'a mut Writer<'b>, close: &'static str) -> Self {
        Compound {
            writer,
            first: true,
            close,
            raw: false,
        }
    }

    fn comma(&mut self) {
        if !self.first {
            self.writer.out.push(',');
        }
        self.first = false;
    }

    fn element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(&mut *self.writer)
    }

    fn field<T: ?Sized + Serialize>(&mut self, key: &str, value: &T) -> Result<(), Error> {
        if self.raw {
            return value.serialize(RawText {
                out: self.writer.out,
            });
        }
        self.comma();
        push_str(self.writer.out, key);
        self.writer.out.push(':');
        value.serialize(&mut *self.writer)
    }

    fn finish(self) -> Result<(), Error> {
        self.writer.out.push_str(self.close);
        Ok(())
    }
}

impl ser::SerializeSeq for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTuple for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeTupleVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        self.element(value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        key.serialize(MapKey {
            out: self.writer.out,
        })?;
        self.writer.out.push(':');
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Error> {
        value.serialize(&mut *self.writer)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStruct for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

impl ser::SerializeStructVariant for Compound<'_, '_> {
    type Ok = ();
    type Error = Error;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.field(key, value)
    }
    fn end(self) -> Result<(), Error> {
        self.finish()
    }
}

fn key_error() -> Error {
    ser::Error::custom("key must be a string")
}

fn float_key_error() -> Error {
    ser::Error::custom("float key must be finite (got NaN or +/-inf)")
}

/// A map key: strings as they are; numbers, booleans and characters quoted, as `serde_json` does.
struct MapKey<'a> {
    out: &'a mut String,
}

impl MapKey<'_> {
    fn quoted(self, text: &str) -> Result<(), Error> {
        self.out.push('"');
        self.out.push_str(text);
        self.out.push('"');
        Ok(())
    }
}

impl ser::Serializer for MapKey<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        push_str(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        push_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.quoted(if v { "true" } else { "false" })
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        self.quoted(&v.to_string())
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(float_key_error());
        }
        self.quoted(&serde_json::to_string(&v)?)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        if !v.is_finite() {
            return Err(float_key_error());
        }
        self.quoted(&serde_json::to_string(&v)?)
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        self.serialize_str(variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(key_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(key_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(key_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(key_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(key_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(key_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(key_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(key_error())
    }
}

/// The text of a `RawValue`, written as it is.
struct RawText<'a> {
    out: &'a mut String,
}

impl ser::Serializer for RawText<'_> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Impossible<(), Error>;
    type SerializeTuple = Impossible<(), Error>;
    type SerializeTupleStruct = Impossible<(), Error>;
    type SerializeTupleVariant = Impossible<(), Error>;
    type SerializeMap = Impossible<(), Error>;
    type SerializeStruct = Impossible<(), Error>;
    type SerializeStructVariant = Impossible<(), Error>;

    fn serialize_str(self, v: &str) -> Result<(), Error> {
        self.out.push_str(v);
        Ok(())
    }
    fn serialize_bool(self, _v: bool) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_i8(self, _v: i8) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_i16(self, _v: i16) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_i32(self, _v: i32) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_i64(self, _v: i64) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_u8(self, _v: u8) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_u16(self, _v: u16) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_u32(self, _v: u32) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_u64(self, _v: u64) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_f32(self, _v: f32) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_f64(self, _v: f64) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_char(self, _v: char) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_bytes(self, _v: &[u8]) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_none(self) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _value: &T) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_unit(self) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<(), Error> {
        Err(raw_error())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Error> {
        Err(raw_error())
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Error> {
        Err(raw_error())
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Error> {
        Err(raw_error())
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Error> {
        Err(raw_error())
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Error> {
        Err(raw_error())
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Error> {
        Err(raw_error())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Error> {
        Err(raw_error())
    }
}

fn raw_error() -> Error {
    ser::Error::custom("a raw JSON value must be text")
}

#[cfg(test)]
mod tests {
    use super::first_special_short;

    #[test]
    fn the_short_scan_finds_the_first_special_byte_as_a_plain_loop_does() {
        let plain = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        };
        // Every special and its neighbours, at every position of texts up to 20 bytes long,
        // alone and after an earlier special, over plain bytes of both halves of the range.
        let specials = [0x00, 0x01, 0x1f, b'"', b'\\'];
        let neighbours = [
            0x20, 0x21, 0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xa2, 0xdc, 0xff, b'x',
        ];
        for len in 0..=20 {
            for fill in [b'x', 0xff, 0x20, 0x23, 0x5d] {
                let base = vec![fill; len];
                assert_eq!(first_special_short(&base), plain(&base), "{base:?}");
                for at in 0..len {
                    for &b in specials.iter().chain(&neighbours) {
                        let mut text = base.clone();
                        text[at] = b;
                        assert_eq!(first_special_short(&text), plain(&text), "{text:?}");
                        for later in at + 1..len {
                            let mut two = text.clone();
                            two[later] = b'"';
                            assert_eq!(first_special_short(&two), plain(&two), "{two:?}");
                        }
                    }
                }
            }
        }
    }

    use super::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    fn same<T: Serialize>(value: &T) {
        assert_eq!(
            to_string(value).unwrap(),
            serde_json::to_string(value).unwrap()
        );
    }

    #[test]
    fn writes_what_serde_json_writes() {
        let every_byte: String = (0u8..128).map(char::from).collect();
        same(&every_byte);
        same(&format!("{}\u{1f}é\"\\{}", "x".repeat(13), "ü".repeat(9)));
        same(&"x".repeat(4096));
        same(&"");
        same(&json!({
            "n": [0, -1, u64::MAX, i64::MIN, 1.5, -0.0, 1e300, null, true, false],
            "s": {"nested": ["a\nb", "\u{7f}", "\u{2028}"]},
            "empty": {}, "list": [],
        }));
        same(&f64::NAN);
        same(&Some('\n'));
        same(&(1u8, "two", [3i16]));
        same(&BTreeMap::from([(1u32, "a"), (2, "b")]));
        same(&BTreeMap::from([(true, 1)]));
        same(&serde_bytes_like());
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, u8),
            Struct { a: u8 },
        }
        same(&[E::Unit, E::New(1), E::Tuple(1, 2), E::Struct { a: 3 }]);
        let raw = serde_json::value::RawValue::from_string(r#"{"raw": [1, 2]}"#.into()).unwrap();
        same(&json!({"wrapped": 1}));
        assert_eq!(to_string(&raw).unwrap(), r#"{"raw": [1, 2]}"#);
    }

    fn serde_bytes_like() -> Value {
        Value::Array(vec![json!(1), json!(255)])
    }

    #[test]
    fn refuses_what_serde_json_refuses() {
        assert!(to_string(&BTreeMap::from([((1, 2), "a")])).is_err());
        assert!(serde_json::to_string(&BTreeMap::from([((1, 2), "a")])).is_err());
    }

    /// Text full of characters to escape, with no quote to stop at: written in linear time (a
    /// writer that looked for the next quote again after each newline would take hours here).
    #[test]
    fn many_escapes_far_from_any_quote_take_linear_time() {
        let lines = "a\n".repeat(400_000) + "\"end\u{1}";
        let started = std::time::Instant::now();
        let ours = to_string(&lines).unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert_eq!(ours, serde_json::to_string(&lines).unwrap());
        let back: String = from_str(&ours).unwrap();
        assert_eq!(back, lines);
    }

    #[test]
    fn every_escape_position_of_a_block() {
        for at in 0..150 {
            for c in ['"', '\\', '\n', '\u{1}', '\u{1f}', ' ', 'é'] {
                let mut s = "y".repeat(150);
                s.insert(at, c);
                same(&s);
            }
        }
    }
}
