//! Message requests as read from the JSON body, before any check.
//!
//! A request is read straight into its fields, each kept as whatever JSON it held, with
//! strings borrowed from the body when they need no unescaping; [`validate`](super::validate)
//! then checks each field by hand, so every mistake still gets its stable code and field. A
//! batch of a thousand messages is read without a tree of JSON values in between.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The visits of a JSON scalar (null, a boolean, a number, a string) for a visitor that wants
/// something else and answers `$value` for any of them.
macro_rules! not_this_shape {
    ($ty:ty, $value:expr) => {
        fn visit_unit<E>(self) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_bool<E>(self, _: bool) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_u64<E>(self, _: u64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_i64<E>(self, _: i64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_f64<E>(self, _: f64) -> Result<$ty, E> {
            Ok($value)
        }

        fn visit_str<E>(self, _: &str) -> Result<$ty, E> {
            Ok($value)
        }
    };
}

/// One field's value, as sent.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Field<'a> {
    /// `null`, or the field absent.
    #[default]
    Null,
    /// A string.
    Str(Cow<'a, str>),
    /// A whole number, 0 or more.
    Whole(u64),
    /// Any other number (negative, fractional).
    OtherNumber,
    /// `true`, `false`, an array or an object.
    Other,
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldVisitor;

        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }

            fn visit_unit<E>(self) -> Result<Field<'de>, E> {
                Ok(Field::Null)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Field<'de>, E> {
                Ok(Field::Other)
            }

            fn visit_u64<E>(self, v: u64) -> Result<Field<'de>, E> {
                Ok(Field::Whole(v))
            }

            fn visit_i64<E>(self, v: i64) -> Result<Field<'de>, E> {
                Ok(u64::try_from(v).map_or(Field::OtherNumber, Field::Whole))
            }

            fn visit_f64<E>(self, _: f64) -> Result<Field<'de>, E> {
                Ok(Field::OtherNumber)
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Field<'de>, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Field<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Field<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }

        deserializer.deserialize_any(FieldVisitor)
    }
}

/// The fields a message request may have.
pub(super) const FIELDS: [&str; 9] = [
    "to",
    "from",
    "body",
    "id",
    "ttl",
    "priority",
    "callback_url",
    "carrier",
    "tags",
];

/// A message request's fields, unchecked. A field given twice keeps its last value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request<'a> {
    /// `to`.
    pub to: Field<'a>,
    /// `from`.
    pub from: Field<'a>,
    /// `body`.
    pub body: Field<'a>,
    /// `id`.
    pub id: Field<'a>,
    /// `ttl`.
    pub ttl: Field<'a>,
    /// `priority`.
    pub priority: Field<'a>,
    /// `callback_url`.
    pub callback_url: Field<'a>,
    /// `carrier`.
    pub carrier: Field<'a>,
    /// `tags`, whole.
    pub tags: Option<Value>,
    /// The first field not in [`FIELDS`], if any.
    pub unknown: Option<String>,
}

/// A message request's body: an object, or something else (refused as such). Nearly every
/// body is an object, so the other case's wasted room costs nothing in practice.
#[derive(Clone, Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Body<'a> {
    /// A JSON object.
    Object(Request<'a>),
    /// Any other JSON value.
    NotObject,
}

/// Which field a key names.
enum Key {
    To,
    From,
    Body,
    Id,
    Ttl,
    Priority,
    CallbackUrl,
    Carrier,
    Tags,
    Unknown(String),
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = Key;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a field name")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
                Ok(match v {
                    "to" => Key::To,
                    "from" => Key::From,
                    "body" => Key::Body,
                    "id" => Key::Id,
                    "ttl" => Key::Ttl,
                    "priority" => Key::Priority,
                    "callback_url" => Key::CallbackUrl,
                    "carrier" => Key::Carrier,
                    "tags" => Key::Tags,
                    other => Key::Unknown(other.to_owned()),
                })
            }
        }

        deserializer.deserialize_identifier(KeyVisitor)
    }
}

/// Reads any JSON value: an object's fields into a [`Request`]; anything else is
/// [`Body::NotObject`], read through and dropped.
struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body<'de>, A::Error> {
        let mut request = Request::default();
        while let Some(key) = map.next_key::<Key>()? {
            let slot = match key {
                Key::To => &mut request.to,
                Key::From => &mut request.from,
                Key::Body => &mut request.body,
                Key::Id => &mut request.id,
                Key::Ttl => &mut request.ttl,
                Key::Priority => &mut request.priority,
                Key::CallbackUrl => &mut request.callback_url,
                Key::Carrier => &mut request.carrier,
                Key::Tags => {
                    request.tags = Some(map.next_value()?);
                    continue;
                }
                Key::Unknown(name) => {
                    map.next_value::<IgnoredAny>()?;
                    request.unknown.get_or_insert(name);
                    continue;
                }
            };
            *slot = map.next_value()?;
        }
        Ok(Body::Object(request))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::NotObject)
    }

    not_this_shape!(Body<'de>, Body::NotObject);
}

impl<'de> Deserialize<'de> for Body<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(BodyVisitor)
    }
}

/// A batch request's body: `{"messages": [...]}`; other fields are ignored. `messages` is
/// `None` when the body is not an object, has no `messages` or has one that is not an array.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Batch<'a> {
    /// The items, each read as a [`Body`].
    pub messages: Option<Vec<Body<'a>>>,
}

/// `messages`: an array of bodies, or something else.
struct Items<'a>(Option<Vec<Body<'a>>>);

impl<'de> Deserialize<'de> for Items<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ItemsVisitor;

        impl<'de> Visitor<'de> for ItemsVisitor {
            type Value = Items<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of messages")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items<'de>, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(item) = seq.next_element::<Body<'de>>()? {
                    items.push(item);
                }
                Ok(Items(Some(items)))
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Items(None))
            }

            not_this_shape!(Items<'de>, Items(None));
        }

        deserializer.deserialize_any(ItemsVisitor)
    }
}

impl<'de> Deserialize<'de> for Batch<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BatchVisitor;

        impl<'de> Visitor<'de> for BatchVisitor {
            type Value = Batch<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("{\"messages\": [...]}")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Batch<'de>, A::Error> {
                let mut batch = Batch::default();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    if key == "messages" {
                        batch.messages = map.next_value::<Items<'de>>()?.0;
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(batch)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Batch<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Batch::default())
            }

            not_this_shape!(Batch<'de>, Batch::default());
        }

        deserializer.deserialize_any(BatchVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deep_array(depth: usize) -> String {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn strings_without_escapes_are_borrowed_and_others_unescaped() {
        let text = r#"{"to": "+447700900123", "body": "line\nbreak", "ttl": 60, "priority": -1}"#;
        let Body::Object(r) = serde_json::from_str(text).unwrap() else {
            panic!("an object");
        };
        assert!(matches!(r.to, Field::Str(Cow::Borrowed("+447700900123"))));
        assert_eq!(r.body, Field::Str(Cow::Owned("line\nbreak".into())));
        assert_eq!(r.ttl, Field::Whole(60));
        assert_eq!(r.priority, Field::OtherNumber);
        assert_eq!(r.from, Field::Null);
        assert_eq!(r.unknown, None);
    }

    #[test]
    fn every_kind_of_value_is_read_and_the_first_unknown_field_kept() {
        let text = r#"{"zz": [1, {"a": 2}], "to": true, "from": {"x": [null]}, "aa": 1,
                       "tags": {"k": "v"}, "body": 1.5, "id": null, "to": "+1"}"#;
        let Body::Object(r) = serde_json::from_str(text).unwrap() else {
            panic!("an object");
        };
        assert_eq!(r.unknown.as_deref(), Some("zz"));
        assert_eq!(r.from, Field::Other);
        assert_eq!(r.body, Field::OtherNumber);
        assert_eq!(r.id, Field::Null);
        assert_eq!(
            r.to,
            Field::Str("+1".into()),
            "the last of a repeated field"
        );
        assert_eq!(r.tags, Some(serde_json::json!({"k": "v"})));
        for not_object in ["[1, [2]]", "\"x\"", "3", "-3", "0.5", "true", "null"] {
            assert_eq!(
                serde_json::from_str::<Body<'_>>(not_object).unwrap(),
                Body::NotObject,
                "{not_object}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_skipped_or_refused_without_overflowing_the_stack() {
        let deep = deep_array(100_000);
        let to = format!(r#"{{"to": {deep}}}"#);
        let Ok(Body::Object(r)) = serde_json::from_str(&to) else {
            panic!("read through");
        };
        assert_eq!(r.to, Field::Other);
        let unknown = format!(r#"{{"zz": {deep}}}"#);
        let Ok(Body::Object(r)) = serde_json::from_str(&unknown) else {
            panic!("read through");
        };
        assert_eq!(r.unknown.as_deref(), Some("zz"));
        let tags = format!(r#"{{"tags": {deep}}}"#);
        let err = serde_json::from_str::<Body<'_>>(&tags).unwrap_err();
        assert!(err.to_string().contains("recursion limit"), "{err}");
        assert_eq!(
            serde_json::from_str::<Body<'_>>(&deep).unwrap(),
            Body::NotObject
        );

        let batch = format!(r#"{{"x": {deep}, "messages": [{{"body": {deep}}}]}}"#);
        let b: Batch<'_> = serde_json::from_str(&batch).unwrap();
        let Some([Body::Object(r)]) = b.messages.as_deref() else {
            panic!("one item");
        };
        assert_eq!(r.body, Field::Other);
    }

    #[test]
    fn a_batch_needs_an_array_of_messages_and_ignores_other_fields() {
        let b: Batch<'_> =
            serde_json::from_str(r#"{"x": {"y": 1}, "messages": [{"to": "1"}, 7]}"#).unwrap();
        let items = b.messages.unwrap();
        assert_eq!(items.len(), 2);
        assert!(matches!(items[0], Body::Object(_)));
        assert_eq!(items[1], Body::NotObject);
        for no_items in [
            r#"{"messages": {}}"#,
            r#"{"messages": 1}"#,
            "{}",
            "[]",
            "null",
        ] {
            let b: Batch<'_> = serde_json::from_str(no_items).unwrap();
            assert_eq!(b.messages, None, "{no_items}");
        }
        assert!(serde_json::from_str::<Batch<'_>>(r#"{"messages": [1,]}"#).is_err());
        assert!(serde_json::from_str::<Batch<'_>>(r#"{"messages": [{"to": }]}"#).is_err());
    }
}
