//! Reading what crosses the plugin boundary: the common JSON fast, everything else by
//! `serde_json`.
//!
//! `serde_json` checks a string for its end eight bytes at a time; a 4 KB tool input costs about a
//! microsecond that way, on each side of every hook call. This reader finds a string's end with
//! SIMD and hands the same calls to the visitor as `serde_json` does (borrowed
//! strings when there is no escape, integers as `u64`/`i64`, floats read by `serde_json` itself).
//!
//! It decides nothing on its own that it could decide differently: anything it does not read
//! exactly as `serde_json` would (bytes, raw values, lone surrogates, map keys that are not plain
//! strings, nesting deeper than `serde_json` allows) and every error, including those the target
//! type raises, sends the whole text to `serde_json`, whose value or error is the answer. A text is
//! read by both only when it fails, or holds one of those rare things.

use std::fmt;

use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};
use serde::{forward_to_deserialize_any, Deserialize};

use super::{first_special_short, Specials, RAW_VALUE_TOKEN, SHORT};

/// `text` read as a `T`, exactly as `serde_json::from_str` reads it.
///
/// ```
/// use nitejar_sdk::abi::json;
/// let v: serde_json::Value = json::from_str(r#"{"a":["x\ny",-3,2.5,null]}"#).unwrap();
/// assert_eq!(v, serde_json::json!({"a": ["x\ny", -3, 2.5, null]}));
/// assert!(json::from_str::<u8>("[1]").unwrap_err().to_string().contains("invalid type"));
/// ```
pub fn from_str<'de, T: Deserialize<'de>>(text: &'de str) -> Result<T, serde_json::Error> {
    let mut reader = Reader {
        text,
        pos: 0,
        depth: 0,
    };
    match T::deserialize(&mut reader).and_then(|value| reader.end().map(|()| value)) {
        Ok(value) => Ok(value),
        Err(Handover) => serde_json::from_str(text),
    }
}

/// Why the reader stopped: `serde_json` reads the text instead.
#[derive(Debug)]
struct Handover;

impl fmt::Display for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("handed over to serde_json")
    }
}

impl std::error::Error for Handover {}

impl de::Error for Handover {
    fn custom<T: fmt::Display>(_: T) -> Self {
        Handover
    }
}

type Result<T, E = Handover> = std::result::Result<T, E>;

/// How deep arrays and objects may nest: `serde_json`'s limit, below which it reads them.
const MAX_DEPTH: usize = 127;

struct Reader<'de> {
    text: &'de str,
    pos: usize,
    depth: usize,
}

/// A string as read: borrowed from the text when it had no escape.
enum Text<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl<'de> Reader<'de> {
    fn bytes(&self) -> &'de [u8] {
        self.text.as_bytes()
    }

    fn skip_space(&mut self) {
        while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.bytes().get(self.pos) {
            self.pos += 1;
        }
    }

    /// The next byte that is not whitespace, not consumed.
    fn peek(&mut self) -> Result<u8> {
        self.skip_space();
        self.bytes().get(self.pos).copied().ok_or(Handover)
    }

    /// Consumes `byte`, after whitespace.
    fn expect(&mut self, byte: u8) -> Result<()> {
        if self.peek()? != byte {
            return Err(Handover);
        }
        self.pos += 1;
        Ok(())
    }

    fn literal(&mut self, word: &str) -> Result<()> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(Handover);
        }
        self.pos += word.len();
        Ok(())
    }

    /// Only whitespace is left.
    fn end(&mut self) -> Result<()> {
        self.skip_space();
        if self.pos == self.text.len() {
            Ok(())
        } else {
            Err(Handover)
        }
    }

    /// Reads the array or object whose opening bracket is at `pos` with `read`, then its `close`.
    fn nested<T>(&mut self, close: u8, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Handover);
        }
        self.pos += 1;
        let value = read(self)?;
        self.depth -= 1;
        self.expect(close)?;
        Ok(value)
    }

    /// The string whose opening quote is at `pos`.
    fn string(&mut self) -> Result<Text<'de>> {
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.pos + 1;
        // Keys, names and ids: a plain pass over a few bytes costs less than setting up the scan.
        let head = &bytes[start.min(bytes.len())..bytes.len().min(start + SHORT)];
        if let Some(at) = first_special_short(head) {
            if head[at] == b'"' {
                self.pos = start + at + 1;
                // Both ends follow or are an ASCII byte: character boundaries.
                return Ok(Text::Borrowed(&text[start..start + at]));
            }
        }
        let mut run = start;
        let mut owned: Option<String> = None;
        let mut specials = Specials::new(bytes);
        loop {
            let at = specials.next(run);
            match bytes.get(at) {
                Some(b'"') => {
                    self.pos = at + 1;
                    return Ok(match owned {
                        None => Text::Borrowed(&text[start..at]),
                        Some(mut s) => {
                            s.push_str(&text[run..at]);
                            Text::Owned(s)
                        }
                    });
                }
                Some(b'\\') => {
                    let s = owned.get_or_insert_with(|| String::with_capacity(at - start + 16));
                    s.push_str(&text[run..at]);
                    run = unescape(bytes, at + 1, s)?;
                }
                // A control character, or the end of the text.
                _ => return Err(Handover),
            }
        }
    }

    fn visit_string<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        match self.string()? {
            Text::Borrowed(s) => visitor.visit_borrowed_str(s),
            Text::Owned(s) => visitor.visit_string(s),
        }
    }

    /// The non-negative integer of at most 19 digits at `pos` (below 10^19, so it fits a `u64`),
    /// read as its digits are scanned: what batch indices and durations are. `None`, and nothing
    /// consumed, for any other text, which [`Reader::number`] reads in full.
    fn plain_u64(&mut self) -> Option<u64> {
        let (n, end) = plain_integer(self.bytes(), self.pos)?;
        self.pos = end;
        Some(n)
    }

    /// A number, as `serde_json` hands it to a visitor: `u64` for a non-negative integer that
    /// fits, `i64` for a negative one, `f64` for everything else (read by `serde_json`).
    fn number<V: Visitor<'de>>(&mut self, visitor: V) -> Result<V::Value> {
        if let Some(n) = self.plain_u64() {
            return visitor.visit_u64(n);
        }
        let bytes = self.bytes();
        let start = self.pos;
        let negative = bytes.get(start) == Some(&b'-');
        let digits = start + usize::from(negative);
        let mut i = digits;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        // JSON's grammar: at least one digit, and no leading zero.
        if i == digits || (bytes[digits] == b'0' && i > digits + 1) {
            return Err(Handover);
        }
        let integer = i;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            let from = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == from {
                return Err(Handover);
            }
        }
        if let Some(b'e' | b'E') = bytes.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = bytes.get(i) {
                i += 1;
            }
            let from = i;
            while bytes.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
            if i == from {
                return Err(Handover);
            }
        }
        self.pos = i;
        if i == integer {
            // What does not fit in a u64 is a float to `serde_json`.
            if let Ok(n) = self.text[digits..integer].parse::<u64>() {
                if !negative {
                    return visitor.visit_u64(n);
                }
                // As `serde_json` negates: down to `i64::MIN`; `-0` and below are floats.
                let n = (n as i64).wrapping_neg();
                if n < 0 {
                    return visitor.visit_i64(n);
                }
            }
        }
        let float: f64 = serde_json::from_str(&self.text[start..i]).map_err(|_| Handover)?;
        visitor.visit_f64(float)
    }
}

/// The plain integer at `start` of `bytes` and where it ends: 1 to 19 digits (below 10^19, so it
/// fits a `u64`), no leading zero, not followed by a fraction or an exponent. Exactly the integers
/// both this reader and `serde_json` read as that `u64`.
fn plain_integer(bytes: &[u8], start: usize) -> Option<(u64, usize)> {
    let mut i = start;
    let mut n: u64 = 0;
    while let Some(&b) = bytes.get(i).filter(|b| b.is_ascii_digit()) {
        n = n.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        i += 1;
    }
    let plain = i > start
        && i - start <= 19
        && (bytes[start] != b'0' || i == start + 1)
        && !matches!(bytes.get(i), Some(b'.' | b'e' | b'E'));
    plain.then_some((n, i))
}

/// The elements of an array whose opening `[` comes just before `text`, when all of them are
/// plain integers (1 to 19 digits, no leading zero, no fraction or exponent: read as [`from_str`]
/// reads them), and the text after the array's `]`. `None` for anything else — a space, an empty
/// slot, another kind of value — which [`from_str`] reads. For a host that reads a batch answer's
/// durations without the whole reader.
///
/// ```
/// use nitejar_sdk::abi::json::plain_integers;
///
/// assert_eq!(plain_integers("12,3],rest"), Some((vec![12, 3], ",rest")));
/// assert_eq!(plain_integers("],rest"), Some((vec![], ",rest")));
/// assert_eq!(plain_integers("1, 2]"), None);
/// assert_eq!(plain_integers("01]"), None);
/// ```
pub fn plain_integers(text: &str) -> Option<(Vec<u64>, &str)> {
    let bytes = text.as_bytes();
    let close = memchr::memchr(b']', bytes)?;
    if close == 0 {
        return Some((Vec::new(), &text[1..]));
    }
    let commas = bytes[..close].iter().filter(|&&b| b == b',').count();
    let mut out = Vec::with_capacity(commas + 1);
    let mut at = 0;
    loop {
        let (n, end) = plain_integer(bytes, at)?;
        out.push(n);
        match bytes[end] {
            b',' => at = end + 1,
            b']' => return Some((out, &text[end + 1..])),
            _ => return None,
        }
    }
}

/// Appends the escape after the backslash at `at - 1` to `out`; returns where the text goes on.
fn unescape(bytes: &[u8], at: usize, out: &mut String) -> Result<usize> {
    let short = match bytes.get(at).ok_or(Handover)? {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let high = hex4(bytes, at + 1)?;
            let (c, next) = if (0xD800..0xDC00).contains(&high) {
                // A surrogate pair, written as two escapes.
                if bytes.get(at + 5..at + 7) != Some(b"\\u") {
                    return Err(Handover);
                }
                let low = hex4(bytes, at + 7)?;
                if !(0xDC00..0xE000).contains(&low) {
                    return Err(Handover);
                }
                let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
                (char::from_u32(c).ok_or(Handover)?, at + 11)
            } else {
                // A lone low surrogate is not a character.
                (char::from_u32(high).ok_or(Handover)?, at + 5)
            };
            out.push(c);
            return Ok(next);
        }
        _ => return Err(Handover),
    };
    out.push(short);
    Ok(at + 1)
}

fn hex4(bytes: &[u8], at: usize) -> Result<u32> {
    let digits = bytes.get(at..at + 4).ok_or(Handover)?;
    digits.iter().try_fold(0u32, |n, &b| {
        let d = char::from(b).to_digit(16).ok_or(Handover)?;
        Ok(n * 16 + d)
    })
}

impl<'de> Deserializer<'de> for &mut Reader<'de> {
    type Error = Handover;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.peek()? {
            b'"' => self.visit_string(visitor),
            b'{' => self.nested(b'}', |reader| {
                visitor.visit_map(Entries {
                    reader,
                    first: true,
                })
            }),
            b'[' => self.nested(b']', |reader| {
                visitor.visit_seq(Elements {
                    reader,
                    first: true,
                })
            }),
            b't' => {
                self.literal("true")?;
                visitor.visit_bool(true)
            }
            b'f' => {
                self.literal("false")?;
                visitor.visit_bool(false)
            }
            b'n' => {
                self.literal("null")?;
                visitor.visit_unit()
            }
            b'-' | b'0'..=b'9' => self.number(visitor),
            _ => Err(Handover),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // Straight to the digits when that is what follows (indices, durations).
        if let Some(n) = self.peek().ok().and_then(|_| self.plain_u64()) {
            return visitor.visit_u64(n);
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.peek()? == b'n' {
            self.literal("null")?;
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == RAW_VALUE_TOKEN {
            return Err(Handover);
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.peek()? {
            // A unit variant, by its name.
            b'"' => match self.string()? {
                Text::Borrowed(s) => visitor.visit_enum(de::value::BorrowedStrDeserializer::new(s)),
                Text::Owned(s) => visitor.visit_enum(s.into_deserializer()),
            },
            // `{"variant": content}`.
            b'{' => self.nested(b'}', |reader| visitor.visit_enum(Variant { reader })),
            _ => Err(Handover),
        }
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Handover)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Handover)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The entries of an object.
struct Entries<'r, 'de> {
    reader: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> MapAccess<'de> for Entries<'_, 'de> {
    type Error = Handover;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.reader.peek()? {
            b'}' => return Ok(None),
            b',' if !self.first => {
                self.reader.pos += 1;
                self.reader.peek()?;
            }
            _ if self.first => {}
            _ => return Err(Handover),
        }
        self.first = false;
        if self.reader.bytes().get(self.reader.pos) != Some(&b'"') {
            return Err(Handover);
        }
        seed.deserialize(Key {
            reader: &mut *self.reader,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        self.reader.expect(b':')?;
        seed.deserialize(&mut *self.reader)
    }
}

/// The elements of an array.
struct Elements<'r, 'de> {
    reader: &'r mut Reader<'de>,
    first: bool,
}

impl<'de> SeqAccess<'de> for Elements<'_, 'de> {
    type Error = Handover;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.reader.peek()? {
            b']' => return Ok(None),
            _ if self.first => self.first = false,
            b',' => {
                self.reader.pos += 1;
                // After a comma an element must follow: `[1,]` is not JSON.
                if self.reader.peek()? == b']' {
                    return Err(Handover);
                }
            }
            _ => return Err(Handover),
        }
        seed.deserialize(&mut *self.reader).map(Some)
    }

    /// How many elements a short array of numbers or literals has (what the handler indices and
    /// durations of a batch are), so that the vector reading it is allocated once.
    fn size_hint(&self) -> Option<usize> {
        const LOOK: usize = 256;
        if !self.first {
            return None;
        }
        // Looks no further than the first bracket (at most `LOOK` bytes), and gives up when a
        // string comes before it: an array of arrays is sized by its inner arrays only.
        let rest = &self.reader.bytes()[self.reader.pos..];
        let rest = &rest[..rest.len().min(LOOK)];
        let end = memchr::memchr3(b']', b'[', b'{', rest)?;
        let span = &rest[..end];
        if rest[end] != b']' || memchr::memchr(b'"', span).is_some() {
            return None;
        }
        let values = span
            .iter()
            .any(|b| !matches!(b, b' ' | b'\n' | b'\t' | b'\r'));
        Some(if values {
            span.iter().filter(|&&b| b == b',').count() + 1
        } else {
            0
        })
    }
}

/// An object key: a string, given to the visitor as a string. Key types `serde_json` reads
/// otherwise (numbers, booleans, enums…) refuse a string, and the text is handed over.
struct Key<'r, 'de> {
    reader: &'r mut Reader<'de>,
}

impl<'de> Deserializer<'de> for Key<'_, 'de> {
    type Error = Handover;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.reader.visit_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Handover)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Handover)
    }

    fn deserialize_option<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value> {
        Err(Handover)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Handover)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value> {
        Err(Handover)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

/// The variant of an enum written `{"variant": content}`.
struct Variant<'r, 'de> {
    reader: &'r mut Reader<'de>,
}

impl<'de, 'r> EnumAccess<'de> for Variant<'r, 'de> {
    type Error = Handover;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        if self.reader.peek()? != b'"' {
            return Err(Handover);
        }
        let variant = seed.deserialize(Key {
            reader: &mut *self.reader,
        })?;
        self.reader.expect(b':')?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for Variant<'_, 'de> {
    type Error = Handover;

    fn unit_variant(self) -> Result<()> {
        <()>::deserialize(self.reader)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self.reader)
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.reader.deserialize_seq(visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        self.reader.deserialize_map(visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::Value;
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    /// Reads `text` both ways; they must agree on the value or on the error's text.
    fn same<T: for<'de> Deserialize<'de> + PartialEq + fmt::Debug>(text: &str) {
        let ours = from_str::<T>(text).map_err(|e| e.to_string());
        let theirs = serde_json::from_str::<T>(text).map_err(|e| e.to_string());
        assert_eq!(ours, theirs, "{text}");
    }

    /// Whether the reader reads `text` as a `T` itself, without handing it over.
    fn reads_itself<'de, T: Deserialize<'de>>(text: &'de str) -> bool {
        let mut reader = Reader {
            text,
            pos: 0,
            depth: 0,
        };
        T::deserialize(&mut reader).is_ok() && reader.end().is_ok()
    }

    #[test]
    fn reads_values_as_serde_json_does() {
        let long = "x".repeat(4096);
        let texts = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"e"}}"#,
            " { \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } , \"c\" : [ ] } \r\n",
            r#"[0,-0,1,-1,18446744073709551615,18446744073709551616,-9223372036854775808,-9223372036854775809]"#,
            r#"[1.5,-2.25e-3,1E5,1e+2,0.1,123456789012345678901234567890]"#,
            r#"["\"\\\/\b\f\n\r\t","\u0000\u001f\u00e9\u2028","\ud83d\ude00","é ü 😀","\u007f"]"#,
            r#"{"dup":1,"dup":2}"#,
            &format!(r#"{{"tool_input":{{"content":"{long}","command":"write"}},"turn":1}}"#),
            &format!(r#"["{long}\n{long}"]"#),
        ];
        for text in texts {
            same::<Value>(text);
            assert!(reads_itself::<Value>(text), "{text}");
        }
        // Around the length up to which a string is read in one plain pass: the quote, an escape
        // or a control character just inside, at or just past it.
        for len in SHORT - 2..=SHORT + 2 {
            let plain = "k".repeat(len);
            for text in [
                format!(r#"{{"{plain}":"{plain}"}}"#),
                format!(
                    r#"["{plain}
","{plain}"x"]"#
                ),
                format!("[\"{plain}\u{1}\"]"),
                format!(r#"["{plain}"#),
            ] {
                same::<Value>(&text);
            }
        }
    }

    #[test]
    fn hands_over_what_is_not_json_and_agrees_on_the_error() {
        let texts = [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "[,1]",
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{,"a":1}"#,
            r#"{1:2}"#,
            "01",
            "-",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "tru",
            "nul",
            "truex",
            "[1 2]",
            r#""a"#,
            "\"a\u{1}b\"",
            "\"tab\there\"",
            r#""\x""#,
            r#""\u12""#,
            r#""\ud83d""#,
            r#""\ud83dx""#,
            r#""\ude00""#,
            r#""\ud83d\u0041""#,
            "1e400",
            "[1] 2",
            "nan",
            "\u{feff}1",
        ];
        for text in texts {
            same::<Value>(text);
        }
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        same::<Value>(&deep);
        let ok = format!("{}{}", "[".repeat(127), "]".repeat(127));
        same::<Value>(&ok);
        assert!(reads_itself::<Value>(&ok));
        let too_deep = format!("{}{}", "[".repeat(128), "]".repeat(128));
        same::<Value>(&too_deep);
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Call {
        handlers: Vec<usize>,
        budget_us: u64,
        #[serde(default)]
        job_id: Option<String>,
        kind: Kind,
        #[serde(default)]
        end: Option<End>,
        small: u8,
        #[serde(default)]
        float: f32,
        #[serde(default)]
        map: BTreeMap<String, i64>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Kind {
        Plain,
        Wrapped(String),
        Pair(u8, u8),
        Fields { a: bool },
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    enum End {
        Block { reason: String },
        Panic { error: String },
    }

    #[test]
    fn reads_typed_values_as_serde_json_does() {
        let texts = [
            r#"{"handlers":[0,1,2],"budget_us":5000,"kind":"plain","small":7}"#,
            r#"{"handlers":[],"budget_us":1,"job_id":null,"kind":{"wrapped":"w\n"},"small":0,"float":1.5,"map":{"a":-1,"b\u00e9":2}}"#,
            r#"{"handlers":[],"budget_us":1,"job_id":"j","kind":{"pair":[1,2]},"small":255,"end":{"kind":"block","reason":"no"}}"#,
            r#"{"handlers":[],"budget_us":1,"kind":{"fields":{"a":true}},"small":1}"#,
            // Errors the target type raises: the same text as serde_json's.
            r#"{"handlers":[],"budget_us":1,"kind":"plain","small":256}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"plain","small":-1}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"plain"}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"plain","small":1,"other":2}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"wrapped","small":1}"#,
            r#"{"handlers":[],"budget_us":1,"kind":{"plain":1},"small":1}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"unknown","small":1}"#,
            r#"{"handlers":[-1],"budget_us":1,"kind":"plain","small":1}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"plain","small":1,"small":2}"#,
            r#"{"handlers":[],"budget_us":1.5,"kind":"plain","small":1}"#,
            r#"{"handlers":[],"budget_us":1,"kind":"plain","small":1,"end":{"kind":"gone"}}"#,
            r#"[[1],1,null,"plain",null,1]"#,
        ];
        for text in texts {
            same::<Call>(text);
        }
        // Integer keys are read from strings by serde_json: handed over, same answer.
        same::<BTreeMap<u32, bool>>(r#"{"1":true,"20":false}"#);
        same::<BTreeMap<u32, bool>>(r#"{"x":true}"#);
        same::<(u128, i128)>(
            "[340282366920938463463374607431768211455,-170141183460469231731687303715884105728]",
        );
        same::<Vec<u8>>("[1,2,3]");
        same::<Option<Option<bool>>>("null");
        same::<char>(r#""c""#);
        same::<char>(r#""cd""#);
        same::<()>("null");
    }

    /// Texts one edit away from JSON (a byte inserted, removed or replaced by one that matters to
    /// the grammar): both readers agree on every one.
    #[test]
    fn agrees_with_serde_json_one_edit_away() {
        const BYTES: &[u8] = b"{}[]:,\"\\/ -+.0123456789eEabfnrtu\n\x01\x7f";
        let seeds = [
            r#"{"a":[1,-2.5e3,true,null],"b":{"c":"d\u00e9\n"},"e":[]}"#,
            r#"[{"k":"v"},[0,-0,18446744073709551615],"\ud83d\ude00",false]"#,
            r#"{"handlers":[0,1],"budget_us":5000,"kind":{"pair":[1,2]},"small":7}"#,
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        for seed in seeds {
            for _ in 0..3000 {
                let mut bytes = seed.as_bytes().to_vec();
                let at = next(bytes.len() + 1);
                let byte = BYTES[next(BYTES.len())];
                match next(3) {
                    0 => bytes.insert(at, byte),
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ if at < bytes.len() => bytes[at] = byte,
                    _ => bytes.push(byte),
                }
                let Ok(text) = String::from_utf8(bytes) else {
                    continue;
                };
                same::<Value>(&text);
                same::<Call>(&text);
            }
        }
    }

    #[test]
    fn counts_short_flat_arrays_ahead() {
        let long = format!("[{}]", vec!["1"; 200].join(","));
        let cases = [
            ("[]", Some(0)),
            ("[ \n]", Some(0)),
            ("[7]", Some(1)),
            ("[1, 2 ,3]", Some(3)),
            ("[true,null,-1.5e3]", Some(3)),
            (r#"["a"]"#, None),
            ("[1,[2]]", None),
            ("[{}]", None),
            (&long, None),
        ];
        for (text, hint) in cases {
            let mut reader = Reader {
                text,
                pos: 1,
                depth: 0,
            };
            let elements = Elements {
                reader: &mut reader,
                first: true,
            };
            assert_eq!(elements.size_hint(), hint, "{text}");
        }
    }

    #[test]
    fn borrows_strings_without_escapes() {
        #[derive(Deserialize)]
        struct Texts<'a> {
            #[serde(borrow)]
            plain: Cow<'a, str>,
            #[serde(borrow)]
            escaped: Cow<'a, str>,
            raw: &'a str,
        }
        let text = r#"{"plain":"abc","escaped":"a\"c","raw":"xyz"}"#;
        let texts: Texts<'_> = from_str(text).unwrap();
        assert!(matches!(texts.plain, Cow::Borrowed("abc")));
        assert!(matches!(texts.escaped, Cow::Owned(ref s) if s == "a\"c"));
        assert_eq!(texts.raw, "xyz");
    }

    #[test]
    fn raw_values_and_bytes_are_serde_jsons() {
        #[derive(Deserialize)]
        struct Raw<'a> {
            #[serde(borrow)]
            event: &'a serde_json::value::RawValue,
        }
        let raw: Raw<'_> = from_str(r#"{"event": {"a": [1, 2]} }"#).unwrap();
        assert_eq!(raw.event.get(), r#"{"a": [1, 2]}"#);
    }
}
