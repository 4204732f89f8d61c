/* SPDX-License-Identifier: Apache-2.0 */
/* filter: the subscriber filter matcher. Compiles a MongoDB query document once and evaluates it
 * against change events exactly as a $match stage on a change stream would. Pure logic over
 * bson_t: no I/O, no threads, no allocation that outlives a call except the compiled filter.
 * May call libbson and PCRE2 only; push includes this header. */
#ifndef CHANGECAST_FILTER_H
#define CHANGECAST_FILTER_H

#include <bson/bson.h>
#include <stdbool.h>

typedef struct cc_filter cc_filter_t;

/* Compiles a query document. Returns NULL and fills `error` naming the offending operator or
 * path (e.g. "unknown operator $where: not supported in subscriber filters", "$in needs an
 * array", "$regex: invalid pattern ... at offset N", "filter nests deeper than 32 levels"). The
 * filter keeps no reference to `query`. */
cc_filter_t *cc_filter_compile(const bson_t *query, bson_error_t *error);

/* True when `document` matches. A compiled filter is immutable: several threads may match with
 * the same filter at once. */
bool cc_filter_matches(const cc_filter_t *filter, const bson_t *document);

void cc_filter_destroy(cc_filter_t *filter);

/* When every match requires documentKey._id to equal one of a finite set of values
 * (documentKey._id: v, {$eq: v}, {$in: [...]}, or such a clause inside a top-level $and),
 * appends those values to `out` as an array document {"0": v, ...} and returns true; false when
 * the filter does not pin _id. Used to index subscriptions by _id. Values are appended as
 * written in the filter: numbers match across types (1 == 1.0 == NumberLong(1)), so an index
 * must key them by value, not by BSON type. */
bool cc_filter_pinned_ids(const cc_filter_t *filter, bson_t *out);

/* Orders two BSON values as MongoDB sorts them: MinKey < Undefined < Null < Numbers <
 * String/Symbol < Object < Array < BinData < ObjectId < Boolean < Date < Timestamp < Regex <
 * DBPointer < Code < CodeWScope < MaxKey. Numbers compare by value across int32, int64, double
 * and decimal128 (decimal128 through its nearest double); NaN equals NaN and sorts below every
 * other number. Returns <0, 0 or >0. */
int cc_bson_compare_values(const bson_iter_t *a, const bson_iter_t *b);

/* Parses a filter written as Extended JSON text, keeping the query operators $type, $regex and
 * $options that libbson's reader would take for legacy Extended JSON. `out` is initialised
 * either way. */
bool cc_filter_parse_json(const char *json, size_t len, bson_t *out, bson_error_t *error);

/* Copies the rest of `iter`'s document into `out`, renaming keys $__name back to $name. */
void cc_filter_unescape_keys(bson_iter_t *iter, bson_t *out);

#endif
