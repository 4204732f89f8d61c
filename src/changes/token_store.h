/* SPDX-License-Identifier: Apache-2.0 */
/* changes/token_store: the capture stream's resume token on disk, written
 * atomically (write, fsync, rename, fsync the directory) so a crash leaves
 * either the old token or the new one, never a torn file. */
#ifndef CC_CHANGES_TOKEN_STORE_H
#define CC_CHANGES_TOKEN_STORE_H

#include <bson/bson.h>
#include <stdbool.h>

/* Returns the saved token (bson_malloc'd) or NULL when there is none; a
 * file that exists but cannot be read or holds no token is an error. */
bool cc_token_store_load(const char *path, char **token, bson_error_t *error);
bool cc_token_store_save(const char *path, const char *token, bson_error_t *error);

#endif
