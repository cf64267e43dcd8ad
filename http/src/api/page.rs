//! Cursor pagination: lists run newest first by id (time-ordered UUIDs), and the cursor is the
//! last id of a page, encoded so clients treat it as opaque. New rows never shift a page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::ApiResult;
use crate::problem::ApiError;

/// Items per page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items per page; a larger `limit` is capped to this.
pub const MAX_LIMIT: u32 = 200;

/// The page size and the id to continue after.
pub fn params(limit: Option<u32>, cursor: Option<&str>) -> ApiResult<(i64, Option<Uuid>)> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let after = cursor
        .map(|text| {
            URL_SAFE_NO_PAD
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
        assert_eq!(params(Some(10_000), None).unwrap().0, i64::from(MAX_LIMIT));
        assert_eq!(params(Some(0), None).unwrap().0, 1);
    }
}
