/* SPDX-License-Identifier: Apache-2.0 */
/* filter/operands: parses and validates the operands of $type, $size and $mod into leaf nodes,
 * with the server's error messages where a subscriber can act on them. Called by compile.c;
 * calls libbson only. */
#include "filter_internal.h"

#include <math.h>
#include <string.h>

static bool type_bit(const bson_iter_t *t, uint32_t *mask, bson_error_t *error)
{
    /* Aliases and codes from the $type page of the MongoDB manual; "number" is the four numeric
     * types. */
    static const struct {
        const char *alias;
        int code;
    } aliases[] = {{"double", 1},      {"string", 2},     {"object", 3},
                   {"array", 4},       {"binData", 5},    {"undefined", 6},
                   {"objectId", 7},    {"bool", 8},       {"date", 9},
                   {"null", 10},       {"regex", 11},     {"dbPointer", 12},
                   {"javascript", 13}, {"symbol", 14},    {"javascriptWithScope", 15},
                   {"int", 16},        {"timestamp", 17}, {"long", 18},
                   {"decimal", 19},    {"minKey", -1},    {"maxKey", 127}};
    int code;
    if (BSON_ITER_HOLDS_UTF8(t)) {
        const char *name = bson_iter_utf8(t, NULL);
        if (!strcmp(name, "number")) {
            *mask |= (1u << 1) | (1u << 16) | (1u << 18) | (1u << 19);
            return true;
        }
        for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
            if (!strcmp(name, aliases[i].alias)) {
                code = aliases[i].code;
                goto found;
            }
        }
        bson_set_error(error, 0, 0, "$type: unknown type name alias \"%s\"", name);
        return false;
    }
    if (!BSON_ITER_HOLDS_NUMBER(t)) {
        bson_set_error(error, 0, 0, "$type needs a type name, a type code or an array of them");
        return false;
    }
    double d = bson_iter_as_double(t);
    if (d != trunc(d) || !((d >= 1 && d <= 19) || d == -1 || d == 127)) {
        bson_set_error(error, 0, 0, "$type: invalid numerical type code %g", d);
        return false;
    }
    code = (int)d;
found:
    if (code == -1)
        *mask |= CC_TYPE_BIT_MINKEY;
    else if (code == 127)
        *mask |= CC_TYPE_BIT_MAXKEY;
    else
        *mask |= UINT32_C(1) << code;
    return true;
}

cc_node_t *cc_filter_compile_type(const char *path, const bson_iter_t *value, bson_error_t *error)
{
    uint32_t mask = 0;
    if (BSON_ITER_HOLDS_ARRAY(value)) {
        bson_iter_t it;
        bson_iter_recurse(value, &it);
        while (bson_iter_next(&it)) {
            if (!type_bit(&it, &mask, error))
                return NULL;
        }
        if (!mask) {
            bson_set_error(error, 0, 0, "$type must match at least one type");
            return NULL;
        }
    } else if (!type_bit(value, &mask, error)) {
        return NULL;
    }
    cc_node_t *n = cc_node_leaf_new(CC_NODE_TYPE, path);
    n->type_mask = mask;
    return n;
}

cc_node_t *cc_filter_compile_size(const char *path, const bson_iter_t *value, bson_error_t *error)
{
    if (!BSON_ITER_HOLDS_NUMBER(value) || BSON_ITER_HOLDS_DECIMAL128(value)) {
        bson_set_error(error, 0, 0, "$size needs a number");
        return NULL;
    }
    double d = bson_iter_as_double(value);
    if (d != trunc(d) || isinf(d)) {
        bson_set_error(error, 0, 0, "$size must be a whole number");
        return NULL;
    }
    if (d < 0) {
        bson_set_error(error, 0, 0, "$size may not be negative");
        return NULL;
    }
    if (d > INT32_MAX) {
        bson_set_error(error, 0, 0, "$size must be representable as a 32-bit integer");
        return NULL;
    }
    cc_node_t *n = cc_node_leaf_new(CC_NODE_SIZE, path);
    n->size = (int32_t)d;
    return n;
}

static bool mod_operand(const bson_iter_t *it, const char *what, int64_t *out, bson_error_t *error)
{
    if (!BSON_ITER_HOLDS_NUMBER(it)) {
        bson_set_error(error, 0, 0, "malformed mod, %s not a number", what);
        return false;
    }
    if (BSON_ITER_HOLDS_INT32(it) || BSON_ITER_HOLDS_INT64(it)) {
        *out = bson_iter_as_int64(it);
        return true;
    }
    /* Since MongoDB 5.1 non-integral operands are truncated toward zero and NaN, infinities and
     * values outside int64 are refused ($mod in the MongoDB manual). */
    double d = bson_iter_as_double(it);
    if (!isfinite(d) || d >= 9223372036854775808.0 || d < -9223372036854775808.0) {
        bson_set_error(error, 0, 0, "malformed mod, %s value is invalid: %g", what, d);
        return false;
    }
    *out = (int64_t)trunc(d);
    return true;
}

cc_node_t *cc_filter_compile_mod(const char *path, const bson_iter_t *value, bson_error_t *error)
{
    bson_iter_t it;
    int64_t divisor, remainder;
    if (!BSON_ITER_HOLDS_ARRAY(value) || !bson_iter_recurse(value, &it)) {
        bson_set_error(error, 0, 0, "malformed mod, needs to be an array");
        return NULL;
    }
    if (!bson_iter_next(&it)) {
        bson_set_error(error, 0, 0, "malformed mod, not enough elements");
        return NULL;
    }
    if (!mod_operand(&it, "divisor", &divisor, error))
        return NULL;
    if (!bson_iter_next(&it)) {
        bson_set_error(error, 0, 0, "malformed mod, not enough elements");
        return NULL;
    }
    if (!mod_operand(&it, "remainder", &remainder, error))
        return NULL;
    if (bson_iter_next(&it)) {
        bson_set_error(error, 0, 0, "malformed mod, too many elements");
        return NULL;
    }
    if (divisor == 0) {
        bson_set_error(error, 0, 0, "$mod: divisor cannot be 0");
        return NULL;
    }
    cc_node_t *n = cc_node_leaf_new(CC_NODE_MOD, path);
    n->divisor = divisor;
    n->remainder = remainder;
    return n;
}
