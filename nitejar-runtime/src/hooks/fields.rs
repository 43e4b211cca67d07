//! The names of the fields a patch sets, read without serializing their values.
//!
//! A receipt names the fields a handler changed (`changed_fields`). Turning the patch into JSON to
//! read its keys would copy every value — a 4 KB `tool_input` once per changing handler — so this
//! serializer only walks the patch's top level: a field is set unless it serializes as nothing
//! (`None`, unit, `null`). The names are the patch's serialized names, as the JSON would have
//! them.

use std::fmt;

use serde::ser::{self, Impossible, Serialize, Serializer};

/// The fields `patch` sets, in declaration order. A patch that is not a struct or a map sets none.
pub(super) fn changed_fields<P: Serialize>(patch: &P) -> Vec<String> {
    patch.serialize(TopLevel).unwrap_or_default()
}

/// Never raised: the serializers below accept everything.
#[derive(Debug)]
pub(super) struct Unused;

impl fmt::Display for Unused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unused")
    }
}

impl std::error::Error for Unused {}

impl ser::Error for Unused {
    fn custom<T: fmt::Display>(_msg: T) -> Self {
        Unused
    }
}

/// The patch itself: collects the names of its fields that are set.
struct TopLevel;

/// The fields of a struct or map.
struct Names {
    names: Vec<String>,
    /// A map's key waiting for its value.
    key: Option<String>,
}

/// Whether a value serializes as nothing (`None`, unit, `null`); never looks inside a value.
struct IsNothing;

/// Reads a map key as text.
struct KeyText;

/// Ignores what is inside a compound value.
struct Ignore;

macro_rules! nothing_for_scalars {
    ($result:expr; $($method:ident($ty:ty)),*) => {
        $(fn $method(self, _v: $ty) -> Result<Self::Ok, Self::Error> { $result })*
    };
}

impl Serializer for TopLevel {
    type Ok = Vec<String>;
    type Error = Unused;
    type SerializeSeq = Impossible<Vec<String>, Unused>;
    type SerializeTuple = Impossible<Vec<String>, Unused>;
    type SerializeTupleStruct = Impossible<Vec<String>, Unused>;
    type SerializeTupleVariant = Impossible<Vec<String>, Unused>;
    type SerializeMap = Names;
    type SerializeStruct = Names;
    type SerializeStructVariant = Impossible<Vec<String>, Unused>;

    nothing_for_scalars!(Ok(Vec::new());
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]));

    fn serialize_none(self) -> Result<Self::Ok, Self::Error> {
        Ok(Vec::new())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<Self::Ok, Self::Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<Self::Ok, Self::Error> {
        Ok(Vec::new())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<Self::Ok, Self::Error> {
        Ok(Vec::new())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<Self::Ok, Self::Error> {
        Ok(Vec::new())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<Self::Ok, Self::Error> {
        Ok(Vec::new())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Self::Error> {
        Err(Unused)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Self::Error> {
        Err(Unused)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Self::Error> {
        Err(Unused)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Self::Error> {
        Err(Unused)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, Self::Error> {
        Ok(Names {
            names: Vec::with_capacity(len.unwrap_or(0)),
            key: None,
        })
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, Self::Error> {
        Ok(Names {
            names: Vec::with_capacity(len),
            key: None,
        })
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Self::Error> {
        Err(Unused)
    }
}

impl ser::SerializeStruct for Names {
    type Ok = Vec<String>;
    type Error = Unused;
    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), Unused> {
        if !value.serialize(IsNothing)? {
            self.names.push(key.to_string());
        }
        Ok(())
    }
    fn end(self) -> Result<Vec<String>, Unused> {
        Ok(self.names)
    }
}

impl ser::SerializeMap for Names {
    type Ok = Vec<String>;
    type Error = Unused;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<(), Unused> {
        self.key = key.serialize(KeyText).ok();
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<(), Unused> {
        let key = self.key.take();
        if let Some(key) = key {
            if !value.serialize(IsNothing)? {
                self.names.push(key);
            }
        }
        Ok(())
    }
    fn end(self) -> Result<Vec<String>, Unused> {
        Ok(self.names)
    }
}

impl Serializer for IsNothing {
    type Ok = bool;
    type Error = Unused;
    type SerializeSeq = Ignore;
    type SerializeTuple = Ignore;
    type SerializeTupleStruct = Ignore;
    type SerializeTupleVariant = Ignore;
    type SerializeMap = Ignore;
    type SerializeStruct = Ignore;
    type SerializeStructVariant = Ignore;

    nothing_for_scalars!(Ok(false);
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_char(char),
        serialize_str(&str), serialize_bytes(&[u8]));

    fn serialize_none(self) -> Result<bool, Unused> {
        Ok(true)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<bool, Unused> {
        // `Some(null)` is `null` in JSON.
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<bool, Unused> {
        Ok(true)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<bool, Unused> {
        Ok(true)
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
    ) -> Result<bool, Unused> {
        Ok(false)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<bool, Unused> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<bool, Unused> {
        Ok(false)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Ignore, Unused> {
        Ok(Ignore)
    }
}

impl Serializer for KeyText {
    type Ok = String;
    type Error = Unused;
    type SerializeSeq = Impossible<String, Unused>;
    type SerializeTuple = Impossible<String, Unused>;
    type SerializeTupleStruct = Impossible<String, Unused>;
    type SerializeTupleVariant = Impossible<String, Unused>;
    type SerializeMap = Impossible<String, Unused>;
    type SerializeStruct = Impossible<String, Unused>;
    type SerializeStructVariant = Impossible<String, Unused>;

    fn serialize_str(self, v: &str) -> Result<String, Unused> {
        Ok(v.to_string())
    }
    fn serialize_char(self, v: char) -> Result<String, Unused> {
        Ok(v.to_string())
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<String, Unused> {
        Ok(variant.to_string())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<String, Unused> {
        value.serialize(self)
    }
    nothing_for_scalars!(Err(Unused);
        serialize_bool(bool), serialize_i8(i8), serialize_i16(i16), serialize_i32(i32),
        serialize_i64(i64), serialize_u8(u8), serialize_u16(u16), serialize_u32(u32),
        serialize_u64(u64), serialize_f32(f32), serialize_f64(f64), serialize_bytes(&[u8]));
    fn serialize_none(self) -> Result<String, Unused> {
        Err(Unused)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result<String, Unused> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<String, Unused> {
        Err(Unused)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<String, Unused> {
        Err(Unused)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> Result<String, Unused> {
        Err(Unused)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Unused> {
        Err(Unused)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Unused> {
        Err(Unused)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Unused> {
        Err(Unused)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unused> {
        Err(Unused)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unused> {
        Err(Unused)
    }
    fn serialize_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStruct, Unused> {
        Err(Unused)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unused> {
        Err(Unused)
    }
}

macro_rules! ignore_compound {
    ($($trait:ident :: $method:ident ($($key:ident: $kty:ty),*)),*) => {
        $(impl ser::$trait for Ignore {
            type Ok = bool;
            type Error = Unused;
            fn $method<T: ?Sized + Serialize>(&mut self, $(_: $kty,)* _value: &T) -> Result<(), Unused> {
                Ok(())
            }
            fn end(self) -> Result<bool, Unused> {
                Ok(false)
            }
        })*
    };
}

ignore_compound!(
    SerializeSeq::serialize_element(),
    SerializeTuple::serialize_element(),
    SerializeTupleStruct::serialize_field(),
    SerializeTupleVariant::serialize_field(),
    SerializeStruct::serialize_field(key: &'static str),
    SerializeStructVariant::serialize_field(key: &'static str)
);

impl ser::SerializeMap for Ignore {
    type Ok = bool;
    type Error = Unused;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, _key: &T) -> Result<(), Unused> {
        Ok(())
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, _value: &T) -> Result<(), Unused> {
        Ok(())
    }
    fn end(self) -> Result<bool, Unused> {
        // An empty map is `{}`, not nothing.
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitejar_sdk::hooks::{
        ModelPreCallPatch, RunPrePromptPatch, ToolPreExecPatch, WorkItemPreCreatePatch,
    };
    use serde_json::{json, Value};

    /// What reading the keys of the patch's JSON gives, the slow way.
    fn via_json<P: Serialize>(patch: &P) -> Vec<String> {
        match serde_json::to_value(patch) {
            Ok(Value::Object(map)) => map
                .into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, _)| k)
                .collect(),
            _ => Vec::new(),
        }
    }

    fn same<P: Serialize>(patch: &P) {
        let mut fast = changed_fields(patch);
        let mut slow = via_json(patch);
        fast.sort();
        slow.sort();
        assert_eq!(fast, slow);
    }

    #[test]
    fn the_fields_a_patch_sets_are_those_its_json_has() {
        same(&ToolPreExecPatch::new());
        same(&ToolPreExecPatch::new().tool_input(json!({"content": "x".repeat(4096)})));
        same(&ToolPreExecPatch::new().tool_input(Value::Null));
        same(&ToolPreExecPatch::new().tool_input(json!({})));
        same(&ToolPreExecPatch::new().tool_input(json!([])));
        same(&RunPrePromptPatch::new().system_prompt("Answer in French."));
        same(&ModelPreCallPatch::new().temperature(0.2).max_tokens(512));
        same(
            &WorkItemPreCreatePatch::new()
                .title("[vip]")
                .payload(json!({"a": 1})),
        );
        same(&json!({"a": 1, "b": null, "c": {"d": null}, "e": []}));
        same(&json!([1, 2]));
        same(&json!("text"));
        assert_eq!(
            changed_fields(&ToolPreExecPatch::new().tool_input(json!({"content": "x"}))),
            vec!["tool_input".to_string()]
        );
    }
}
