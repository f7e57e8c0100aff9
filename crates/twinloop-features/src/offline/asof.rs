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
    let f_ts = features.event_ts.values();
    let mut f_order: Vec<u32> = (0..features.keys.len() as u32).collect();
    f_order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        features
            .keys
            .value(a)
            .cmp(features.keys.value(b))
            .then(f_ts[a].cmp(&f_ts[b]))
            .then_with(|| match created_ts {
                Some(c) => c.values()[a].cmp(&c.values()[b]),
                None => std::cmp::Ordering::Equal,
            })
            .then(a.cmp(&b))
    });
    let e_ts = entities.event_ts.values();
    let mut e_order: Vec<u32> = (0..entities.keys.len() as u32).collect();
    e_order.sort_unstable_by(|&a, &b| {
        let (a, b) = (a as usize, b as usize);
        entities
            .keys
            .value(a)
            .cmp(entities.keys.value(b))
            .then(e_ts[a].cmp(&e_ts[b]))
    });

    let mut winners = vec![None; entities.keys.len()];
    // `next` is the first feature row (in sorted order) past the current entity's (key, time).
    let mut next = 0usize;
    for &e in &e_order {
        let e = e as usize;
        let key = entities.keys.value(e);
        let ts = e_ts[e];
        while next < f_order.len() {
            let f = f_order[next] as usize;
            let ordering = features.keys.value(f).cmp(key).then(f_ts[f].cmp(&ts));
            if ordering.is_gt() {
                break;
            }
            next += 1;
        }
        if next == 0 {
            continue;
        }
        let candidate = f_order[next - 1] as usize;
        if features.keys.value(candidate) != key {
            continue;
        }
        let within_ttl = ttl_micros
            .is_none_or(|ttl| i128::from(f_ts[candidate]) >= i128::from(ts) - i128::from(ttl));
        if within_ttl {
            winners[e] = Some(candidate as u32);
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
}
