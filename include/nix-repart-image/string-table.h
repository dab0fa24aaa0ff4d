/* string-table.h: an enumeration and its names, written once.
 *
 * As systemd's DEFINE_STRING_TABLE_LOOKUP: `name##_table` is an array of
 * names indexed by the enumeration's values (NULL for a value without
 * one), and the macro defines both directions over it:
 *
 *   const char *name##_to_string(type v);   NULL for a value out of range
 *   type name##_from_string(const char *s); -EINVAL for an unknown name */
#pragma once

#include <errno.h>
#include <string.h>

#include "macro.h"

#define NRI_DECLARE_STRING_TABLE_LOOKUP(name, type)                                                         \
        const char *name##_to_string(type v);                                                               \
        type name##_from_string(const char *s)

#define NRI_DEFINE_STRING_TABLE_LOOKUP(name, type)                                                          \
        const char *name##_to_string(type v) {                                                              \
                if ((int)v < 0 || (size_t)v >= ELEMENTSOF(name##_table))                                    \
                        return NULL;                                                                        \
                return name##_table[v];                                                                     \
        }                                                                                                   \
        type name##_from_string(const char *s) {                                                            \
                for (size_t i = 0; s && i < ELEMENTSOF(name##_table); i++)                                  \
                        if (name##_table[i] && strcmp(s, name##_table[i]) == 0)                             \
                                return (type)i;                                                             \
                return (type)-EINVAL;                                                                       \
        }
