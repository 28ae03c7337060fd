//! Structs read from JSON objects only. serde's derived `Deserialize`
//! also reads a struct from an array of its fields in order (`["id", 1]`
//! for `{id, n}`), which the documents of the API do not allow and which
//! hides a wrong shape; these read through `deserialize_map`, which
//! serde_json answers only for an object.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor, value::MapAccessDeserializer};

/// `T` read from a JSON object only.
pub struct ObjectOnly<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Only<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Only<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        d.deserialize_map(Only(PhantomData)).map(ObjectOnly)
    }
}

/// For `#[serde(deserialize_with)]` on a `Vec<T>` of objects.
pub fn objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    let items: Vec<ObjectOnly<T>> = Vec::deserialize(d)?;
    Ok(items.into_iter().map(|o| o.0).collect())
}

/// For `#[serde(deserialize_with)]` on an `Option<T>` that is an object
/// or null.
pub fn optional_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    let item: Option<ObjectOnly<T>> = Option::deserialize(d)?;
    Ok(item.map(|o| o.0))
}
