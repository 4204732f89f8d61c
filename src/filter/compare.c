/* SPDX-License-Identifier: Apache-2.0 */
/* filter/compare: MongoDB's total order over BSON values ("Comparison/Sort Order" in the MongoDB
 * manual), used by the matcher for equality, $lt/$gt and $in, and reusable by anyone who needs to
 * order or compare values the way the server does. Pure functions over bson_iter_t; calls only
 * libbson. */
#include "filter_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int cc_bson_canonical_type(bson_type_t type)
{
    /* The brackets and their order follow the server's canonicalizeBSONType(): numbers share one
     * bracket, strings and symbols another. */
    switch (type) {
    case BSON_TYPE_MINKEY:
        return -1;
    case BSON_TYPE_EOD:
    case BSON_TYPE_UNDEFINED:
        return 0;
    case BSON_TYPE_NULL:
        return 5;
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128:
        return 10;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL:
        return 15;
    case BSON_TYPE_DOCUMENT:
        return 20;
    case BSON_TYPE_ARRAY:
        return 25;
    case BSON_TYPE_BINARY:
        return 30;
    case BSON_TYPE_OID:
        return 35;
    case BSON_TYPE_BOOL:
        return 40;
    case BSON_TYPE_DATE_TIME:
        return 45;
    case BSON_TYPE_TIMESTAMP:
        return 47;
    case BSON_TYPE_REGEX:
        return 50;
    case BSON_TYPE_DBPOINTER:
        return 55;
    case BSON_TYPE_CODE:
        return 60;
    case BSON_TYPE_CODEWSCOPE:
        return 65;
    case BSON_TYPE_MAXKEY:
        return 127;
    }
    return 0;
}

static int sign_of(int64_t v)
{
    return (v > 0) - (v < 0);
}

static double decimal_to_double(const bson_iter_t *it)
{
    /* libbson has no decimal arithmetic: compare decimal128 through its nearest double, which is
     * exact for every decimal a double can hold and close enough for ordering the rest. */
    bson_decimal128_t dec;
    char text[BSON_DECIMAL128_STRING];
    bson_iter_decimal128(it, &dec);
    bson_decimal128_to_string(&dec, text);
    return strtod(text, NULL);
}

static int compare_doubles(double a, double b)
{
    /* The server sorts NaN below every other number and equal to itself. */
    if (isnan(a) || isnan(b))
        return isnan(a) ? (isnan(b) ? 0 : -1) : 1;
    return (a > b) - (a < b);
}

static int compare_int_double(int64_t i, double d)
{
    if (isnan(d))
        return 1;
    /* 2^63 is exact as a double; everything at or beyond it is outside int64. */
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    double whole = trunc(d);
    int64_t w = (int64_t)whole;
    if (i != w)
        return i < w ? -1 : 1;
    double frac = d - whole;
    return (frac < 0) - (frac > 0);
}

static int compare_numbers(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_type_t ta = bson_iter_type(a), tb = bson_iter_type(b);
    bool a_int = ta == BSON_TYPE_INT32 || ta == BSON_TYPE_INT64;
    bool b_int = tb == BSON_TYPE_INT32 || tb == BSON_TYPE_INT64;
    if (a_int && b_int) {
        int64_t x = bson_iter_as_int64(a), y = bson_iter_as_int64(b);
        return (x > y) - (x < y);
    }
    double da = ta == BSON_TYPE_DECIMAL128 ? decimal_to_double(a) : bson_iter_as_double(a);
    double db = tb == BSON_TYPE_DECIMAL128 ? decimal_to_double(b) : bson_iter_as_double(b);
    if (a_int)
        return compare_int_double(bson_iter_as_int64(a), db);
    if (b_int)
        return -compare_int_double(bson_iter_as_int64(b), da);
    return compare_doubles(da, db);
}

static int compare_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (alen > blen) - (alen < blen);
}

static const char *string_of(const bson_iter_t *it, uint32_t *len)
{
    if (bson_iter_type(it) == BSON_TYPE_SYMBOL)
        return bson_iter_symbol(it, len);
    return bson_iter_utf8(it, len);
}

static int compare_documents(const bson_iter_t *a, const bson_iter_t *b)
{
    /* BSONObj::woCompare: element by element, each by bracket, then field name, then value;
     * a document that runs out first is the smaller. Arrays are documents keyed "0", "1", ... */
    bson_iter_t ca, cb;
    if (!bson_iter_recurse(a, &ca) || !bson_iter_recurse(b, &cb))
        return 0;
    for (;;) {
        bool more_a = bson_iter_next(&ca), more_b = bson_iter_next(&cb);
        if (!more_a || !more_b)
            return (int)more_a - (int)more_b;
        int c = cc_bson_canonical_type(bson_iter_type(&ca)) -
                cc_bson_canonical_type(bson_iter_type(&cb));
        if (c != 0)
            return c < 0 ? -1 : 1;
        c = strcmp(bson_iter_key(&ca), bson_iter_key(&cb));
        if (c != 0)
            return c < 0 ? -1 : 1;
        c = cc_bson_compare_values(&ca, &cb);
        if (c != 0)
            return c;
    }
}

static int compare_codewscope(const bson_iter_t *a, const bson_iter_t *b)
{
    uint32_t la, lb, sa, sb;
    const uint8_t *da, *db;
    const char *ca = bson_iter_codewscope(a, &la, &sa, &da);
    const char *cb = bson_iter_codewscope(b, &lb, &sb, &db);
    int c = compare_bytes(ca, la, cb, lb);
    if (c != 0)
        return c;
    bson_t scope_a, scope_b;
    if (!bson_init_static(&scope_a, da, sa) || !bson_init_static(&scope_b, db, sb))
        return 0;
    return sign_of(bson_compare(&scope_a, &scope_b));
}

int cc_bson_compare_values(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_type_t ta = bson_iter_type(a), tb = bson_iter_type(b);
    int ca = cc_bson_canonical_type(ta), cb = cc_bson_canonical_type(tb);
    if (ca != cb)
        return ca < cb ? -1 : 1;

    switch (ta) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128:
        return compare_numbers(a, b);
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: {
        /* Simple binary comparison: change streams run without a collation here. */
        uint32_t la, lb;
        const char *sa = string_of(a, &la), *sb = string_of(b, &lb);
        return compare_bytes(sa, la, sb, lb);
    }
    case BSON_TYPE_DOCUMENT:
    case BSON_TYPE_ARRAY:
        return compare_documents(a, b);
    case BSON_TYPE_BINARY: {
        /* Length first, then subtype, then bytes. */
        bson_subtype_t sa, sb;
        uint32_t la, lb;
        const uint8_t *da, *db;
        bson_iter_binary(a, &sa, &la, &da);
        bson_iter_binary(b, &sb, &lb, &db);
        if (la != lb)
            return la < lb ? -1 : 1;
        if (sa != sb)
            return sa < sb ? -1 : 1;
        return compare_bytes(da, la, db, lb);
    }
    case BSON_TYPE_OID:
        return sign_of(bson_oid_compare(bson_iter_oid(a), bson_iter_oid(b)));
    case BSON_TYPE_BOOL:
        return (int)bson_iter_bool(a) - (int)bson_iter_bool(b);
    case BSON_TYPE_DATE_TIME: {
        int64_t x = bson_iter_date_time(a), y = bson_iter_date_time(b);
        return (x > y) - (x < y);
    }
    case BSON_TYPE_TIMESTAMP: {
        uint32_t ta_s, ta_i, tb_s, tb_i;
        bson_iter_timestamp(a, &ta_s, &ta_i);
        bson_iter_timestamp(b, &tb_s, &tb_i);
        if (ta_s != tb_s)
            return ta_s < tb_s ? -1 : 1;
        return (ta_i > tb_i) - (ta_i < tb_i);
    }
    case BSON_TYPE_REGEX: {
        const char *oa, *ob;
        const char *pa = bson_iter_regex(a, &oa), *pb = bson_iter_regex(b, &ob);
        int c = strcmp(pa, pb);
        if (c == 0)
            c = strcmp(oa, ob);
        return (c > 0) - (c < 0);
    }
    case BSON_TYPE_DBPOINTER: {
        uint32_t la, lb;
        const char *na, *nb;
        const bson_oid_t *oa, *ob;
        bson_iter_dbpointer(a, &la, &na, &oa);
        bson_iter_dbpointer(b, &lb, &nb, &ob);
        if (la != lb)
            return la < lb ? -1 : 1;
        int c = compare_bytes(na, la, nb, lb);
        return c != 0 ? c : sign_of(bson_oid_compare(oa, ob));
    }
    case BSON_TYPE_CODE: {
        uint32_t la, lb;
        const char *sa = bson_iter_code(a, &la), *sb = bson_iter_code(b, &lb);
        return compare_bytes(sa, la, sb, lb);
    }
    case BSON_TYPE_CODEWSCOPE:
        return compare_codewscope(a, b);
    case BSON_TYPE_EOD:
    case BSON_TYPE_UNDEFINED:
    case BSON_TYPE_NULL:
    case BSON_TYPE_MINKEY:
    case BSON_TYPE_MAXKEY:
        return 0;
    }
    return 0;
}
