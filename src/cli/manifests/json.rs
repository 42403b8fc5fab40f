//! YAML is read into JSON values the way the API server reads it; `serde_json::Value`'s own
//! deserializer would silently accept what `kubectl` refuses.

use super::wording::shortened;
use serde::Deserialize;
use serde_json::Value;
use std::fmt;

/// A document as JSON, as the API server reads it. Unlike `serde_json::Value`'s own
/// deserializer, a number JSON cannot hold (`.nan`, `.inf`) is an error, not a silent `null`
/// (which would then be pruned and defaulted: `replicas: .nan` would become 1 replica), and so
/// is a key given twice in one mapping (`kubectl` refuses both). Keys are read as text, as the
/// API server's YAML reader does.
pub(super) struct Json(pub(super) Value);

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor).map(Json)
    }
}

struct JsonVisitor;

impl<'de> serde::de::Visitor<'de> for JsonVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value JSON can hold")
    }

    fn visit_bool<E>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E>(self, value: i64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_u64<E>(self, value: u64) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_i128<E: serde::de::Error>(self, value: i128) -> Result<Value, E> {
        i64::try_from(value)
            .map(Value::from)
            .map_err(|_| E::custom(format!("{value} is out of range for a number")))
    }

    fn visit_u128<E: serde::de::Error>(self, value: u128) -> Result<Value, E> {
        u64::try_from(value)
            .map(Value::from)
            .map_err(|_| E::custom(format!("{value} is out of range for a number")))
    }

    fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| {
                E::custom(format!(
                    "{value} is not a number JSON can hold (no NaN or infinity in Kubernetes objects)"
                ))
            })
    }

    fn visit_str<E>(self, value: &str) -> Result<Value, E> {
        Ok(Value::from(value))
    }

    fn visit_string<E>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        Json::deserialize(deserializer).map(|json| json.0)
    }

    fn visit_newtype_struct<D: serde::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Value, D::Error> {
        Json::deserialize(deserializer).map(|json| json.0)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Json(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some((key, Json(value))) = map.next_entry::<String, Json>()? {
            if object.contains_key(&key) {
                return Err(serde::de::Error::custom(format!(
                    "mapping key {:?} is given twice",
                    shortened(&key)
                )));
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}
