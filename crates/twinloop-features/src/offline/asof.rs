//! The as-of join of one partition: a sort-merge over (key, event time, created time).
//!
//! For each entity row the winner is the feature row with the same key and the greatest event
//! time at or before the entity's time; among equal event times the greatest created time (then
//! the row read last). The winner counts only when it is within the TTL (`event time >= entity
//! time − ttl`, inclusive): because it is the latest candidate, no other candidate can be within
//! the TTL when it is not.

use arrow::array::{Array, BinaryArray, Int64Array};

/// One side of the join, borrowed from a partition's columns.
pub struct Side<'a> {
    pub keys: &'a BinaryArray,
    pub event_ts: &'a Int64Array,
}

/// Returns, for each entity row (by position in `entities`), the winning feature row if any.
pub fn asof_join(
    entities: &Side<'_>,
    features: &Side<'_>,
    created_ts: Option<&Int64Array>,
    ttl_micros: Option<i64>,
) -> Vec<Option<u32>> {
    let created = |i: usize| created_ts.map_or(0, |c| c.values()[i]);
    // Keys of up to 16 bytes (every single integer key, short strings) are packed into a u128,
    // zero-padded: our key encoding is prefix-free, so padding keeps distinct keys distinct,
    // and sorting plain integers is several times faster than comparing byte slices.
    if let (Some(fk), Some(ek)) = (packed(features.keys), packed(entities.keys)) {
        return merge(
            feature_rows(features, |i| fk[i], created),
            entity_rows(entities, |i| ek[i]),
            ttl_micros,
        );
    }
    merge(
        feature_rows(features, |i| features.keys.value(i), created),
        entity_rows(entities, |i| entities.keys.value(i)),
        ttl_micros,
    )
}

fn packed(keys: &BinaryArray) -> Option<Vec<u128>> {
    let offsets = keys.value_offsets();
    if offsets.windows(2).any(|w| w[1] - w[0] > 16) {
        return None;
    }
    Some(
        (0..keys.len())
            .map(|i| {
                let key = keys.value(i);
                let mut bytes = [0u8; 16];
                bytes[..key.len()].copy_from_slice(key);
                u128::from_be_bytes(bytes)
            })
            .collect(),
    )
}

fn feature_rows<K>(
    side: &Side<'_>,
    key: impl Fn(usize) -> K,
    created: impl Fn(usize) -> i64,
) -> Vec<(K, i64, i64, u32)> {
    let ts = side.event_ts.values();
    (0..side.keys.len())
        .map(|i| (key(i), ts[i], created(i), i as u32))
        .collect()
}

fn entity_rows<K>(side: &Side<'_>, key: impl Fn(usize) -> K) -> Vec<(K, i64, u32)> {
    let ts = side.event_ts.values();
    (0..side.keys.len())
        .map(|i| (key(i), ts[i], i as u32))
        .collect()
}

/// Sorts both sides and walks them once. Feature rows sort by (key, time, created, position),
/// so the last row at or before an entity's (key, time) is the winner, ties included.
fn merge<K: Ord + Copy>(
    mut features: Vec<(K, i64, i64, u32)>,
    mut entities: Vec<(K, i64, u32)>,
    ttl_micros: Option<i64>,
) -> Vec<Option<u32>> {
    features.sort_unstable();
    entities.sort_unstable();
    let mut winners = vec![None; entities.len()];
    // `next` is the first feature row (in sorted order) past the current entity's (key, time).
    let mut next = 0usize;
    for &(key, ts, e) in &entities {
        while next < features.len() && (features[next].0, features[next].1) <= (key, ts) {
            next += 1;
        }
        let Some(&(candidate_key, candidate_ts, _, row)) =
            next.checked_sub(1).map(|c| &features[c])
        else {
            continue;
        };
        let within_ttl = ttl_micros
            .is_none_or(|ttl| i128::from(candidate_ts) >= i128::from(ts) - i128::from(ttl));
        if candidate_key == key && within_ttl {
            winners[e as usize] = Some(row);
        }
    }
    winners
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(values: &[&[u8]]) -> BinaryArray {
        BinaryArray::from_iter_values(values.iter().copied())
    }

    fn run(
        e: (&[&[u8]], &[i64]),
        f: (&[&[u8]], &[i64]),
        created: Option<&[i64]>,
        ttl: Option<i64>,
    ) -> Vec<Option<u32>> {
        let (ek, et) = (keys(e.0), Int64Array::from(e.1.to_vec()));
        let (fk, ft) = (keys(f.0), Int64Array::from(f.1.to_vec()));
        let created = created.map(|c| Int64Array::from(c.to_vec()));
        asof_join(
            &Side {
                keys: &ek,
                event_ts: &et,
            },
            &Side {
                keys: &fk,
                event_ts: &ft,
            },
            created.as_ref(),
            ttl,
        )
    }

    #[test]
    fn takes_the_latest_row_at_or_before() {
        let got = run(
            (&[b"a", b"a", b"a", b"b"], &[5, 10, 4, 10]),
            (&[b"a", b"a", b"b"], &[5, 9, 11]),
            None,
            None,
        );
        assert_eq!(got, [Some(0), Some(1), None, None]);
    }

    #[test]
    fn ttl_bounds_are_inclusive_to_the_microsecond() {
        let got = run(
            (&[b"a", b"a"], &[110, 111]),
            (&[b"a"], &[10]),
            None,
            Some(100),
        );
        assert_eq!(got, [Some(0), None]);
    }

    #[test]
    fn ties_go_to_the_greatest_created_time_in_any_order() {
        let got = run(
            (&[b"a"], &[10]),
            (&[b"a", b"a", b"a"], &[10, 10, 10]),
            Some(&[2, 3, 1]),
            None,
        );
        assert_eq!(got, [Some(1)]);
    }

    #[test]
    fn unknown_keys_and_duplicates() {
        let got = run(
            (&[b"z", b"a", b"a"], &[10, 10, 10]),
            (&[b"a"], &[1]),
            None,
            None,
        );
        assert_eq!(got, [None, Some(0), Some(0)]);
    }

    #[test]
    fn a_later_key_does_not_leak_into_an_earlier_one() {
        let got = run(
            (&[b"b", b"a"], &[1, 100]),
            (&[b"a", b"b"], &[50, 5]),
            None,
            None,
        );
        assert_eq!(got, [None, Some(0)]);
    }

    #[test]
    fn long_keys_take_the_byte_path_with_the_same_answers() {
        let long_a: &[u8] = b"a-key-much-longer-than-sixteen-bytes";
        let long_b: &[u8] = b"b-key-much-longer-than-sixteen-bytes";
        let got = run(
            (&[long_b, long_a, long_a], &[10, 10, 3]),
            (&[long_a, long_a, long_b], &[5, 5, 11]),
            Some(&[1, 2, 0]),
            None,
        );
        assert_eq!(got, [None, Some(1), None]);
    }
}
