/* SPDX-License-Identifier: Apache-2.0 */
/* Files the push port serves from memory: the browser client at
 * /v1/client.js and, with push.demo = on, the demo page at /. Embedded at
 * build time (cmake/embed.cmake) so the binary needs nothing installed. */
#ifndef CC_PUSH_ASSETS_H
#define CC_PUSH_ASSETS_H

#include <stddef.h>

typedef struct cc_asset {
    const char *path; /* the URL path */
    const char *content_type;
    const unsigned char *data;
    size_t len;
} cc_asset_t;

/* Ends with an entry whose path is NULL. */
extern const cc_asset_t cc_assets[];

#endif
