//! [`Id`]: an engine id as an API path, query or body field. The OpenAPI document describes it
//! as a string with its pattern (so clients and fuzzers know what an id looks like), and a
//! malformed one is refused with the id parser's own message.

use std::borrow::Cow;

use hookd_engine::ids::PrefixedId;
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{
    ParseError, ParseFromJSON, ParseFromParameter, ParseResult, ToJSON, Type,
};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id<T>(pub T);

impl<T: PrefixedId> Id<T> {
    fn pattern() -> String {
        format!("^{}_[0-9a-fA-F]{{32}}$", T::PREFIX)
    }

    fn parse(text: &str) -> ParseResult<Self> {
        T::parse(text).map(Self).map_err(ParseError::custom)
    }
}

impl<T: PrefixedId> Type for Id<T> {
    const IS_REQUIRED: bool = true;
    // Validators have nothing to add to the parser.
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> Cow<'static, str> {
        format!("{}_id", T::PREFIX).into()
    }

    fn schema_ref() -> MetaSchemaRef {
        MetaSchemaRef::Inline(Box::new(MetaSchema {
            pattern: Some(Self::pattern()),
            example: Some(Value::String(format!(
                "{}_0193a0a1b2c37d8e9f0a1b2c3d4e5f60",
                T::PREFIX
            ))),
            ..MetaSchema::new("string")
        }))
    }

    fn as_raw_value(&self) -> Option<&Self::RawValueType> {
        Some(self)
    }

    fn raw_element_iter<'a>(
        &'a self,
    ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
        Box::new(self.as_raw_value().into_iter())
    }
}

impl<T: PrefixedId> ParseFromParameter for Id<T> {
    fn parse_from_parameter(value: &str) -> ParseResult<Self> {
        Self::parse(value)
    }
}

impl<T: PrefixedId> ParseFromJSON for Id<T> {
    fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
        match value.unwrap_or_default() {
            Value::String(text) => Self::parse(&text),
            other => Err(ParseError::expected_type(other)),
        }
    }
}

impl<T: PrefixedId> ToJSON for Id<T> {
    fn to_json(&self) -> Option<Value> {
        Some(Value::String(self.0.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use hookd_engine::ids::EndpointId;

    use super::*;

    #[test]
    fn parses_its_own_kind_only_and_the_pattern_agrees() {
        let id = EndpointId::generate();
        let text = id.to_string();
        assert_eq!(
            Id::<EndpointId>::parse_from_parameter(&text).map_err(|e| e.into_message()),
            Ok(Id(id))
        );
        let pattern = regex::Regex::new(&Id::<EndpointId>::pattern()).unwrap();
        assert!(pattern.is_match(&text));
        for wrong in ["", "ep_123", "evt_0193a0a1b2c37d8e9f0a1b2c3d4e5f60"] {
            assert!(!pattern.is_match(wrong), "{wrong}");
            let message = Id::<EndpointId>::parse_from_parameter(wrong)
                .map(|_| ())
                .map_err(|e| e.into_message());
            assert!(
                message
                    .as_ref()
                    .is_err_and(|m| m.contains("not a valid endpoint id")),
                "{wrong}: {message:?}"
            );
        }
        assert!(Id::<EndpointId>::parse_from_json(Some(serde_json::json!(7))).is_err());
    }
}
