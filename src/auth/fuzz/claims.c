/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer target: the changecast claim (src/auth/grant.c) and what a
 * grant does with documents and change events: the claim is the input (as
 * JSON); when it parses, its scope for shop.orders decides, projects and
 * combines filters over fixed events and documents that use every image
 * and update description field. */
#include "changecast/auth.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const events[] = {
    ("{\"_id\":{\"_data\":\"82\"},\"operationType\":\"update\",\"ns\":{\"db\":\"shop\",\"coll\":"
     "\"orders\"},\"documentKey\":{\"_id\":1,\"k\":2},\"updateDescription\":{\"updatedFields\":{"
     "\"a.b\":1,\"items.3.price\":2,\"c\":{\"d\":[1,{\"e\":2}]}},\"removedFields\":[\"x\",\"a.y\"],"
     "\"truncatedArrays\":[{\"field\":\"items\",\"newSize\":2}]},\"fullDocument\":{\"_id\":1,"
     "\"customerId\":\"c42\",\"a\":{\"b\":1},\"items\":[{\"price\":1},{\"price\":2}],\"c\":{\"d\":["
     "1,"
     "{\"e\":2}]}},\"fullDocumentBeforeChange\":{\"_id\":1,\"customerId\":\"c7\",\"x\":1}}"),
    ("{\"_id\":{\"_data\":\"82\"},\"operationType\":\"delete\",\"ns\":{\"db\":\"shop\",\"coll\":"
     "\"orders\"},\"documentKey\":{\"_id\":2},\"fullDocumentBeforeChange\":{\"_id\":2,"
     "\"customerId\":\"c42\",\"status\":\"x\"}}"),
    ("{\"_id\":{\"_data\":\"82\"},\"operationType\":\"drop\",\"ns\":{\"db\":\"shop\","
     "\"coll\":\"orders\"}}"),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384) {
        return 0;
    }
    bson_t claim;
    bson_error_t error;
    if (!bson_init_from_json(&claim, (const char *)data, (ssize_t)size, &error)) {
        return 0;
    }
    cc_grant_t *grant = cc_grant_from_claim(&claim, 1800000000, &error);
    bson_destroy(&claim);
    if (!grant) {
        return 0;
    }
    const cc_scope_t *scope = cc_grant_scope(grant, "shop", "orders");
    if (scope) {
        bson_t subscriber, combined, out;
        BSON_ASSERT(bson_init_from_json(&subscriber, "{\"$or\":[{\"a\":1},{\"status\":\"x\"}]}", -1,
                                        &error));
        cc_scope_combine_filter(scope, &subscriber, NULL, &combined);
        bson_destroy(&combined);
        cc_scope_combine_filter(scope, &subscriber, "fullDocument", &combined);
        bson_destroy(&combined);
        cc_scope_check_filter(scope, &subscriber, true, &error);
        cc_scope_check_filter(scope, &subscriber, false, &error);
        cc_scope_find_projection(scope, &out);
        bson_destroy(&out);
        for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
            bson_t event;
            BSON_ASSERT(bson_init_from_json(&event, events[i], -1, &error));
            cc_scope_apply_event(scope, &event, &out);
            bson_destroy(&out);
            cc_scope_project_event(scope, &event, &out);
            bson_destroy(&out);
            bson_destroy(&event);
        }
        bson_destroy(&subscriber);
    }
    cc_grant_destroy(grant);
    return 0;
}
