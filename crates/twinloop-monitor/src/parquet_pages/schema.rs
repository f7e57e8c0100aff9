//! The types the parquet crate (59.x) reads the fields of a footer and a page header as, from
//! `parquet.thrift` as that crate declares it. It reads a field it knows by these types whatever
//! type its bytes declare, so a walk that followed the bytes alone could read a different value
//! than it does; the walk refuses a known field whose declared type is not the one here. A
//! field the crate does not read but Parquet declares is here too: holding it to its type only
//! refuses files no writer makes.

/// What a field is read as.
#[derive(Clone, Copy)]
pub(super) enum Field {
    Bool,
    Byte,
    /// An i16, i32 or i64 (an enum is an i32): the same varint on the wire, however wide, so
    /// either reading takes the same bytes.
    Int,
    Double,
    Binary,
    Struct(Schema),
    List(Element),
}

/// What a list's elements are read as.
#[derive(Clone, Copy)]
pub(super) enum Element {
    I32,
    I64,
    Binary,
    Struct(Schema),
}

/// A struct's fields by id; a union is a struct of which one field is set.
pub(super) type Schema = &'static [(i16, Field)];

use Field::{Binary, Bool, Byte, Double, Int, List, Struct};

pub(super) const FILE_METADATA: Schema = &[
    (1, Int),
    (2, List(Element::Struct(SCHEMA_ELEMENT))),
    (3, Int),
    (4, List(Element::Struct(ROW_GROUP))),
    (5, List(Element::Struct(KEY_VALUE))),
    (6, Binary),
    (7, List(Element::Struct(COLUMN_ORDER))),
    (8, Struct(ENCRYPTION_ALGORITHM)),
    (9, Binary),
];

pub(super) const PAGE_HEADER: Schema = &[
    (1, Int),
    (2, Int),
    (3, Int),
    (4, Int),
    (5, Struct(DATA_PAGE_HEADER)),
    (6, Struct(EMPTY)),
    (7, Struct(DICTIONARY_PAGE_HEADER)),
    (8, Struct(DATA_PAGE_HEADER_V2)),
];

const EMPTY: Schema = &[];

const SCHEMA_ELEMENT: Schema = &[
    (1, Int),
    (2, Int),
    (3, Int),
    (4, Binary),
    (5, Int),
    (6, Int),
    (7, Int),
    (8, Int),
    (9, Int),
    (10, Struct(LOGICAL_TYPE)),
];

const LOGICAL_TYPE: Schema = &[
    (1, Struct(EMPTY)),
    (2, Struct(EMPTY)),
    (3, Struct(EMPTY)),
    (4, Struct(EMPTY)),
    (5, Struct(DECIMAL_TYPE)),
    (6, Struct(EMPTY)),
    (7, Struct(TIME_TYPE)),
    (8, Struct(TIME_TYPE)),
    (10, Struct(INT_TYPE)),
    (11, Struct(EMPTY)),
    (12, Struct(EMPTY)),
    (13, Struct(EMPTY)),
    (14, Struct(EMPTY)),
    (15, Struct(EMPTY)),
    (16, Struct(VARIANT_TYPE)),
    (17, Struct(GEOMETRY_TYPE)),
    (18, Struct(GEOGRAPHY_TYPE)),
];

const DECIMAL_TYPE: Schema = &[(1, Int), (2, Int)];
/// `TimeType` and `TimestampType`.
const TIME_TYPE: Schema = &[(1, Bool), (2, Struct(TIME_UNIT))];
const TIME_UNIT: Schema = &[(1, Struct(EMPTY)), (2, Struct(EMPTY)), (3, Struct(EMPTY))];
const INT_TYPE: Schema = &[(1, Byte), (2, Bool)];
const VARIANT_TYPE: Schema = &[(1, Byte)];
const GEOMETRY_TYPE: Schema = &[(1, Binary)];
const GEOGRAPHY_TYPE: Schema = &[(1, Binary), (2, Int)];

const ROW_GROUP: Schema = &[
    (1, List(Element::Struct(COLUMN_CHUNK))),
    (2, Int),
    (3, Int),
    (4, List(Element::Struct(SORTING_COLUMN))),
    (5, Int),
    (6, Int),
    (7, Int),
];

const SORTING_COLUMN: Schema = &[(1, Int), (2, Bool), (3, Bool)];

const COLUMN_CHUNK: Schema = &[
    (1, Binary),
    (2, Int),
    (3, Struct(COLUMN_METADATA)),
    (4, Int),
    (5, Int),
    (6, Int),
    (7, Int),
    (8, Struct(COLUMN_CRYPTO_METADATA)),
    (9, Binary),
];

const COLUMN_METADATA: Schema = &[
    (1, Int),
    (2, List(Element::I32)),
    (3, List(Element::Binary)),
    (4, Int),
    (5, Int),
    (6, Int),
    (7, Int),
    (8, List(Element::Struct(KEY_VALUE))),
    (9, Int),
    (10, Int),
    (11, Int),
    (12, Struct(STATISTICS)),
    (13, List(Element::Struct(PAGE_ENCODING_STATS))),
    (14, Int),
    (15, Int),
    (16, Struct(SIZE_STATISTICS)),
    (17, Struct(GEOSPATIAL_STATISTICS)),
];

const KEY_VALUE: Schema = &[(1, Binary), (2, Binary)];

/// A column chunk's and a page's statistics.
const STATISTICS: Schema = &[
    (1, Binary),
    (2, Binary),
    (3, Int),
    (4, Int),
    (5, Binary),
    (6, Binary),
    (7, Bool),
    (8, Bool),
];

const PAGE_ENCODING_STATS: Schema = &[(1, Int), (2, Int), (3, Int)];

const SIZE_STATISTICS: Schema = &[(1, Int), (2, List(Element::I64)), (3, List(Element::I64))];

const GEOSPATIAL_STATISTICS: Schema = &[(1, Struct(BOUNDING_BOX)), (2, List(Element::I32))];

const BOUNDING_BOX: Schema = &[
    (1, Double),
    (2, Double),
    (3, Double),
    (4, Double),
    (5, Double),
    (6, Double),
    (7, Double),
    (8, Double),
];

const COLUMN_CRYPTO_METADATA: Schema =
    &[(1, Struct(EMPTY)), (2, Struct(ENCRYPTION_WITH_COLUMN_KEY))];
const ENCRYPTION_WITH_COLUMN_KEY: Schema = &[(1, List(Element::Binary)), (2, Binary)];
const ENCRYPTION_ALGORITHM: Schema = &[(1, Struct(AES_GCM)), (2, Struct(AES_GCM))];
/// `AesGcmV1` and `AesGcmCtrV1`.
const AES_GCM: Schema = &[(1, Binary), (2, Binary), (3, Bool)];
const COLUMN_ORDER: Schema = &[(1, Struct(EMPTY))];

const DATA_PAGE_HEADER: Schema = &[
    (1, Int),
    (2, Int),
    (3, Int),
    (4, Int),
    (5, Struct(STATISTICS)),
];

const DICTIONARY_PAGE_HEADER: Schema = &[(1, Int), (2, Int), (3, Bool)];

const DATA_PAGE_HEADER_V2: Schema = &[
    (1, Int),
    (2, Int),
    (3, Int),
    (4, Int),
    (5, Int),
    (6, Int),
    (7, Bool),
    (8, Struct(STATISTICS)),
];
