//! [`Text`]: a string field that accepts only JSON strings without NUL characters. poem-openapi's
//! `String` also takes numbers and booleans (`"type": 7` would become `"7"`); an API should say
//! the type is wrong instead. NUL (U+0000) is refused because PostgreSQL cannot store it in text
//! or jsonb: let through, it would fail the statement, a 500 for bad input.

use std::borrow::Cow;
use std::ops::Deref;

use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Text(pub String);

/// What the OpenAPI document says of every [`Text`].
const NO_NUL_PATTERN: &str = "^[^\\u0000]*$";

impl Text {
    fn checked(text: String) -> ParseResult<Self> {
        if text.contains('\0') {
            Err(ParseError::custom(
                "must not contain the NUL character (U+0000)",
            ))
        } else {
            Ok(Self(text))
        }
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<Text> for String {
    fn from(text: Text) -> Self {
        text.0
    }
}

impl Type for Text {
    const IS_REQUIRED: bool = true;
    // Validators (`min_length`, `max_length`, `pattern`) apply to the inner `String`.
    type RawValueType = String;
    type RawElementValueType = String;

    fn name() -> Cow<'static, str> {
        "string".into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(NO_NUL_PATTERN.to_owned()),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(&self.0)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl ParseFromJSON for Text {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Self::checked(text),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl ParseFromParameter for Text {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::checked(value.to_owned())
    }
}

impl ToJSON for Text {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_pattern_refuses_nul_only() {
        let pattern = regex::Regex::new(NO_NUL_PATTERN).unwrap();
        assert!(pattern.is_match("order.paid ü"));
        assert!(!pattern.is_match("a\0b"));
        assert!(Text::parse_from_parameter("a\0b").is_err());
    }

    #[test]
    fn only_strings_parse() {
        assert_eq!(
            Text::parse_from_json(Some(Value::String("a".into()))).map_err(|e| e.into_message()),
            Ok(Text("a".into()))
        );
        for wrong in [
            serde_json::json!(7),
            serde_json::json!(true),
            serde_json::json!(null),
            serde_json::json!("a\0b"),
        ] {
            assert!(
                Text::parse_from_json(Some(wrong.clone())).is_err(),
                "{wrong}"
            );
        }
    }
}
