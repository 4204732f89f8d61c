/* SPDX-License-Identifier: Apache-2.0 */
/* The fuzz targets' one assertion (header only): a broken rule is a crash
 * libFuzzer keeps, with the file, the line and the rule on stderr. Unlike
 * assert() it holds in every build. */
#ifndef CC_FUZZ_CHECK_H
#define CC_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s: check failed at line %d: %s\n", __FILE__, __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#endif
