//! Cursor pagination: lists run newest first by id (time-ordered UUIDs), and the cursor is the
//! last id of a page, encoded so clients treat it as opaque. New rows never shift a page.

use base64::Engine as _;
use base64::alphabet::URL_SAFE;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use uuid::Uuid;

use super::ApiResult;
use crate::problem::ApiError;

/// Items per page when the client does not say; routes declare the range (1–200).
pub const DEFAULT_LIMIT: u32 = 50;

/// Reads cursors without insisting that the unused low bits of the last character are zero, so
/// that every string of the documented pattern (`^[A-Za-z0-9_-]{22}$`) is a cursor: it names a
/// position in the list, never a resource, and any position is a valid place to continue from.
const CURSOR_READER: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireNone),
);

/// The page size and the id to continue after.
pub fn params(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<(i64, Option<Uuid>)> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    let after = cursor
        .map(|text| {
            CURSOR_READER
                .decode(text)
                .ok()
                .and_then(|bytes| Uuid::from_slice(&bytes).ok())
                .ok_or_else(|| ApiError::invalid("cursor: not a cursor returned by this API"))
        })
        .transpose()?;
    Ok((i64::from(limit), after))
}

/// The cursor for the page after `items`, if the page was full.
pub fn next_cursor<T>(items: &[T], limit: i64, id: impl Fn(&T) -> Uuid) -> Option<String> {
    let full = usize::try_from(limit).is_ok_and(|limit| items.len() == limit);
    items
        .last()
        .filter(|_| full)
        .map(|last| URL_SAFE_NO_PAD.encode(id(last).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let ids = [Uuid::now_v7(), Uuid::now_v7()];
        let cursor = next_cursor(&ids, 2, |id| *id).unwrap();
        assert_eq!(params(None, Some(&cursor)).unwrap(), (50, Some(ids[1])));
        assert_eq!(next_cursor(&ids, 3, |id| *id), None);
        assert!(params(None, Some("not a cursor")).is_err());
        assert!(
            params(None, Some("AAAAAAAAAAAAAAAAAAAAA")).is_err(),
            "21 characters"
        );
        // Nonzero trailing bits: not one this API wrote, but a position all the same.
        assert!(params(None, Some("AAAAAAAAAAAAAAAAAAAAA_")).is_ok());
    }
}
