/* SPDX-License-Identifier: Apache-2.0 */
/* One line of text: the token's _data hex. Text rather than BSON so an
 * operator can read it, copy it, or delete it to start from now. */
#include "token_store.h"
#include "changecast/event.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

bool cc_token_store_load(const char *path, char **token, bson_error_t *error)
{
    *token = NULL;
    FILE *file = fopen(path, "r");
    if (!file) {
        if (errno == ENOENT) {
            return true;
        }
        bson_set_error(error, 0, 0, "changes.token_file \"%s\": %s", path, strerror(errno));
        return false;
    }
    char line[CC_MAX_RESUME_TOKEN + 8] = "";
    char normalized[CC_MAX_RESUME_TOKEN + 8];
    bool read = fgets(line, sizeof line, file) != NULL;
    fclose(file);
    line[strcspn(line, "\r\n")] = '\0';
    if (!read || !cc_token_normalize(line, normalized, sizeof normalized)) {
        bson_set_error(error, 0, 0,
                       "changes.token_file \"%s\" holds no resume token; delete it to start "
                       "from now",
                       path);
        return false;
    }
    *token = bson_strdup(normalized);
    return true;
}

static bool sync_directory(const char *path)
{
    char *copy = bson_strdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bson_free(copy);
    if (fd < 0) {
        return false;
    }
    bool ok = fsync(fd) == 0;
    close(fd);
    return ok;
}

bool cc_token_store_save(const char *path, const char *token, bson_error_t *error)
{
    char temp[4096];
    snprintf(temp, sizeof temp, "%s.tmp", path);
    int fd = open(temp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        bson_set_error(error, 0, 0, "changes.token_file \"%s\": %s", temp, strerror(errno));
        return false;
    }
    size_t len = strlen(token);
    bool ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved_errno = errno;
    close(fd);
    if (!ok || rename(temp, path) != 0 || !sync_directory(path)) {
        bson_set_error(error, 0, 0, "changes.token_file \"%s\": %s", path,
                       strerror(ok ? errno : saved_errno));
        unlink(temp);
        return false;
    }
    return true;
}
